"""The shapes of knowledge-base and rule ids: one definition for every loader that checks them."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["KB_ID", "RULE_ID"]

KB_ID: Final = re.compile(r"^kb\.[a-z0-9]+(-[a-z0-9]+)*$")  # kb.warfarin-nsaid-bleeding
RULE_ID: Final = re.compile(r"^rule\.[a-z0-9]+(-[a-z0-9]+)*$")  # rule.vka-nsaid

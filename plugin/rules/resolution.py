"""The fail-closed rule: a medication no ingredient list covers is named on a card, never silently skipped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from plugin.rules.model import Finding, RuleFacts

RULE_ID: Final = "rule.medication-unresolved"
EVIDENCE: Final = "kb.medication-record-unresolved"
_LABEL_LIMIT: Final = 30  # the fixed text is 108 characters; the whole summary stays under 140


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def medication_unresolved(facts: RuleFacts) -> Iterator[Finding]:
    # One finding per medication, so a proposed drug's finding carries its handle and vetoes only that one.
    for exposure in facts.exposures:
        if not exposure.unresolved:
            continue
        yield Finding(
            RULE_ID,
            "info",
            # The label is shortened, not the sentence, so the option always survives the 140-character limit.
            f"'{_short(exposure.label, _LABEL_LIMIT)}' could not be matched to an ingredient, "
            "so interaction checks are incomplete: consider checking it by hand",
            "Drug checks only cover medications they can match to a known ingredient; this one was not matched.",
            (EVIDENCE,),
            (exposure.handle,),
            (exposure.handle,) if exposure.proposed else (),
        )


RESOLUTION_RULES: Final = (medication_unresolved,)

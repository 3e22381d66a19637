"""Robust extraction of the chosen option from a model answer, JSON first, then the usual free-text forms."""

# Order of attempts (the first that yields exactly one valid key wins):
#   1. the answer as JSON: {"answer": "C"} (what the schema asks for), also {"answer": "C. text"};
#   2. \boxed{C} (DeepSeek-R1's recommended final-answer form), the last one if several;
#   3. an explicit statement: "answer is C", "Answer: (C)", "final answer: C", "Réponse : C", "उत्तर: C";
#   4. the whole answer being one key, possibly wrapped: "C", "(C)", "C.", "**C**";
#   5. the answer naming exactly one option's full text (case-insensitive, option texts of 4+ characters).
# Keys are compared case-insensitively and returned as the item spells them (letters A-D; yes/no/maybe).
# Only the answer is read, never the reasoning: a model that "thinks" C and answers B answered B. A None
# result is "no answer extracted", which counts as wrong and does not vote.

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["extract_choice"]

_BOXED: Final = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([^{}]+?)\s*\}?\s*\}")
_STATED: Final = re.compile(
    r"(?:final\s+answer|answer|réponse|respuesta|उत्तर)\s*(?:is|est|es|:|=|-)?\s*[:\-]?\s*"
    r"(?:option\s+|opción\s+|l'option\s+)?[\(\[\*\"']*\s*([A-Za-z]+)\b",
    re.IGNORECASE,
)
_WRAPPED: Final = re.compile(r"^[\s\(\[\*\"'`]*([A-Za-z]+)[\s\)\]\*\"'`.:]*$")
_LEADING_KEY: Final = re.compile(r"^\s*[\(\[]?([A-Za-z]+)[\)\]]?(?:[.:)\s]|$)")


def _match(candidate: str, keys: Sequence[str]) -> str | None:
    lowered = candidate.strip().lower()
    for key in keys:
        if key.lower() == lowered:
            return key
    return None


def _from_json(content: str, keys: Sequence[str]) -> str | None:
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return None
    value = document.get("answer") if isinstance(document, dict) else document
    if not isinstance(value, str):
        return None
    found = _match(value, keys)
    if found is None and (leading := _LEADING_KEY.match(value)):
        found = _match(leading.group(1), keys)
    return found


def extract_choice(content: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The option key the answer chose, or None when it cannot be told (see the module notes)."""
    keys = [key for key, _ in options]
    if not content or not content.strip():
        return None
    if (found := _from_json(content, keys)) is not None:
        return found
    boxed = [m.group(1) for m in _BOXED.finditer(content)]
    if boxed:
        last = boxed[-1]
        found = _match(last, keys)
        if found is None and (leading := _LEADING_KEY.match(last)):
            found = _match(leading.group(1), keys)
        if found is not None:
            return found
    stated = [_match(m.group(1), keys) for m in _STATED.finditer(content)]
    stated_keys = [s for s in stated if s is not None]
    if stated_keys:
        return stated_keys[-1]
    if (wrapped := _WRAPPED.match(content)) and (found := _match(wrapped.group(1), keys)) is not None:
        return found
    lowered = content.lower()
    named = {key for key, text in options if len(text.strip()) >= 4 and text.strip().lower() in lowered}
    if len(named) == 1:
        return named.pop()
    return None

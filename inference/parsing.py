"""Extracts the JSON answer from one model sample and classifies the sample's outcome; pure, no I/O."""

# Outcomes, checked in this order:
#
#   truncated_in_reasoning  finish_reason "length" and no answer: the budget ran out while the model was
#                           still thinking (empty or blank content, or an opened <think> never closed).
#   empty                   no answer although the model stopped (blank content, or reasoning only).
#   ok                      a JSON object was found and validates as a SuggestionSet.
#   schema_violation        a JSON value was found but it is not a valid SuggestionSet.
#   refused                 no JSON object at all (not one "{" in the answer) and the answer uses typical
#                           refusal phrasing ("I can't help with", "I'm sorry, but", "as an AI", ...). The
#                           heuristic is deliberately narrow: any "{" makes it invalid_json instead, so a
#                           broken answer is never excused as a refusal.
#   invalid_json            anything else: no object, an unbalanced one (often cut off by the token
#                           limit) or one that is not strict JSON (NaN, duplicate keys, trailing commas).
#
# Extraction, in order, from the text after the last leftover "</think>" (servers without a reasoning
# parser, or prompts that open the think block themselves, leave the reasoning in the content):
#   raw     the whole answer is one JSON value;
#   fenced  the first ```json (or bare ```) fence whose body is a JSON object;
#   prose   the first balanced top-level {...} in surrounding prose that parses, found by brace matching
#           that skips braces inside JSON strings; a candidate that fails to parse is skipped whole, so a
#           nested object is never taken for a broken outer one.
#
# `detail` is for logs and audit records: it quotes at most EXCERPT characters of model text and is never
# longer than DETAIL_MAX characters in all.

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import ValidationError

from plugin.model_port import Sample
from plugin.suggestions import SuggestionSet

__all__ = [
    "DETAIL_MAX",
    "OUTCOMES",
    "Extracted",
    "Extraction",
    "NotExtracted",
    "Outcome",
    "ParsedSample",
    "extract_json",
    "looks_like_refusal",
    "parse_sample",
    "parse_samples",
]

Outcome = Literal["ok", "invalid_json", "schema_violation", "truncated_in_reasoning", "empty", "refused"]
Extraction = Literal["raw", "fenced", "prose"]

OUTCOMES: Final[tuple[Outcome, ...]] = (
    "ok",
    "invalid_json",
    "schema_violation",
    "truncated_in_reasoning",
    "empty",
    "refused",
)
DETAIL_MAX: Final = 200
EXCERPT: Final = 60
_MAX_ERRORS: Final = 3
_LOC_PART: Final = 32

_THINK_OPEN: Final = "<think>"
_THINK_CLOSE: Final = "</think>"
_FENCE: Final = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n?(.*?)```", re.DOTALL)
_FENCE_LANGUAGES: Final = frozenset({"", "json", "jsonc"})
_REFUSAL: Final = re.compile(
    r"\b(?:"
    r"i(?:'m| am) (?:sorry|unable|not able|not comfortable|not permitted|not allowed)"
    r"|i (?:cannot|can't|can ?not|won't|will not|must decline|decline)"
    r"|(?:unable|not able) to (?:help|assist|comply|provide|answer)"
    r"|as an ai\b"
    r"|i'm afraid i"
    r")",
)
_REFUSAL_WINDOW: Final = 600
_JSON_KINDS: Final[dict[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class ParsedSample:
    outcome: Outcome
    value: SuggestionSet | None  # set exactly when outcome is "ok"
    detail: str  # short and safe to log: at most DETAIL_MAX characters, EXCERPT of them model text
    extraction: Extraction | None = None  # how the JSON was found, when it was
    after_think: bool = False  # the JSON followed a leftover </think> in the content


class _NotStrictJson(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _NotStrictJson("duplicate key in an object")
        result[key] = value
    return result


def _no_constant(token: str) -> object:
    raise _NotStrictJson(f"{token} is not JSON")


def _loads(text: str) -> object:
    """Strict JSON: no NaN/Infinity, no duplicate keys; raises ValueError (JSONDecodeError included)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _cap(text: str) -> str:
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= EXCERPT else flat[:EXCERPT] + "…")


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the '}' closing the '{' at `start`, skipping braces in JSON strings; None if open."""
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


@dataclass(frozen=True, slots=True)
class Extracted:
    value: object  # any JSON value; parse_sample requires an object
    extraction: Extraction


@dataclass(frozen=True, slots=True)
class NotExtracted:
    problem: str  # why nothing was extracted; quotes no model text
    saw_brace: bool


def extract_json(answer: str) -> Extracted | NotExtracted:
    """The JSON value of an answer (its text after any reasoning), by the first strategy that works."""
    stripped = answer.strip()
    try:
        return Extracted(_loads(stripped), "raw")
    except ValueError as exc:
        first_error = _json_error(exc) if stripped[:1] in ("{", "[") else None
    for fence in _FENCE.finditer(stripped):
        if fence.group(1).lower() not in _FENCE_LANGUAGES:
            continue
        try:
            value = _loads(fence.group(2).strip())
        except ValueError as exc:
            first_error = first_error or f"fenced block: {_json_error(exc)}"
            continue
        if isinstance(value, dict):
            return Extracted(value, "fenced")
    position = stripped.find("{")
    saw_brace = position >= 0
    while position >= 0:
        end = _balanced_end(stripped, position)
        if end is None:
            first_error = first_error or "an object opens but never closes (cut off?)"
            break
        try:
            value = _loads(stripped[position:end])
        except ValueError as exc:
            first_error = first_error or f"object in prose: {_json_error(exc)}"
            position = stripped.find("{", end)
            continue
        return Extracted(value, "prose")
    return NotExtracted(first_error or "no JSON object in the answer", saw_brace)


def looks_like_refusal(text: str) -> bool:
    """Refusal phrasing near the start of an answer that holds no JSON object (see the module notes)."""
    if "{" in text:
        return False
    window = " ".join(text[:_REFUSAL_WINDOW].replace("\u2019", "'").lower().split())
    return _REFUSAL.search(window) is not None


def _violations(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:_MAX_ERRORS]:
        # Keys and values are model text: each location part is cut short, the input is never quoted.
        where = ".".join(str(part)[:_LOC_PART] for part in error["loc"]) or "answer"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - _MAX_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_sample(sample: Sample) -> ParsedSample:
    """Classify one sample and, when it is usable, validate its answer as a `SuggestionSet`."""
    content = sample.content
    cut_off = sample.finish_reason == "length"
    close = content.rfind(_THINK_CLOSE)
    after_think = close >= 0
    answer = content[close + len(_THINK_CLOSE) :] if after_think else content
    unclosed_think = not after_think and content.lstrip().startswith(_THINK_OPEN)
    if not answer.strip() or unclosed_think:
        what = (
            "reasoning only, no answer" if unclosed_think or after_think or sample.reasoning else "no answer"
        )
        if cut_off:
            return ParsedSample("truncated_in_reasoning", None, f"token limit reached: {what}")
        return ParsedSample("empty", None, f"the model stopped with {what}")
    found = extract_json(answer)
    if isinstance(found, NotExtracted):
        if not found.saw_brace and looks_like_refusal(answer):
            return ParsedSample("refused", None, _cap(f"refusal, no JSON: {_excerpt(answer)}"))
        limit = "; the token limit was reached" if cut_off else ""
        return ParsedSample(
            "invalid_json", None, _cap(f"{found.problem}{limit}; answer starts {_excerpt(answer)}")
        )
    if not isinstance(found.value, dict):
        kind = _JSON_KINDS.get(type(found.value), "value")
        return ParsedSample(
            "schema_violation",
            None,
            f"the answer is a JSON {kind}, not an object",
            found.extraction,
            after_think,
        )
    try:
        value = SuggestionSet.model_validate(found.value)
    except ValidationError as exc:
        return ParsedSample("schema_violation", None, _cap(_violations(exc)), found.extraction, after_think)
    summary = f"abstained ({value.language})" if value.abstain else f"{len(value.suggestions)} suggestion(s)"
    return ParsedSample("ok", value, f"{summary}, {found.extraction} JSON", found.extraction, after_think)


def parse_samples(samples: Iterable[Sample]) -> tuple[ParsedSample, ...]:
    return tuple(parse_sample(sample) for sample in samples)

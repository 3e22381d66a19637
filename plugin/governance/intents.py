"""What a suggestion's text recommends doing to which drug, held against the intent its action declares."""

# Why: the safety step can only check the regimen an action produces. Advice whose text says "consider
# stopping warfarin" while its action is `counsel` would skip it, so the text is read for the medication
# changes it recommends and each must be one the action declares, on the drug the action names.
#
# Reading (knowledge/action_words.json holds the words):
# - Text is lower-cased and cut into word tokens (hyphens kept). A cue is a cue phrase ("stopping",
#   "in place of") or, after "be"/"being", a participle ("be stopped"). Its kind is stop, start, dose or
#   switch.
# - A cue preceded within two tokens by a negator ("avoid starting", "rather than stopping", "before
#   starting") recommends nothing. A cue word read as a noun after a determiner ("the start of") neither.
#   "add"/"adding" followed by "to" is "adds to the risk", not a start.
# - The drugs a cue is about are the drug mentions within `window` tokens after it (before it, for a
#   participle), up to a clause break ("stopping naproxen while warfarin continues" is about naproxen): a one- to three-word name the terminology resolves (ingredient, brand, abbreviation) or a
#   class phrase. A dose cue counts only with a dose word in that window ("reduce the dose"), since
#   "increase" alone is most often a risk ("can increase warfarin levels").
# - Declared drugs: a stop's target; a start's code; a substitute's target (stopped) and code (started);
#   a change-dose's target and code. A mention matches a declared drug when it names one of its
#   ingredients or classes.
# Verdict: a stop cue needs intent stop or substitute and every drug it names stopped; a start cue needs
# start or substitute and every drug it names started; a dose cue needs change-dose and every drug it names
# changed; a switch cue needs substitute, and every drug it names must be stopped or started (one naming
# only stopped drugs or none, "switch to another antihypertensive", may also ride on a stop). Otherwise
# undeclared-action. Text is read sentence by sentence: a window never runs into the next sentence.
# A cue right after a reporting verb ("the passage says adding an NSAID ...") quotes the source: negated. Fail closed: a cue naming no drug is still held to its intent except for stop and
# start, whose bare verbs ("start with a test") are too common in advice to be read without an object.

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from plugin import terminology
from plugin.errors import PluginError
from plugin.packaged import read_knowledge_json
from plugin.suggestions import Intent

__all__ = [
    "ActionWords",
    "ActionWordsError",
    "CueKind",
    "Recommendation",
    "action_words",
    "drug_keys",
    "parse_action_words",
    "recommendations",
    "undeclared",
]

CueKind = Literal["stop", "start", "dose", "switch"]
CUE_KINDS: Final[tuple[CueKind, ...]] = ("stop", "start", "dose", "switch")
# Which declared intents may carry a recommendation of each kind.
ALLOWED: Final[dict[CueKind, frozenset[Intent]]] = {
    "stop": frozenset({"stop", "substitute"}),
    "start": frozenset({"start", "substitute"}),
    "dose": frozenset({"change-dose"}),
    "switch": frozenset({"substitute"}),
}
# "Stop lisinopril and switch to another antihypertensive" names nothing to start (the clinician chooses),
# so a stop carries it.
_STOP_SWITCH: Final[frozenset[Intent]] = frozenset({"substitute", "stop"})
_TOKEN: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# A cue's window never crosses a sentence or a clause set off by a colon or semicolon.
_SENTENCE: Final = re.compile(r"[.;:!?](?:\s|$)|\n")
_MAX_NAME_WORDS: Final = 3


class ActionWordsError(PluginError, ValueError):
    """knowledge/action_words.json is missing or malformed."""


@dataclass(frozen=True, slots=True)
class ActionWords:
    cues: Mapping[tuple[str, ...], CueKind]
    passive: Mapping[str, CueKind]
    auxiliaries: frozenset[str]
    negators: frozenset[tuple[str, ...]]
    dose_words: frozenset[str]
    determiners: frozenset[str]
    clause_breaks: frozenset[str]
    window: int
    class_phrases: Mapping[tuple[str, ...], str]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One medication change the text recommends: its kind, the drugs it names (ingredients or class keys)
    and the cue as written, for the verdict's detail."""

    kind: CueKind
    drugs: frozenset[str]
    cue: str


def _words(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ActionWordsError(f"action_words: {where} is not a list of words")
    return [str(v) for v in value]


def _kinded(value: object, where: str) -> dict[str, CueKind]:
    if not isinstance(value, dict) or sorted(value) != sorted(CUE_KINDS):
        raise ActionWordsError(f"action_words: {where} needs exactly the kinds {', '.join(CUE_KINDS)}")
    return {word: kind for kind in CUE_KINDS for word in _words(value[kind], f"{where}.{kind}")}


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(phrase.lower()))


def parse_action_words(document: object) -> ActionWords:
    """Validate a decoded action_words document; ActionWordsError names the first problem."""
    if not isinstance(document, dict):
        raise ActionWordsError("action_words: not an object")
    window = document.get("window")
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 12:
        raise ActionWordsError("action_words: window is not a whole number of tokens from 1 to 12")
    phrases = document.get("class_phrases")
    if not isinstance(phrases, dict) or not all(isinstance(v, str) for v in phrases.values()):
        raise ActionWordsError("action_words: class_phrases is not an object of class keys")
    return ActionWords(
        cues={_key(word): kind for word, kind in _kinded(document.get("cues"), "cues").items()},
        passive=_kinded(document.get("passive"), "passive"),
        auxiliaries=frozenset(_words(document.get("passive_auxiliaries"), "passive_auxiliaries")),
        negators=frozenset(_key(w) for w in _words(document.get("negators"), "negators")),
        dose_words=frozenset(_words(document.get("dose_words"), "dose_words")),
        determiners=frozenset(_words(document.get("determiners"), "determiners")),
        clause_breaks=frozenset(_words(document.get("clause_breaks"), "clause_breaks")),
        window=window,
        class_phrases={_key(phrase): str(key) for phrase, key in phrases.items()},
    )


@functools.cache
def action_words() -> ActionWords:
    return parse_action_words(read_knowledge_json("action_words.json", ActionWordsError))


def drug_keys(ingredients: Sequence[str]) -> frozenset[str]:
    """The ingredients and classes a declared drug answers to, from its ingredients."""
    return frozenset(ingredients).union(*(terminology.classes_of(n) for n in ingredients))


@functools.lru_cache(maxsize=4096)
def _name_keys(phrase: str) -> frozenset[str] | None:
    words = action_words()
    key = _key(phrase)
    if key in words.class_phrases:
        return frozenset({words.class_phrases[key]})
    found = terminology.lookup_name(phrase)
    return frozenset(found) if found else None


def _mentions(tokens: Sequence[str], start: int, end: int) -> frozenset[str]:
    """Drug keys named in tokens[start:end], longest names first, without overlaps."""
    found: set[str] = set()
    i = max(start, 0)
    end = min(end, len(tokens))
    while i < end:
        for size in range(min(_MAX_NAME_WORDS, end - i), 0, -1):
            keys = _name_keys(" ".join(tokens[i : i + size]))
            if keys is not None:
                found |= keys
                i += size
                break
        else:
            i += 1
    return frozenset(found)


def _clause_end(tokens: Sequence[str], start: int, end: int, breaks: frozenset[str]) -> int:
    """`end`, or the first clause break in tokens[start:end] ("stopping naproxen while warfarin ...")."""
    return next((i for i in range(start, min(end, len(tokens))) if tokens[i] in breaks), end)


def _clause_start(tokens: Sequence[str], start: int, end: int, breaks: frozenset[str]) -> int:
    """`start`, or just after the last clause break in tokens[start:end]."""
    return next((i + 1 for i in range(end - 1, max(start, 0) - 1, -1) if tokens[i] in breaks), start)


def _starts_with(tokens: Sequence[str], at: int, phrase: tuple[str, ...]) -> bool:
    return tuple(tokens[at : at + len(phrase)]) == phrase


def _negated(tokens: Sequence[str], at: int, negators: frozenset[tuple[str, ...]]) -> bool:
    return any(
        _starts_with(tokens, j, negator)
        for negator in negators
        for j in range(max(at - 2 - len(negator) + 1, 0), at)
        if j + len(negator) <= at
    )


def _cue_at(tokens: Sequence[str], at: int, words: ActionWords) -> tuple[CueKind, int, bool] | None:
    """The cue starting at `at`: its kind, its length in tokens, and whether it is a participle."""
    for size in range(3, 0, -1):
        kind = words.cues.get(tuple(tokens[at : at + size]))
        if kind is not None:
            return kind, size, False
    kind = words.passive.get(tokens[at])
    if kind is not None and at > 0 and tokens[at - 1] in words.auxiliaries:
        return kind, 1, True
    return None


def recommendations(text: str) -> Iterator[Recommendation]:
    """The medication changes `text` recommends, in order (see the module notes for how it is read)."""
    for sentence in _SENTENCE.split(text.lower()):
        yield from _sentence_recommendations(_TOKEN.findall(sentence))


def _sentence_recommendations(tokens: Sequence[str]) -> Iterator[Recommendation]:
    words = action_words()
    at = 0
    while at < len(tokens):
        cue = _cue_at(tokens, at, words)
        if cue is None:
            at += 1
            continue
        kind, size, participle = cue
        written = " ".join(tokens[at : at + size])
        after = at + size
        # "the start of warfarin" is history; "a lower dose" and "a switch to" still recommend.
        noun = kind in ("stop", "start") and at > 0 and tokens[at - 1] in words.determiners and not participle
        adds_to = kind == "start" and after < len(tokens) and tokens[after] == "to" and size == 1
        if not (noun or adds_to or _negated(tokens, at, words.negators)):
            if participle:
                low = max(at - 1 - words.window, 0)
                span = (_clause_start(tokens, low, at - 1, words.clause_breaks), at - 1)
            else:
                # "switch to apixaban" names what follows: "to" ends no switch's window.
                breaks = words.clause_breaks - {"to"} if kind == "switch" else words.clause_breaks
                span = (after, _clause_end(tokens, after, after + words.window, breaks))
            drugs = _mentions(tokens, *span)
            dosed = any(t in words.dose_words for t in tokens[max(span[0], 0) : span[1]])
            if kind == "dose" and not dosed:
                pass
            elif drugs or kind in ("dose", "switch"):
                yield Recommendation(kind, drugs, written)
        at = after


def undeclared(
    text: str, intent: Intent, stopped: frozenset[str], started: frozenset[str]
) -> Recommendation | None:
    """The first recommendation in `text` that the declared intent does not carry out, or None."""
    for recommendation in recommendations(text):
        named = recommendation.drugs
        # A switch that names nothing to start ("switch to another antihypertensive") rides on a stop.
        stop_only = recommendation.kind == "switch" and named <= stopped
        allowed = _STOP_SWITCH if stop_only else ALLOWED[recommendation.kind]
        if intent not in allowed:
            return recommendation
        if not named:
            continue
        if recommendation.kind == "stop" and not named <= stopped:
            return recommendation
        if recommendation.kind in ("start", "dose") and not named <= started:
            return recommendation
        if recommendation.kind == "switch" and not all({drug} & (stopped | started) for drug in named):
            return recommendation
    return None

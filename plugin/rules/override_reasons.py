"""Rule-specific override reasons, read and validated from the versioned knowledge/override_reasons.json."""

# An entry names one rule id ("rule"), or a family by "prefix" ("rule.vka-") or "suffix" ("-recheck"), so a
# new rule of a family is covered as soon as it exists. The most specific entry wins: the exact id, then the
# longest matching prefix, then the longest matching suffix. Every card ends with the generic
# "chart-incorrect" (a wrong chart is a reason for any card); a rule id no entry matches gets the generic
# reasons. A code means one thing everywhere, so the file defines each code and its display once and the
# entries name codes: the feedback analytics count reasons by code across rules.

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

from plugin.cards import Coding
from plugin.errors import PluginError

__all__ = [
    "CHART_INCORRECT",
    "GENERIC_REASONS",
    "OVERRIDE_SYSTEM",
    "OverrideReasonError",
    "OverrideReasons",
    "override_reasons",
    "parse_override_reasons",
]

_DATA: Final = "knowledge/override_reasons.json"
OVERRIDE_SYSTEM: Final = "urn:r1cds:override-reason"
CHART_INCORRECT: Final = Coding(
    "chart-incorrect", OVERRIDE_SYSTEM, "The chart data behind this card is wrong"
)
GENERIC_REASONS: Final = (
    Coding("benefit-outweighs-risk", OVERRIDE_SYSTEM, "Benefit outweighs the risk for this patient"),
    Coding("already-managed", OVERRIDE_SYSTEM, "Already managed or being monitored"),
    Coding("not-applicable", OVERRIDE_SYSTEM, "Does not apply to this patient"),
    CHART_INCORRECT,
)
_CODE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_RULE_PART: Final = re.compile(r"^[a-z0-9.\-]{2,80}$")
_MAX_DISPLAY: Final = 80  # an EHR shows these as one-line choices
_MIN_SPECIFIC, _MAX_SPECIFIC = 2, 4
_RESERVED: Final = frozenset(c.code for c in GENERIC_REASONS)


class OverrideReasonError(PluginError):
    """knowledge/override_reasons.json is malformed."""


@dataclass(frozen=True, slots=True)
class OverrideReasons:
    version: str
    exact: Mapping[str, tuple[Coding, ...]]
    prefixes: tuple[tuple[str, tuple[Coding, ...]], ...]  # longest first
    suffixes: tuple[tuple[str, tuple[Coding, ...]], ...]  # longest first

    def specific(self, rule_id: str) -> tuple[Coding, ...] | None:
        """The rule's own reasons (without chart-incorrect), or None when no entry covers it."""
        if rule_id in self.exact:
            return self.exact[rule_id]
        for prefix, reasons in self.prefixes:
            if rule_id.startswith(prefix):
                return reasons
        for suffix, reasons in self.suffixes:
            if rule_id.endswith(suffix):
                return reasons
        return None

    def for_rule(self, rule_id: str) -> tuple[Coding, ...]:
        """What a card of this rule offers: its specific reasons and chart-incorrect, else the generic ones."""
        specific = self.specific(rule_id)
        return GENERIC_REASONS if specific is None else (*specific, CHART_INCORRECT)


def _fail(message: str) -> OverrideReasonError:
    return OverrideReasonError(f"{_DATA}: {message}")


def _definitions(raw: object) -> dict[str, Coding]:
    if not isinstance(raw, list) or not raw:
        raise _fail("needs a non-empty list of reasons")
    defined: dict[str, Coding] = {}
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"code", "display"}:
            raise _fail("each reason is exactly {code, display}")
        code, display = item["code"], item["display"]
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise _fail(f"reason code {code!r} must be lower-case letters, digits and hyphens")
        if code in _RESERVED or code in defined:
            raise _fail(f"reason code {code!r} is defined twice or reuses a generic code")
        if not isinstance(display, str) or not display.strip() or len(display) > _MAX_DISPLAY:
            raise _fail(f"reason {code!r}: a display of 1-{_MAX_DISPLAY} characters")
        defined[code] = Coding(code, OVERRIDE_SYSTEM, display.strip())
    return defined


def parse_override_reasons(raw: object) -> OverrideReasons:
    """The reasons of override_reasons.json's content; OverrideReasonError when malformed."""
    if not isinstance(raw, dict) or set(raw) != {"version", "about", "reasons", "rules"}:
        raise _fail("needs exactly version, about, reasons and rules")
    version, about = raw["version"], raw["about"]
    if not isinstance(version, str) or not version.strip() or not isinstance(about, str):
        raise _fail("version and about must be text")
    defined = _definitions(raw["reasons"])
    if not isinstance(raw["rules"], list):
        raise _fail("rules must be a list")
    tables: dict[str, dict[str, tuple[Coding, ...]]] = {"rule": {}, "prefix": {}, "suffix": {}}
    used: set[str] = set()
    for entry in raw["rules"]:
        kinds = set(entry) & set(tables) if isinstance(entry, dict) else set()
        if not isinstance(entry, dict) or len(kinds) != 1 or set(entry) != {*kinds, "reasons"}:
            raise _fail(f"each entry is one of rule, prefix or suffix, with reasons: {entry!r}")
        (kind,) = kinds
        key, codes = entry[kind], entry["reasons"]
        if not isinstance(key, str) or not _RULE_PART.fullmatch(key):
            raise _fail(f"{kind} {key!r} is no rule id or part of one")
        if kind != "suffix" and not key.startswith("rule."):
            raise _fail(f"{kind} {key!r} must start with 'rule.'")
        if key in tables[kind]:
            raise _fail(f"{kind} {key!r} has two entries")
        if (
            not isinstance(codes, list)
            or not _MIN_SPECIFIC <= len(codes) <= _MAX_SPECIFIC
            or len(set(codes)) != len(codes)
        ):
            raise _fail(f"{key}: {_MIN_SPECIFIC}-{_MAX_SPECIFIC} distinct reasons")
        unknown = [c for c in codes if c not in defined]
        if unknown:
            raise _fail(f"{key}: undefined reason codes {unknown}")
        used.update(codes)
        tables[kind][key] = tuple(defined[c] for c in codes)
    unused = sorted(set(defined) - used)
    if unused:
        raise _fail(f"reasons no entry uses: {unused}")

    def longest_first(table: dict[str, tuple[Coding, ...]]) -> tuple[tuple[str, tuple[Coding, ...]], ...]:
        return tuple(sorted(table.items(), key=lambda kv: (-len(kv[0]), kv[0])))

    return OverrideReasons(
        version.strip(), tables["rule"], longest_first(tables["prefix"]), longest_first(tables["suffix"])
    )


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _fail(f"duplicate keys in an object: {sorted(k for k in keys if keys.count(k) > 1)}")
    return dict(pairs)


@functools.cache
def override_reasons() -> OverrideReasons:
    """The packaged table, validated once per process."""
    text = resources.files("plugin").joinpath(_DATA).read_text(encoding="utf-8")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise _fail(f"not JSON ({exc.msg}, line {exc.lineno})") from None
    return parse_override_reasons(raw)

"""Protected therapies: drugs whose removal is dangerous while a condition is charted (knowledge data).

The list is `plugin/knowledge/protected_therapies.json` (versioned; its "about" says how governance uses it).
A therapy is present in a regimen when one of the regimen's exposures carries one of its class keys or
ingredients; the safety step (steps.py) vetoes a change that leaves a therapy present before and absent
after while one of its conditions (terminology value sets) is charted. Validation is strict and happens on
first use: an unknown class key, ingredient or value set is an error, never a therapy that silently never
matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from plugin import terminology
from plugin.packaged import read_knowledge_json
from plugin.rules.model import Exposure

__all__ = [
    "ProtectedTherapies",
    "ProtectedTherapy",
    "ProtectedTherapyError",
    "parse_protected_therapies",
    "protected_therapies",
]

_TOP: Final = frozenset({"version", "about", "sources", "therapies"})
_THERAPY: Final = frozenset({"id", "label", "classes", "ingredients", "conditions", "knowledge"})
_ID: Final = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_KNOWLEDGE_ID: Final = re.compile(r"^kb\.[a-z0-9]+(-[a-z0-9]+)*$")


class ProtectedTherapyError(ValueError):
    """The protected-therapies file is malformed or names something the terminology does not know."""


@dataclass(frozen=True, slots=True)
class ProtectedTherapy:
    """One therapy: present when an exposure has one of `classes` or `ingredients`."""

    id: str
    label: str
    classes: frozenset[str]
    ingredients: frozenset[str]
    conditions: tuple[str, ...]  # terminology value-set names; any one of them makes the therapy protected
    knowledge: str  # the knowledge-base entry that says why

    def covers(self, exposure: Exposure) -> bool:
        return exposure.has(*self.classes) or not self.ingredients.isdisjoint(exposure.ingredients)


@dataclass(frozen=True, slots=True)
class ProtectedTherapies:
    version: str
    therapies: tuple[ProtectedTherapy, ...]


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ProtectedTherapyError(f"{where}: expected a JSON object")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProtectedTherapyError(f"{where}: expected a non-blank string")
    return value


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ProtectedTherapyError(f"{where}: expected a list of non-blank strings")
    if len(set(value)) != len(value):
        raise ProtectedTherapyError(f"{where}: duplicate entries")
    return tuple(value)


def _therapy(raw: object, where: str) -> ProtectedTherapy:
    body = _object(raw, where)
    if set(body) != _THERAPY:
        raise ProtectedTherapyError(f"{where}: keys must be {sorted(_THERAPY)}, got {sorted(body)}")
    therapy_id = _text(body["id"], f"{where}.id")
    if not _ID.match(therapy_id):
        raise ProtectedTherapyError(f"{where}.id: {therapy_id!r} is not a lower-case hyphenated id")
    classes = _names(body["classes"], f"{where}.classes")
    if unknown := sorted(set(classes) - terminology.CLASS_KEYS):
        raise ProtectedTherapyError(f"{where}.classes: unknown class key(s) {unknown}")
    ingredients = _names(body["ingredients"], f"{where}.ingredients")
    if unknown := sorted(i for i in ingredients if not terminology.is_known_ingredient(i)):
        raise ProtectedTherapyError(f"{where}.ingredients: unknown ingredient(s) {unknown}")
    if not classes and not ingredients:
        raise ProtectedTherapyError(f"{where}: needs at least one class or ingredient")
    conditions = _names(body["conditions"], f"{where}.conditions")
    if not conditions or (unknown := sorted(set(conditions) - terminology.value_set_names())):
        raise ProtectedTherapyError(f"{where}.conditions: need known value-set names, got {list(conditions)}")
    knowledge = _text(body["knowledge"], f"{where}.knowledge")
    if not _KNOWLEDGE_ID.match(knowledge):
        raise ProtectedTherapyError(f"{where}.knowledge: {knowledge!r} is not a knowledge-base id")
    return ProtectedTherapy(
        id=therapy_id,
        label=_text(body["label"], f"{where}.label"),
        classes=frozenset(classes),
        ingredients=frozenset(ingredients),
        conditions=conditions,
        knowledge=knowledge,
    )


def parse_protected_therapies(document: object) -> ProtectedTherapies:
    """Validate a decoded protected-therapies document; ProtectedTherapyError names the first problem."""
    top = _object(document, "protected_therapies")
    if set(top) != _TOP:
        raise ProtectedTherapyError(f"protected_therapies: keys must be {sorted(_TOP)}, got {sorted(top)}")
    version = _text(top["version"], "version")
    _text(top["about"], "about")
    _names(top["sources"], "sources")
    raw = top["therapies"]
    if not isinstance(raw, list) or not raw:
        raise ProtectedTherapyError("therapies: expected a non-empty list")
    therapies = tuple(_therapy(item, f"therapies[{n}]") for n, item in enumerate(raw))
    ids = [t.id for t in therapies]
    if len(set(ids)) != len(ids):
        raise ProtectedTherapyError("therapies: duplicate ids")
    return ProtectedTherapies(version, therapies)


@functools.cache
def protected_therapies() -> ProtectedTherapies:
    """The packaged knowledge/protected_therapies.json, read and validated on first use only."""
    return parse_protected_therapies(read_knowledge_json("protected_therapies.json", ProtectedTherapyError))

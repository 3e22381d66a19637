"""Allergy records to drug classes, by code and by word, from the versioned knowledge/allergens.json."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from plugin import terminology
from plugin.context.codes import system_name
from plugin.context.model import Code
from plugin.packaged import read_knowledge_json

NON_DRUG_CATEGORIES: frozenset[str] = frozenset({"food", "environment", "biologic"})
CODE_SYSTEMS: tuple[str, ...] = ("rxnorm", "snomed")

_TOP_LEVEL = frozenset({"about", "sources", "codes", "words", "drug_unspecified", "non_drug", "none_known"})
_CODE = re.compile(r"^\d{1,18}$")
_WORD = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SPLIT = re.compile(r"[^a-z0-9-]+")


class AllergenError(ValueError):
    """The allergen data file is malformed or names a class the terminology does not know."""


@dataclass(frozen=True, slots=True)
class AllergenData:
    codes: Mapping[str, Mapping[str, str]]  # system → code → class key
    words: Mapping[str, str]  # lower-case word or abbreviation → class key
    drug_unspecified: Mapping[str, frozenset[str]]  # system → codes of "drug allergy" without a drug
    non_drug: Mapping[str, Mapping[str, str]]  # system → code → food | environment | biologic
    none_known_codes: Mapping[str, frozenset[str]]
    none_known_words: frozenset[str]
    none_known_prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AllergenMatch:
    """What one allergy record names, as far as the data can tell."""

    classes: frozenset[str]  # drug class keys; empty when nothing resolved
    drug: bool  # the record names a drug (by code, word, ingredient or a "drug allergy" code)
    non_drug: str | None  # food | environment | biologic when the code says so
    none_known: bool  # "No known allergy" and its kin: a statement, not an allergy


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise AllergenError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AllergenError(f"{where}: expected a list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        raise AllergenError(f"{where}: duplicate entries in {value!r}")
    return value


def _by_system(value: object, where: str) -> dict[str, object]:
    systems = _object(value, where)
    if unknown := sorted(set(systems) - set(CODE_SYSTEMS)):
        raise AllergenError(f"{where}: unknown code systems {unknown}; known: {list(CODE_SYSTEMS)}")
    return systems


def _code_map(value: object, where: str, allowed: frozenset[str]) -> dict[str, str]:
    mapped: dict[str, str] = {}
    for code, target in _object(value, where).items():
        if not _CODE.match(code):
            raise AllergenError(f"{where}: {code!r} is not a numeric code")
        if not isinstance(target, str) or target not in allowed:
            raise AllergenError(f"{where}[{code!r}]: {target!r} is not one of the known keys")
        mapped[code] = target
    return mapped


def _code_set(value: object, where: str) -> frozenset[str]:
    listed = _strings(value, where)
    if bad := [code for code in listed if not _CODE.match(code)]:
        raise AllergenError(f"{where}: {bad} are not numeric codes")
    return frozenset(listed)


def parse_allergens(document: object) -> AllergenData:
    """Validate a decoded allergen document; AllergenError names the first problem found."""
    top = _object(document, "allergens")
    missing = sorted(_TOP_LEVEL - {"about"} - set(top))
    extra = sorted(set(top) - _TOP_LEVEL)
    if missing or extra:
        raise AllergenError(f"allergens: missing sections {missing}, unknown sections {extra}")
    if not _strings(top["sources"], "sources"):
        raise AllergenError("sources: name at least one source")
    classes = terminology.CLASS_KEYS
    codes = {
        system: MappingProxyType(_code_map(body, f"codes.{system}", classes))
        for system, body in _by_system(top["codes"], "codes").items()
    }
    words: dict[str, str] = {}
    for word, target in _object(top["words"], "words").items():
        if not _WORD.match(word):
            raise AllergenError(f"words: {word!r} must be one lower-case token")
        if not isinstance(target, str) or target not in classes:
            raise AllergenError(f"words[{word!r}]: {target!r} is not a class key")
        words[word] = target
    unspecified = {
        system: _code_set(body, f"drug_unspecified.{system}")
        for system, body in _by_system(top["drug_unspecified"], "drug_unspecified").items()
    }
    non_drug = {
        system: MappingProxyType(_code_map(body, f"non_drug.{system}", NON_DRUG_CATEGORIES))
        for system, body in _by_system(top["non_drug"], "non_drug").items()
    }
    none = _object(top["none_known"], "none_known")
    if sorted(none) != ["prefixes", "snomed", "words"]:
        raise AllergenError(f"none_known: expected snomed, words and prefixes, got {sorted(none)}")
    for system in CODE_SYSTEMS:
        drug = set(codes.get(system, {})) | unspecified.get(system, frozenset())
        if clash := sorted(drug & set(non_drug.get(system, {}))):
            raise AllergenError(f"{system} codes {clash} are listed both as drugs and as non-drug allergens")
    return AllergenData(
        codes=MappingProxyType(codes),
        words=MappingProxyType(words),
        drug_unspecified=MappingProxyType(unspecified),
        non_drug=MappingProxyType(non_drug),
        none_known_codes=MappingProxyType({"snomed": _code_set(none["snomed"], "none_known.snomed")}),
        none_known_words=frozenset(_strings(none["words"], "none_known.words")),
        none_known_prefixes=tuple(_strings(none["prefixes"], "none_known.prefixes")),
    )


@functools.cache
def allergens() -> AllergenData:
    """The packaged knowledge/allergens.json, read and validated on first use only."""
    return parse_allergens(read_knowledge_json("allergens.json", AllergenError))


def words_of(text: str) -> tuple[str, ...]:
    """Lower-case tokens of a display; a hyphenated token also yields its parts ("TMP-SMX" → tmp-smx, tmp, smx).

    Whole tokens only: "PCNA" is not "PCN", "ASAP" is not "ASA", and "sulfate" is not "sulfa".
    """
    found: list[str] = []
    for token in _SPLIT.split(text.lower()):
        token = token.strip("-")
        if token:
            found.append(token)
            if "-" in token:
                found.extend(part for part in token.split("-") if part)
    return tuple(dict.fromkeys(found))


def resolve(substance: Code) -> AllergenMatch:
    """The drug classes an allergy's substance names: its code first, then a class word, then drug names."""
    data = allergens()
    system, code = system_name(substance.system), substance.code.strip()
    display = substance.display
    lowered = " ".join(display.lower().split())
    words = words_of(display)
    if (
        code in data.none_known_codes.get(system, frozenset())
        or any(w in data.none_known_words for w in words)
        or lowered.startswith(data.none_known_prefixes)
    ):
        return AllergenMatch(frozenset(), drug=False, non_drug=None, none_known=True)
    if (by_code := data.codes.get(system, {}).get(code)) is not None:
        return AllergenMatch(frozenset({by_code}), drug=True, non_drug=None, none_known=False)
    non_drug = data.non_drug.get(system, {}).get(code)
    # A class word decides alone: "aspirin" is a salicylate allergy, for which other NSAIDs are
    # cross-reactive, even though aspirin is itself classed as an NSAID too.
    classes = {data.words[w] for w in words if w in data.words}
    known_drug = False
    if not classes:
        for name in (display, *words):
            classes.update(terminology.classes_of(name))
            known_drug = known_drug or terminology.is_known_ingredient(name)
    if not classes and not known_drug:
        # A brand or abbreviation ("Ceftin", "EES"): the product resolver knows it where the class words do not.
        product = terminology.resolve_product(None, display)
        if product.ingredients and not product.unknown:
            known_drug = True
            for name in product.ingredients:
                classes.update(terminology.classes_of(name))
    drug = (
        bool(classes)
        or known_drug
        or system == "rxnorm"
        or code in data.drug_unspecified.get(system, frozenset())
    )
    return AllergenMatch(frozenset(classes), drug=drug, non_drug=non_drug, none_known=False)


def categories(substance: Code, recorded: tuple[str, ...]) -> tuple[str, ...]:
    """The record's categories, with a known non-drug allergen's category put right.

    Synthea files pollen, mould, dander, dust mite and bee venom under "food"; where the code is a known
    environmental or food allergen its category replaces the recorded non-drug ones. A recorded
    "medication" is never dropped: a wrong drug flag costs a card, a lost one could cost a check.
    """
    known = allergens().non_drug.get(system_name(substance.system), {}).get(substance.code.strip())
    if known is None:
        return recorded
    return tuple(sorted({known} | ({"medication"} & set(recorded))))

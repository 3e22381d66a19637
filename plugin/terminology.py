"""Drug classes of ingredients, ingredients of RxNorm products, and condition/lab value sets for the rules."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from plugin.context.codes import normalise_ingredient, parse_product, system_name

# The class vocabulary lives here, not in the data file, so a typo in the data is an error at load time
# instead of a rule that silently never fires.
CLASS_KEYS: frozenset[str] = frozenset(
    {
        "anticoagulant",
        "vitamin-k-antagonist",
        "doac",
        "heparin",
        "antiplatelet",
        "salicylate",
        "nsaid",
        "cox2-inhibitor",
        "azole-antifungal",
        "macrolide",
        "strong-cyp3a4-inhibitor",
        "fluoroquinolone",
        "penicillin",
        "cephalosporin",
        "carbapenem",
        "beta-lactam",
        "sulfonamide-antibiotic",
        "trimethoprim",
        "nitrofurantoin",
        "tetracycline",
        "ace-inhibitor",
        "arb",
        "arni",
        "potassium-sparing-diuretic",
        "mineralocorticoid-antagonist",
        "potassium-supplement",
        "loop-diuretic",
        "thiazide",
        "beta-blocker",
        "non-dihydropyridine-ccb",
        "dihydropyridine-ccb",
        "cardiac-glycoside",
        "nitrate",
        "statin",
        "biguanide",
        "sulfonylurea",
        "insulin",
        "sglt2-inhibitor",
        "glp1-agonist",
        "dpp4-inhibitor",
        "thiazolidinedione",
        "opioid",
        "codeine-like-opioid",
        "benzodiazepine",
        "z-drug",
        "ssri",
        "snri",
        "tca",
        "maoi",
        "triptan",
        "serotonergic",
        "qt-prolonging",
        "antipsychotic",
        "anticonvulsant",
        "methotrexate",
        "immunosuppressant",
        "calcineurin-inhibitor",
        "corticosteroid",
        "saba",
        "laba",
        "ics",
        "lama",
        "leukotriene-antagonist",
        "antihistamine",
        "sedating-antihistamine",
        "stimulant",
        "bisphosphonate",
        "thyroid-hormone",
        "hormonal-contraceptive",
        "estrogen",
        "progestin",
        "teratogen",
        "retinoid",
        "valproate",
        "lithium",
        "iron-supplement",
        "vitamin-b12",
        "acetaminophen",
        "anticholinergic",
        "thrombolytic",
        "xanthine-oxidase-inhibitor",
        "antigout",
        "5-ht3-antagonist",
    }
)

VALUE_SET_SYSTEMS: tuple[str, ...] = ("snomed", "icd10", "loinc")

_TOP_LEVEL = frozenset({"about", "classes", "aliases", "unclassified", "rxnorm", "value_sets"})
_RXNORM_CODE = re.compile(r"^\d{1,10}$")


class TerminologyError(ValueError):
    """The terminology data file is malformed or names something the code does not know."""


@dataclass(frozen=True, slots=True)
class ValueSet:
    snomed: frozenset[str]
    icd10: tuple[str, ...]  # prefixes, upper-case without the dot, so "N18.3" and "N183" both match "N18"
    loinc: frozenset[str]


@dataclass(frozen=True, slots=True)
class Terminology:
    classes: Mapping[str, frozenset[str]]  # canonical ingredient → class keys
    aliases: Mapping[str, str]  # variant ingredient name → canonical ingredient
    unclassified: frozenset[str]  # reviewed ingredients no class key fits (epinephrine, ...)
    rxnorm: Mapping[str, tuple[str, ...]]  # RxNorm product code → canonical ingredients
    value_sets: Mapping[str, ValueSet]


def _icd10_key(code: str) -> str:
    return code.strip().upper().replace(".", "")


def _str_list(value: object, where: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or not (value or allow_empty):
        raise TerminologyError(f"{where}: expected a non-empty list of strings, got {value!r}")
    if not all(isinstance(item, str) and item.strip() == item and item for item in value):
        raise TerminologyError(f"{where}: every entry must be a non-blank string without padding: {value!r}")
    if len(set(value)) != len(value):
        raise TerminologyError(f"{where}: duplicate entries in {value!r}")
    return value


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TerminologyError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _parse_classes(raw: dict[str, object]) -> dict[str, frozenset[str]]:
    classes: dict[str, frozenset[str]] = {}
    for ingredient, keys in raw.items():
        listed = _str_list(keys, f"classes[{ingredient!r}]")
        unknown = sorted(set(listed) - CLASS_KEYS)
        if unknown:
            raise TerminologyError(
                f"classes[{ingredient!r}]: unknown class key(s) {unknown}; add them to CLASS_KEYS first"
            )
        classes[ingredient] = frozenset(listed)
    return classes


def _parse_value_sets(raw: dict[str, object]) -> dict[str, ValueSet]:
    value_sets: dict[str, ValueSet] = {}
    for name, body in raw.items():
        systems = _object(body, f"value_sets[{name!r}]")
        unknown = sorted(set(systems) - set(VALUE_SET_SYSTEMS))
        if unknown or not systems:
            raise TerminologyError(
                f"value_sets[{name!r}]: systems must be a non-empty subset of {VALUE_SET_SYSTEMS}, got {unknown}"
            )
        codes = {
            system: _str_list(listed, f"value_sets[{name!r}].{system}") for system, listed in systems.items()
        }
        value_sets[name] = ValueSet(
            snomed=frozenset(codes.get("snomed", ())),
            icd10=tuple(_icd10_key(prefix) for prefix in codes.get("icd10", ())),
            loinc=frozenset(codes.get("loinc", ())),
        )
    return value_sets


def parse_terminology(document: object) -> Terminology:
    """Validate a decoded terminology document; TerminologyError names the first problem found."""
    top = _object(document, "terminology")
    missing = sorted(_TOP_LEVEL - {"about"} - set(top))
    extra = sorted(set(top) - _TOP_LEVEL)
    if missing or extra:
        raise TerminologyError(f"terminology: missing sections {missing}, unknown sections {extra}")
    if not isinstance(top.get("about", ""), str):
        raise TerminologyError("about: expected a string")
    classes = _parse_classes(_object(top["classes"], "classes"))
    unclassified = frozenset(_str_list(top["unclassified"], "unclassified", allow_empty=True))
    if overlap := sorted(unclassified & set(classes)):
        raise TerminologyError(f"unclassified: {overlap} also have classes")
    known = set(classes) | unclassified

    aliases: dict[str, str] = {}
    for variant, target in _object(top["aliases"], "aliases").items():
        if not isinstance(target, str) or target not in known:
            raise TerminologyError(f"aliases[{variant!r}]: target {target!r} is not a known ingredient")
        if variant in known:
            raise TerminologyError(f"aliases[{variant!r}]: an alias must not also be a canonical ingredient")
        aliases[variant] = target

    rxnorm: dict[str, tuple[str, ...]] = {}
    for code, ingredients in _object(top["rxnorm"], "rxnorm").items():
        if not _RXNORM_CODE.match(code):
            raise TerminologyError(f"rxnorm: {code!r} is not an RxNorm code")
        listed = _str_list(ingredients, f"rxnorm[{code!r}]")
        if unknown := sorted(set(listed) - known):
            raise TerminologyError(
                f"rxnorm[{code!r}]: ingredients {unknown} are neither classed nor unclassified"
            )
        rxnorm[code] = tuple(listed)

    return Terminology(
        classes=MappingProxyType(classes),
        aliases=MappingProxyType(aliases),
        unclassified=unclassified,
        rxnorm=MappingProxyType(rxnorm),
        value_sets=MappingProxyType(_parse_value_sets(_object(top["value_sets"], "value_sets"))),
    )


@functools.cache
def terminology() -> Terminology:
    """The packaged knowledge/terminology.json, read and validated on first use only."""
    resource = resources.files("plugin") / "knowledge" / "terminology.json"
    try:
        document = json.loads(resource.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TerminologyError(f"cannot read {resource}: {exc}") from exc
    return parse_terminology(document)


def _canonical(ingredient: str) -> str:
    data = terminology()
    if ingredient in data.classes:
        return ingredient
    name = normalise_ingredient(ingredient)
    return data.aliases.get(name, name)


def classes_of(ingredient: str) -> frozenset[str]:
    """Class keys of one ingredient (any spelling parse_product or a user would give); empty if unknown."""
    return terminology().classes.get(_canonical(ingredient), frozenset())


def is_known_ingredient(ingredient: str) -> bool:
    """Whether a name (any spelling) is a reviewed ingredient, classed or not."""
    data = terminology()
    name = _canonical(ingredient)
    return name in data.classes or name in data.unclassified


def ingredients_of(rxnorm_code: str | None, display: str) -> tuple[str, ...]:
    """Canonical ingredients of a product: the curated RxNorm map first, the parsed display otherwise."""
    data = terminology()
    if rxnorm_code is not None and (mapped := data.rxnorm.get(rxnorm_code.strip())) is not None:
        return mapped
    return tuple(dict.fromkeys(_canonical(name) for name in parse_product(display).ingredients))


def classes_of_product(rxnorm_code: str | None, display: str) -> frozenset[str]:
    """Union of the class keys of every ingredient of a product."""
    found: set[str] = set()
    for name in ingredients_of(rxnorm_code, display):
        found |= classes_of(name)
    return frozenset(found)


def value_set_names() -> frozenset[str]:
    return frozenset(terminology().value_sets)


def in_value_set(name: str, system: str, code: str) -> bool:
    """Whether a coding belongs to a value set; `system` is a short name (snomed, icd10, loinc) or a URI.

    An unknown value-set name raises KeyError: a misspelt name in a rule must fail loudly, not never match.
    """
    value_set = terminology().value_sets.get(name)
    if value_set is None:
        raise KeyError(f"unknown value set {name!r}; known: {sorted(terminology().value_sets)}")
    short = system_name(system)
    if short == "snomed":
        return code.strip() in value_set.snomed
    if short == "loinc":
        return code.strip() in value_set.loinc
    if short == "icd10":
        return _icd10_key(code).startswith(value_set.icd10)
    return False

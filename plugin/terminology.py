"""Drug classes of ingredients, ingredients of RxNorm products, and condition/lab value sets for the rules."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from plugin.context.codes import normalise_ingredient, parse_product, system_name
from plugin.packaged import read_knowledge_json

# The class vocabulary lives here, not in the data file, so a typo in the data is an error at load time
# instead of a rule that silently never fires.
CLASS_KEYS: frozenset[str] = frozenset(
    {
        "anticoagulant",
        "alpha-1-blocker",
        "basal-insulin",
        "h2-antagonist",
        "central-alpha-agonist",
        "proton-pump-inhibitor",
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
        "cholinesterase-inhibitor",
        "5-alpha-reductase-inhibitor",
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
        "folate",  # folic acid and folinic acid (leucovorin): methotrexate rescue, prenatal supplement
        "skeletal-muscle-relaxant",  # centrally acting: a CNS-active class in the Beers criteria
        "aminoglycoside",
        "glycopeptide",
        # plugin/rules/high_harm.py
        "gabapentinoid",  # gabapentin, pregabalin: respiratory depression with opioids (FDA 2019)
        "serotonergic-opioid",  # tramadol, methadone, fentanyl, meperidine, tapentadol
        "pde5-inhibitor",
        "sgc-stimulator",  # riociguat: contraindicated with nitrates and PDE5 inhibitors
        "ergot",
        "strong-cyp1a2-inhibitor",  # ciprofloxacin, fluvoxamine (FDA table of strong CYP1A2 inhibitors)
        "tizanidine",
        "ramelteon",
        "thiopurine",  # azathioprine, mercaptopurine: inactivated by xanthine oxidase
        "sympathomimetic",  # pseudoephedrine, phenylephrine, atomoxetine: pressor with MAOIs (Phansalkar 2012)
        "nitroimidazole",  # metronidazole: raises the INR on warfarin
    }
)

VALUE_SET_SYSTEMS: tuple[str, ...] = ("snomed", "icd10", "loinc", "text")
# Words that make a problem's text about something other than the patient having the condition now.
_NOT_THE_CONDITION = re.compile(
    r"\b(family history|fh|screening|suspected|risk|ruled out|rule out|r/o|no|not|negative|denies|"
    r"pre|prediabetes|borderline|resolved|remission|fear of|at risk)\b",
    re.IGNORECASE,
)

_TOP_LEVEL = frozenset({"about", "classes", "aliases", "unclassified", "rxnorm", "value_sets"})
_RXNORM_CODE = re.compile(r"^\d{1,10}$")


class TerminologyError(ValueError):
    """The terminology data file is malformed or names something the code does not know."""


@dataclass(frozen=True, slots=True)
class ValueSet:
    snomed: frozenset[str]
    icd10: tuple[str, ...]  # prefixes, upper-case without the dot, so "N18.3" and "N183" both match "N18"
    loinc: frozenset[str]
    # Whole phrases a problem's own words may name the condition by, for codes no list holds (a SNOMED
    # descendant, a local code, text only): read only when the code belongs to no value set at all.
    text: re.Pattern[str] | None = None


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
        phrases = codes.get("text", ())
        if any(p != p.lower() or not re.fullmatch(r"[a-z0-9' -]+", p) for p in phrases):
            raise TerminologyError(f"value_sets[{name!r}].text: lower-case words and spaces only: {phrases}")
        value_sets[name] = ValueSet(
            snomed=frozenset(codes.get("snomed", ())),
            icd10=tuple(_icd10_key(prefix) for prefix in codes.get("icd10", ())),
            loinc=frozenset(codes.get("loinc", ())),
            text=re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + r")\b", re.IGNORECASE)
            if phrases
            else None,
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
    return parse_terminology(read_knowledge_json("terminology.json", TerminologyError))


def name_key(text: str) -> str:
    """Lookup form of a brand or text name: lower-case, single-spaced, no trailing punctuation."""
    return " ".join(text.lower().split()).strip(" .,;:")


@dataclass(frozen=True, slots=True)
class MedicationNames:
    """knowledge/medications.json, checked against the terminology it extends."""

    version: str
    classes: Mapping[str, frozenset[str]]  # ingredients added by medications.json → class keys
    unclassified: frozenset[str]
    ingredient_rxcui: Mapping[str, str]  # verified RxNorm ingredient code → canonical ingredient
    product_rxcui: Mapping[str, tuple[str, ...]]  # verified product / multi-ingredient code → ingredients
    brands: Mapping[str, tuple[str, ...]]  # name_key(brand) → ingredients
    text_names: Mapping[str, tuple[str, ...]]  # name_key(abbreviation or text name) → ingredients


_MEDICATION_SECTIONS = frozenset(
    {
        "about",
        "version",
        "source",
        "ingredient_rxcui",
        "product_rxcui",
        "unverified_rxcui",
        "brands",
        "text_names",
        "classes",
        "unclassified",
    }
)


def _name_map(raw: object, where: str, known: frozenset[str]) -> dict[str, tuple[str, ...]]:
    mapped: dict[str, tuple[str, ...]] = {}
    for key, targets in _object(raw, where).items():
        if key != name_key(key):
            raise TerminologyError(f"{where}[{key!r}]: keys are lower-case and single-spaced")
        listed = _str_list(targets, f"{where}[{key!r}]")
        if unknown := sorted(set(listed) - known):
            raise TerminologyError(
                f"{where}[{key!r}]: ingredients {unknown} are neither classed nor unclassified"
            )
        mapped[key] = tuple(listed)
    return mapped


def parse_medications(document: object, base: Terminology) -> MedicationNames:
    """Validate a decoded medications document against `base`; TerminologyError names the first problem."""
    top = _object(document, "medications")
    if sorted(set(top) ^ _MEDICATION_SECTIONS):
        raise TerminologyError(
            f"medications: sections must be {sorted(_MEDICATION_SECTIONS)}, got {sorted(top)}"
        )
    version = top["version"]
    if not isinstance(version, str) or not version:
        raise TerminologyError("medications.version: expected a non-empty string")
    classes = _parse_classes(_object(top["classes"], "medications.classes"))
    unclassified = frozenset(_str_list(top["unclassified"], "medications.unclassified", allow_empty=True))
    base_known = set(base.classes) | base.unclassified | set(base.aliases)
    # The two files must never disagree about an ingredient: a second opinion on a class is a conflict, not
    # an override, so a reviewer edits exactly one place.
    if overlap := sorted((set(classes) | unclassified) & base_known):
        raise TerminologyError(f"medications: {overlap} are already defined in terminology.json")
    if overlap := sorted(set(classes) & unclassified):
        raise TerminologyError(f"medications.unclassified: {overlap} also have classes")
    known = frozenset(set(base.classes) | base.unclassified | set(classes) | unclassified)
    ingredient_rxcui: dict[str, str] = {}
    for code, name in _object(top["ingredient_rxcui"], "medications.ingredient_rxcui").items():
        if not _RXNORM_CODE.match(code) or not isinstance(name, str) or name not in known:
            raise TerminologyError(
                f"medications.ingredient_rxcui[{code!r}]: {name!r} is not a known ingredient"
            )
        ingredient_rxcui[code] = name
    product_rxcui = _name_map(top["product_rxcui"], "medications.product_rxcui", known)
    if bad := sorted(code for code in product_rxcui if not _RXNORM_CODE.match(code)):
        raise TerminologyError(f"medications.product_rxcui: {bad} are not RxNorm codes")
    for code, names in product_rxcui.items():
        if code in base.rxnorm and set(base.rxnorm[code]) != set(names):
            raise TerminologyError(
                f"medications.product_rxcui[{code!r}]: terminology.json maps it differently"
            )
    if clash := sorted(set(ingredient_rxcui) & (set(product_rxcui) | set(base.rxnorm))):
        raise TerminologyError(f"medications.ingredient_rxcui: {clash} are also product codes")
    return MedicationNames(
        version=version,
        classes=MappingProxyType(classes),
        unclassified=unclassified,
        ingredient_rxcui=MappingProxyType(ingredient_rxcui),
        product_rxcui=MappingProxyType(product_rxcui),
        brands=MappingProxyType(_name_map(top["brands"], "medications.brands", known)),
        text_names=MappingProxyType(_name_map(top["text_names"], "medications.text_names", known)),
    )


@functools.cache
def medication_names() -> MedicationNames:
    """The packaged knowledge/medications.json, read and validated against terminology() on first use."""
    return parse_medications(read_knowledge_json("medications.json", TerminologyError), terminology())


def _canonical(ingredient: str) -> str:
    data = terminology()
    if ingredient in data.classes:
        return ingredient
    name = normalise_ingredient(ingredient)
    return data.aliases.get(name, name)


def classes_of(ingredient: str) -> frozenset[str]:
    """Class keys of one ingredient (any spelling parse_product or a user would give); empty if unknown."""
    name = _canonical(ingredient)
    found = terminology().classes.get(name)
    return found if found is not None else medication_names().classes.get(name, frozenset())


def _known(name: str) -> bool:
    data, extra = terminology(), medication_names()
    return (
        name in data.classes
        or name in data.unclassified
        or name in extra.classes
        or name in extra.unclassified
    )


@functools.cache
def known_ingredients() -> frozenset[str]:
    """Every reviewed ingredient name, classed or not, as rules see it."""
    data, extra = terminology(), medication_names()
    return frozenset({*data.classes, *data.unclassified, *extra.classes, *extra.unclassified})


def canonical_ingredient(ingredient: str) -> str:
    """The name rules see for an ingredient given in any spelling (an alias resolved, case and salt normalised)."""
    return _canonical(ingredient)


def is_known_ingredient(ingredient: str) -> bool:
    """Whether a name (any spelling) is a reviewed ingredient, classed or not."""
    return _known(_canonical(ingredient))


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a medication coding resolves to: ingredients in order, the names among them no review knows."""

    ingredients: tuple[
        str, ...
    ]  # canonical names; unknown ones as written (lower-case), so cards can name them
    unknown: tuple[str, ...]
    via: str  # rxnorm-product | rxnorm-ingredient | display | text | none

    @property
    def resolved(self) -> bool:
        return bool(self.ingredients) and not self.unknown


# Words of a free-text medication that name its form, route or release, never the drug.
_NOISE = frozenset(
    [
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "capsule",
        "capsules",
        "cap",
        "caps",
        "oral",
        "solution",
        "suspension",
        "injection",
        "injectable",
        "inhaler",
        "inhalation",
        "aerosol",
        "spray",
        "nasal",
        "topical",
        "cream",
        "ointment",
        "gel",
        "lotion",
        "patch",
        "transdermal",
        "system",
        "extended",
        "delayed",
        "release",
        "er",
        "xr",
        "sr",
        "cr",
        "xl",
        "la",
        "dr",
        "ec",
        "odt",
        "hfa",
        "ds",
        "diskus",
        "ellipta",
        "respimat",
        "chewable",
        "disintegrating",
        "sublingual",
        "sl",
        "film",
        "strip",
        "drops",
        "ophthalmic",
        "otic",
        "vial",
        "syringe",
        "prefilled",
        "pen",
        "kit",
        "pack",
        "day",
        "hr",
        "hour",
        "hours",
        "daily",
        "mg",
        "mcg",
        "ml",
        "meq",
        "mmol",
        "l",  # litres: "20 mEq/L"
        "infusion",
        "bag",
        "premix",
        "premixed",
        "gm",
        "unit",
        "units",
        "iu",
        "form",
        "product",
        # Who an OTC product is sold for, or that it is sold over the counter at all, says nothing about what is
        # in it ("Children's Motrin", "prenatal multivitamin, OTC").
        "otc",
        "children's",
        "childrens",
        "infants'",
        "infant's",
        "infants",
        "junior",
        "softgel",
        "softgels",
        "caplet",
        "caplets",
        "po",
        "iv",
        "im",
        "subq",
        "sc",
        "prn",
        "dose",
        "generic",
        "liquid",
        "elixir",
        "syrup",
        "powder",
        "granules",
        "suppository",
        "rectal",
        "vaginal",
        "ring",
        "implant",
        "effervescent",
        # Devices that deliver a drug say nothing about what is in it ("insulin aspart via Omnipod").
        "via",
        "pump",
        "omnipod",
        "kwikpen",
        "flexpen",
        "flextouch",
        "solostar",
        "pen",
        "autoinjector",
        "inhaler",
        "nebulizer",
        "nebuliser",
    ]
)
_BRACKET = re.compile(r"\[([^\]]*)\]")
_PARENTHESES = re.compile(r"\([^()]*\)")
_PARENTHESES_INNER = re.compile(r"\(([^()]*)\)")
_PARTS = re.compile(r"\s*(?:/|\+|&|,|;|\band\b|\bwith\b|\bin\b)\s*", re.IGNORECASE)


def _lookup(text: str) -> tuple[str, ...] | None:
    """Ingredients a whole name stands for: an ingredient (any spelling), a brand or an abbreviation."""
    key = name_key(text)
    if not key:
        return None
    extra = medication_names()
    for candidate in dict.fromkeys((key, normalise_ingredient(key))):
        canonical = terminology().aliases.get(candidate, candidate)
        if _known(canonical):
            return (canonical,)
        if (found := extra.brands.get(candidate) or extra.text_names.get(candidate)) is not None:
            return found
    return None


# Words before a drug's name that say who it is for, not what it is ("Children's honey cough syrup").
_AUDIENCE: Final = frozenset(
    {"children's", "childrens", "child", "infant", "infants", "infants'", "adult", "adults"}
)
_LEADING_WORDS: Final = 5


def _leading_name(text: str) -> tuple[str, ...] | None:
    """Ingredients of the longest known name the text starts with ("black cohosh root extract" → black cohosh,
    "Fleet Enema for adults" → sodium phosphate, "lidocaine viscous" → lidocaine): the last reading, for a name
    no other reading knows; None when it starts with no known name."""
    words = [w.strip(" .,;:()") for w in _PARENTHESES.sub(" ", text).split()]
    while words and words[0].lower() in _AUDIENCE:
        words = words[1:]
    words = [w for w in words if w]
    for size in range(min(_LEADING_WORDS, len(words)), 0, -1):
        lead = words[:size]
        if any(any(c.isdigit() for c in w) for w in lead):
            continue
        found = _lookup(" ".join(lead))
        if found is not None:
            return found
    return None


def _leading_name_and_parts(text: str) -> tuple[str, ...] | None:
    """`_leading_name`, with the known ingredients the text's other parts name ("NS + KCl 20 mEq/L": the
    leading saline must not hide the potassium; "parenteral nutrition: dextrose, calcium gluconate" keeps the
    calcium its rules look for)."""
    found = _leading_name(text)
    if found is None or not _PARTS.search(text):
        return found
    others, _ = _free_text(text)
    return tuple(dict.fromkeys((*found, *others)))


def lookup_name(text: str) -> tuple[str, ...] | None:
    """Ingredients a whole name stands for (an ingredient in any spelling, a brand, an abbreviation), or
    None: an exact reading, for finding drug names in prose word by word."""
    return _lookup(text)


# Vitamin letters with a number are names, not strengths ("vitamin D3 400 IU", "B12").
_VITAMIN_TOKEN: Final = re.compile(r"^(?:d[23]|b(?:1|2|3|5|6|7|9|12)|k[12])$", re.IGNORECASE)


def _strip(text: str) -> str:
    """`text` without bracketed or parenthesised notes, strengths, numbers and form words."""
    text = _PARENTHESES.sub(" ", _BRACKET.sub(" ", text))
    words = [
        w
        for w in text.split()
        if (_VITAMIN_TOKEN.match(w.strip(".,()")) or not any(c.isdigit() for c in w))
        and w.lower().strip(".,()") not in _NOISE
    ]
    return " ".join(words)


def _from_part(part: str) -> tuple[str, ...] | None:
    found = _lookup(part) or _lookup(stripped := _strip(part))
    if found is None and stripped:
        # A bare brand or abbreviation followed by words the noise list does not know ("Ventolin Evohaler"):
        # those are distinctive enough to trust on their own, generic words ("iron ...") are not.
        first = name_key(stripped.split()[0])
        extra = medication_names()
        found = extra.brands.get(first) or extra.text_names.get(first)
    return found


def _free_text(display: str) -> tuple[list[str], list[str]]:
    """Ingredients of text no product grammar covers ("Hydrocodone/APAP", "Percocet 5/325", "KCl ER")."""
    # A brand's first word stands for the whole text only when nothing else is named beside it: "Tylenol +
    # codeine" is two ingredients, not Tylenol.
    outside_notes = _PARENTHESES.sub(" ", _BRACKET.sub(" ", display))
    whole = _from_part(display) if not _PARTS.search(outside_notes) else _lookup(display)
    if whole is not None:
        return list(whole), []
    names: list[str] = []
    unknown: list[str] = []
    for part in _PARTS.split(_BRACKET.sub(" ", display)):
        if not _strip(part):
            continue
        found = _from_part(part)
        if found is None:
            unknown.append(name_key(_strip(part)))
        else:
            names.extend(found)
    return names, unknown


_JOINED: Final = re.compile(r"[(;+]|\s(and|with|in)\s", re.IGNORECASE)


# Context building and RuleFacts both resolve every medication on every hook, and a code alone may now read its
# text as well: the same (code, text) pairs recur across hooks, so each is resolved once.
@functools.lru_cache(maxsize=8192)
def resolve_product(rxnorm_code: str | None, display: str) -> Resolution:
    """Ingredients of a medication: RxNorm product, ingredient or brand code first, then the display or text.

    Codes: the curated product map of terminology.json, verified ingredient codes, verified product codes of
    medications.json. Text: the RxNorm product grammar (parse_product), a bracketed brand, then brand names and
    abbreviations, case-insensitively. Unverified codes are never used: a wrong code is worse than none.
    """
    data, extra = terminology(), medication_names()
    code = rxnorm_code.strip() if rxnorm_code is not None else ""
    if (mapped := data.rxnorm.get(code)) is not None:
        return Resolution(mapped, (), "rxnorm-product")
    if (ingredient := extra.ingredient_rxcui.get(code)) is not None:
        # An ingredient code on a combination ("oxycodone" coded, "oxyCODONE 5 MG / acetaminophen 325 MG Oral
        # Tablet" written; EHRs often code each ingredient of a combination as its own coding): the text, when it
        # reads wholly as known ingredients including the coded one, is the fuller account.
        if display:
            fuller = resolve_product(None, display)
            if not fuller.unknown and len(fuller.ingredients) > 1 and ingredient in fuller.ingredients:
                return Resolution(fuller.ingredients, (), "rxnorm-ingredient")
        return Resolution((ingredient,), (), "rxnorm-ingredient")
    if (mapped := extra.product_rxcui.get(code)) is not None:
        return Resolution(mapped, (), "rxnorm-product")
    names: list[str] = []
    unknown: list[str] = []
    for parsed in parse_product(display).ingredients:
        found = _lookup(parsed)
        if found is None:
            unknown.append(_canonical(parsed))
        else:
            names.extend(found)
    if unknown or not names:
        bracket = _BRACKET.search(display)
        brand = _lookup(bracket.group(1)) if bracket is not None else None
        if brand is not None:
            names, unknown = list(brand), []
    if unknown or not names:
        # "Lodoco 0.5 mg (colchicine) tablet": an unknown brand with its generic in parentheses. Only a note that
        # reads wholly as ingredients counts ("(OTC herbal)" does not).
        for note in _PARENTHESES_INNER.findall(display):
            note_names, note_unknown = _free_text(note)
            if note_names and not note_unknown:
                names, unknown = note_names, []
                break
    if unknown or not names:
        free_names, free_unknown = _free_text(display)
        # The free reading wins only when it leaves fewer names unknown (or finds more with as few).
        if (len(free_unknown), -len(free_names)) < (len(unknown), -len(names)):
            names, unknown = free_names, free_unknown
            via = "text"
        else:
            via = "display"
    else:
        via = "display"
        # "Paxlovid (nirmatrelvir 150 mg tablets; ritonavir 100 mg tablets)": the product grammar can read one
        # ingredient out of free text and take the rest for the dose form ("Calcium 600 mg + vitamin D3 400 IU").
        # A free reading that finds more known ingredients, and no unknown one, is the fuller account of the
        # product. RxNorm names carry no parentheses, semicolons, plus signs or joining words, so only text with them
        # is read twice ("dextrose 5% and sodium chloride 0.45% with KCl 20 mEq/L" is three ingredients, not one).
        if names and not unknown and _JOINED.search(display):
            free_names, free_unknown = _free_text(display)
            if not free_unknown and set(free_names) > set(names):
                names, via = free_names, "text"
            elif not free_unknown and not set(free_names) <= set(names):
                # Each reading finds what the other misses ("D5 1/2 NS with 20 KCl": the grammar reads D5, the
                # free reading saline and KCl): every known ingredient either finds belongs to the product.
                names, via = list(dict.fromkeys((*names, *free_names))), "text"
    if not names and not unknown:
        unknown = [name_key(_strip(display))] if _strip(display) else []
    if unknown:
        # Last: a name that starts with a known one ("black cohosh root extract"); what still reads as nothing
        # known stays unknown (fail closed).
        led = [(u, _leading_name_and_parts(u)) for u in unknown]
        if (
            not names
            and (whole := _leading_name_and_parts(display)) is not None
            and all(found is None for _, found in led)
        ):
            names, unknown, via = list(whole), [], "text"
        else:
            names.extend(n for _, found in led if found is not None for n in found)
            unknown = [u for u, found in led if found is None]
    ordered = tuple(dict.fromkeys([*names, *unknown]))
    if not ordered:
        return Resolution((), (), "none")
    return Resolution(ordered, tuple(dict.fromkeys(unknown)), via)


def ingredients_of(rxnorm_code: str | None, display: str) -> tuple[str, ...]:
    """Canonical ingredients of a product (see resolve_product); names nothing resolves are kept as written."""
    return resolve_product(rxnorm_code, display).ingredients


def classes_of_product(rxnorm_code: str | None, display: str) -> frozenset[str]:
    """Union of the class keys of every ingredient of a product."""
    found: set[str] = set()
    for name in ingredients_of(rxnorm_code, display):
        found |= classes_of(name)
    return frozenset(found)


def value_set_names() -> frozenset[str]:
    return frozenset(terminology().value_sets)


_PRE_WORDS: Final = re.compile(r"\bpre[- ]?(eclamp|existing)", re.IGNORECASE)


@functools.lru_cache(maxsize=8192)
def value_sets_named_by(text: str) -> frozenset[str]:
    """Value sets whose phrases a problem's text names (for a code no value set holds); none when the text
    speaks of a history in the family, a screening, a risk, a negation or a resolved problem."""
    # "Wolff-Parkinson-White", "heparin-induced": phrases are spaced words ("H. pylori" too); "pre-eclampsia" and
    # "pre-existing" are one word each, not a "pre-" that says the condition is not there yet (pre-diabetes).
    spaced = _PRE_WORDS.sub(r"pre\1", text).replace("-", " ").replace(". ", " ")
    if not text or _NOT_THE_CONDITION.search(spaced):
        return frozenset()
    return frozenset(
        name for name, v in terminology().value_sets.items() if v.text is not None and v.text.search(spaced)
    )


@functools.lru_cache(maxsize=8192)
def value_sets_of_code(system: str, code: str) -> tuple[str, ...]:
    """Every value set holding a coding, in name order; asked for each problem of every chart, so remembered
    (the value sets are loaded once and never change)."""
    return tuple(name for name in sorted(terminology().value_sets) if in_value_set(name, system, code))


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

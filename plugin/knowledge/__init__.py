"""Versioned clinical knowledge base: the cited facts that rules, retrieval and governance share."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, Protocol, cast
from urllib.parse import urlsplit

from plugin.context.codes import ANALYTES
from plugin.ids import KB_ID
from plugin.terminology import CLASS_KEYS, is_known_ingredient, value_set_names

__all__ = [
    "KINDS",
    "SEVERITIES",
    "AppliesTo",
    "Kind",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "KnowledgeEntry",
    "Population",
    "Severity",
    "Source",
    "load_from",
    "load_knowledge_base",
]

Kind = Literal["drug-safety", "guideline", "preventive", "monitoring"]
Severity = Literal["info", "warning", "critical"]
Sex = Literal["female", "male"]

KINDS: Final[tuple[Kind, ...]] = ("drug-safety", "guideline", "preventive", "monitoring")
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")
_SEXES: Final[tuple[Sex, ...]] = ("female", "male")

_MANIFEST: Final = "manifest.json"
_INPUT: Final = "<load_from>"
_MAX_STATEMENT: Final = 600
_MAX_TITLE: Final = 120
_MIN_AGE: Final = 0
_MAX_AGE: Final = 120

_INGREDIENT_RE: Final = re.compile(r"^[a-z0-9][a-z0-9 ,()/.'-]*$")
_SNOMED_RE: Final = re.compile(r"^[1-9][0-9]{5,17}$")
_ICD10_RE: Final = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
_LOINC_RE: Final = re.compile(r"^[0-9]{1,7}-[0-9]$")
_FILE_RE: Final = re.compile(r"^entries_[a-z0-9_]+\.json$")
_RELEASE_RE: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]*$")

_ENTRY_REQUIRED: Final = frozenset({"id", "title", "statement", "kind", "source", "applies_to"})
_ENTRY_OPTIONAL: Final = frozenset({"population", "severity_hint", "assertions"})
_ASSERTION_REQUIRED: Final = frozenset({"stance", "intent"})
_ASSERTION_OPTIONAL: Final = frozenset({"drugs", "when", "with", "direction", "tests", "labs", "allergies"})
# A lab condition: the analyte (plugin.context.codes.ANALYTES) and one bound.
_LAB_BOUNDS: Final = ("below", "at_or_above")
STANCES: Final = ("supports", "opposes")
ASSERTED_INTENTS: Final = ("start", "stop", "change-dose", "order-test")
DIRECTIONS: Final = ("reduce", "increase", "any")
_SOURCE_KEYS: Final = frozenset({"organisation", "document", "version", "url"})
_APPLIES_KEYS: Final = ("ingredients", "classes", "snomed", "icd10", "loinc", "value_sets")
_POPULATION_KEYS: Final = frozenset({"min_age", "max_age", "sex"})
_MANIFEST_KEYS: Final = frozenset({"name", "version", "files"})


class KnowledgeBaseError(ValueError):
    """A data file breaks the schema; names the file and, where known, the entry."""

    def __init__(self, file: str, entry_id: str | None, problem: str) -> None:
        where = file if entry_id is None else f"{file}: {entry_id}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.entry_id = entry_id
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fact comes from; cards show it and link to it, the model never supplies it."""

    organisation: str
    document: str
    version: str
    url: str


@dataclass(frozen=True, slots=True)
class AppliesTo:
    """The codes and concepts an entry is about; at least one tuple is non-empty."""

    ingredients: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    snomed: tuple[str, ...] = ()
    icd10: tuple[str, ...] = ()
    loinc: tuple[str, ...] = ()
    value_sets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Population:
    """Who a preventive or age-limited entry is for; ages are whole years, both bounds inclusive."""

    min_age: int | None = None
    max_age: int | None = None
    sex: Sex | None = None

    def includes(self, age: int | None, sex: str | None) -> bool:
        """True unless a known age or sex falls outside; unknown facts do not exclude."""
        if age is not None:
            if self.min_age is not None and age < self.min_age:
                return False
            if self.max_age is not None and age > self.max_age:
                return False
        return not (sex is not None and self.sex is not None and sex != self.sex)


AssertedIntent = Literal["start", "stop", "change-dose", "order-test"]
Direction = Literal["reduce", "increase", "any"]


@dataclass(frozen=True, slots=True)
class Assertion:
    """What an entry says about a medication or test action, machine-readable: it `stance`s (supports or
    opposes) the `intent` of any of `drugs` (ingredients or class keys) when every value set in `when` is
    charted and one of `with` (drug keys) is taken; empty lists are no condition. A change-dose names the
    drug whose dose changes and which way (`direction`); an order-test names the LOINC codes it orders
    (`tests`) and, in `drugs`, the drugs whose monitoring it is (none: the test stands on `when` alone)."""

    stance: Literal["supports", "opposes"]
    intent: AssertedIntent
    drugs: tuple[str, ...]
    when: tuple[str, ...] = ()
    with_drugs: tuple[str, ...] = ()
    direction: Direction = "any"
    tests: tuple[str, ...] = ()
    # Lab conditions, all of which must hold on a current value: ("egfr", "below", 30.0).
    labs: tuple[tuple[str, str, float], ...] = ()
    # An allergy condition: an active allergy record resolving to one of these drug classes.
    allergies: tuple[str, ...] = ()

    def describe(self) -> str:
        """ "opposes stop of anticoagulant when atrial-fibrillation", "supports change-dose (reduce) of
        gabapentin when ckd", "supports order-test of 2823-3 for spironolactone", for logs and the evidence
        page."""
        conditions = ", ".join(
            (
                *self.when,
                *(f"{a} {'<' if b == 'below' else '>='} {v:g}" for a, b, v in self.labs),
                *(f"{c} allergy" for c in self.allergies),
            )
        )
        conditions = f" when {conditions}" if conditions else ""
        taken = f" with {', '.join(self.with_drugs)}" if self.with_drugs else ""
        if self.intent == "order-test":
            taking = f" for {', '.join(self.drugs)}" if self.drugs else ""
            return f"{self.stance} order-test of {', '.join(self.tests)}{taking}{conditions}{taken}"
        way = f" ({self.direction})" if self.intent == "change-dose" and self.direction != "any" else ""
        return f"{self.stance} {self.intent}{way} of {', '.join(self.drugs)}{conditions}{taken}"


@dataclass(frozen=True, slots=True)
class KnowledgeEntry:
    """One cited fact or recommendation, written in our own words."""

    id: str
    title: str
    statement: str
    kind: Kind
    source: Source
    applies_to: AppliesTo
    population: Population | None = None
    severity_hint: Severity | None = None
    assertions: tuple[Assertion, ...] = ()


@dataclass(frozen=True)
class KnowledgeBase:
    """All entries by id, with the version that enters every review fingerprint."""

    name: str
    version: str
    entries: Mapping[str, KnowledgeEntry]
    _by_ingredient: Mapping[str, tuple[KnowledgeEntry, ...]] = field(init=False, repr=False, compare=False)
    _by_class: Mapping[str, tuple[KnowledgeEntry, ...]] = field(init=False, repr=False, compare=False)
    _by_value_set: Mapping[str, tuple[KnowledgeEntry, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frozen = MappingProxyType(dict(self.entries))
        object.__setattr__(self, "entries", frozen)
        object.__setattr__(
            self, "_by_ingredient", _index(frozen.values(), lambda e: e.applies_to.ingredients)
        )
        object.__setattr__(self, "_by_class", _index(frozen.values(), lambda e: e.applies_to.classes))
        object.__setattr__(self, "_by_value_set", _index(frozen.values(), lambda e: e.applies_to.value_sets))

    def get(self, entry_id: str) -> KnowledgeEntry | None:
        return self.entries.get(entry_id)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.entries

    def __iter__(self) -> Iterator[KnowledgeEntry]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def by_kind(self, kind: str) -> tuple[KnowledgeEntry, ...]:
        return tuple(e for e in self.entries.values() if e.kind == kind)

    def applying_to_ingredient(self, name: str) -> tuple[KnowledgeEntry, ...]:
        """Entries naming this ingredient (case and surrounding space ignored)."""
        return self._by_ingredient.get(name.strip().lower(), ())

    def applying_to_class(self, key: str) -> tuple[KnowledgeEntry, ...]:
        return self._by_class.get(key.strip().lower(), ())

    def applying_to_value_set(self, name: str) -> tuple[KnowledgeEntry, ...]:
        return self._by_value_set.get(name.strip().lower(), ())


class _Readable(Protocol):
    """What the loader needs of a file: importlib.resources Traversables and pathlib Paths both fit."""

    @property
    def name(self) -> str: ...

    def read_text(self, encoding: str | None = None) -> str: ...


@functools.cache
def load_knowledge_base() -> KnowledgeBase:
    """The packaged knowledge base named by manifest.json, validated once per process."""
    package = resources.files(__name__)
    manifest_file = package.joinpath(_MANIFEST)
    manifest = _parse(manifest_file)
    name, release, files = _check_manifest(manifest)
    return load_from([package.joinpath(f) for f in files], release=release, name=name)


def load_from(
    paths: Iterable[_Readable | str | os.PathLike[str]],
    *,
    release: str = "0.0.0",
    name: str = "r1cds-knowledge",
) -> KnowledgeBase:
    """Validate and load entry files given directly (tests, tooling); entries keep file order.

    Each file is ``{"entries": [...]}``. In ``applies_to`` an absent list means an empty one, but at least
    one list must name something. The version is ``release`` + "+" + the first 12 hex digits of a SHA-256
    over the canonical JSON of every entry taken in id order, so any change to any entry changes it while
    file layout, entry order and which file holds an entry do not.
    """
    if not _RELEASE_RE.match(release):
        raise KnowledgeBaseError(_INPUT, None, f"release {release!r} is not a version string")
    known_value_sets = value_set_names()
    entries: dict[str, KnowledgeEntry] = {}
    canonical: list[tuple[str, str]] = []
    for item in paths:
        readable: _Readable = Path(item) if isinstance(item, str | os.PathLike) else item
        document = _parse(readable)
        for raw in _entry_list(readable.name, document):
            entry = _entry(readable.name, raw, known_value_sets)
            if entry.id in entries:
                raise KnowledgeBaseError(readable.name, entry.id, "duplicate id")
            entries[entry.id] = entry
            canonical.append((entry.id, _canonical(raw)))
    if not entries:
        raise KnowledgeBaseError(_INPUT, None, "no entries")
    digest = hashlib.sha256()
    for _, text in sorted(canonical):
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    return KnowledgeBase(name=name, version=f"{release}+{digest.hexdigest()[:12]}", entries=entries)


def _index(
    entries: Iterable[KnowledgeEntry], keys: Callable[[KnowledgeEntry], tuple[str, ...]]
) -> MappingProxyType[str, tuple[KnowledgeEntry, ...]]:
    found: dict[str, list[KnowledgeEntry]] = {}
    for entry in entries:
        for key in keys(entry):
            found.setdefault(key, []).append(entry)
    return MappingProxyType({k: tuple(v) for k, v in found.items()})


def _canonical(raw: Mapping[str, object]) -> str:
    return json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(token: str) -> object:
    raise ValueError(f"non-standard JSON constant {token}")


def _parse(readable: _Readable) -> object:
    try:
        text = readable.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(readable.name, None, f"cannot read: {exc}") from exc
    try:
        return cast(
            object,
            json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant),
        )
    except ValueError as exc:
        raise KnowledgeBaseError(readable.name, None, f"invalid JSON: {exc}") from exc


def _check_manifest(manifest: object) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(manifest, dict):
        raise KnowledgeBaseError(_MANIFEST, None, "must be a JSON object")
    _exact_keys(_MANIFEST, None, "manifest", manifest, _MANIFEST_KEYS, frozenset())
    name = _text(_MANIFEST, None, "name", manifest["name"])
    release = _text(_MANIFEST, None, "version", manifest["version"])
    if not _RELEASE_RE.match(release):
        raise KnowledgeBaseError(_MANIFEST, None, f"version {release!r} is not a version string")
    files = manifest["files"]
    if not isinstance(files, list) or not files:
        raise KnowledgeBaseError(_MANIFEST, None, "files must be a non-empty list")
    names: list[str] = []
    for item in files:
        if not isinstance(item, str) or not _FILE_RE.match(item):
            raise KnowledgeBaseError(_MANIFEST, None, f"file name {item!r} must match entries_*.json")
        if item in names:
            raise KnowledgeBaseError(_MANIFEST, None, f"file {item!r} listed twice")
        names.append(item)
    return name, release, tuple(names)


def _entry_list(file: str, document: object) -> list[dict[str, object]]:
    if not isinstance(document, dict) or set(document) != {"entries"}:
        raise KnowledgeBaseError(file, None, 'must be an object with exactly one key, "entries"')
    entries = document["entries"]
    if not isinstance(entries, list):
        raise KnowledgeBaseError(file, None, '"entries" must be a list')
    checked: list[dict[str, object]] = []
    for position, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise KnowledgeBaseError(file, f"#{position}", "entry must be a JSON object")
        checked.append(raw)
    return checked


def _entry(file: str, raw: dict[str, object], known_value_sets: frozenset[str]) -> KnowledgeEntry:
    raw_id = raw.get("id")
    entry_id = raw_id if isinstance(raw_id, str) else "<no id>"
    _exact_keys(file, entry_id, "entry", raw, _ENTRY_REQUIRED, _ENTRY_OPTIONAL)
    if not isinstance(raw_id, str) or not KB_ID.match(raw_id):
        raise KnowledgeBaseError(file, entry_id, "id must match kb.<kebab-case>")
    title = _text(file, entry_id, "title", raw["title"])
    if len(title) > _MAX_TITLE:
        raise KnowledgeBaseError(file, entry_id, f"title longer than {_MAX_TITLE} characters")
    statement = _text(file, entry_id, "statement", raw["statement"])
    if len(statement) > _MAX_STATEMENT:
        raise KnowledgeBaseError(file, entry_id, f"statement longer than {_MAX_STATEMENT} characters")
    kind = raw["kind"]
    if kind not in KINDS:
        raise KnowledgeBaseError(file, entry_id, f"unknown kind {kind!r}")
    severity = raw.get("severity_hint")
    if severity is not None and severity not in SEVERITIES:
        raise KnowledgeBaseError(file, entry_id, f"unknown severity_hint {severity!r}")
    population = raw.get("population")
    return KnowledgeEntry(
        id=raw_id,
        title=title,
        statement=statement,
        kind=kind,
        source=_source(file, entry_id, raw["source"]),
        applies_to=_applies_to(file, entry_id, raw["applies_to"], known_value_sets),
        population=None if population is None else _population(file, entry_id, population),
        severity_hint=severity,
        assertions=_assertions(file, entry_id, raw.get("assertions", []), known_value_sets),
    )


def _drug_key_known(key: str) -> bool:
    return key in CLASS_KEYS or is_known_ingredient(key)


def _assertions(
    file: str, entry_id: str, raw: object, known_value_sets: frozenset[str]
) -> tuple[Assertion, ...]:
    if not isinstance(raw, list):
        raise KnowledgeBaseError(file, entry_id, "assertions must be a list")
    found: list[Assertion] = []
    for n, item in enumerate(raw):
        where = f"assertions[{n}]"
        if not isinstance(item, dict):
            raise KnowledgeBaseError(file, entry_id, f"{where} must be an object")
        found.append(_assertion(file, entry_id, where, item, known_value_sets))
    if len(set(found)) != len(found):
        raise KnowledgeBaseError(file, entry_id, "assertions repeat an assertion")
    return tuple(found)


def _assertion(
    file: str, entry_id: str, where: str, item: dict[str, object], known_value_sets: frozenset[str]
) -> Assertion:
    _exact_keys(file, entry_id, where, item, _ASSERTION_REQUIRED, _ASSERTION_OPTIONAL)
    stance, intent = item["stance"], item["intent"]
    if stance not in STANCES or intent not in ASSERTED_INTENTS:
        raise KnowledgeBaseError(
            file, entry_id, f"{where}: stance is one of {STANCES}, intent one of {ASSERTED_INTENTS}"
        )
    # Every intent but order-test is about a drug; an order-test may stand on its conditions alone.
    if intent != "order-test" and "drugs" not in item:
        raise KnowledgeBaseError(file, entry_id, f"{where} lacks drugs")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("drugs", "when", "with", "tests", "allergies"):
        values = item.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise KnowledgeBaseError(file, entry_id, f"{where}.{key} must be a list of names")
        if len(set(values)) != len(values):
            raise KnowledgeBaseError(file, entry_id, f"{where}.{key} repeats a value")
        lists[key] = tuple(values)
    if intent != "order-test" and not lists["drugs"]:
        raise KnowledgeBaseError(file, entry_id, f"{where}.drugs names nothing")
    for key in ("drugs", "with"):
        if unknown := [v for v in lists[key] if not _drug_key_known(v)]:
            raise KnowledgeBaseError(file, entry_id, f"{where}.{key}: unknown drug keys {unknown}")
    if unknown := [v for v in lists["allergies"] if v not in CLASS_KEYS]:
        raise KnowledgeBaseError(file, entry_id, f"{where}.allergies: unknown drug classes {unknown}")
    if unknown := [v for v in lists["when"] if v not in known_value_sets]:
        raise KnowledgeBaseError(file, entry_id, f"{where}.when: unknown value sets {unknown}")
    if intent == "order-test":
        if not lists["tests"]:
            raise KnowledgeBaseError(file, entry_id, f"{where}.tests must name a LOINC code for order-test")
        if malformed := [v for v in lists["tests"] if not _loinc_valid(v)]:
            raise KnowledgeBaseError(file, entry_id, f"{where}.tests: malformed LOINC codes {malformed}")
    elif "tests" in item:
        raise KnowledgeBaseError(file, entry_id, f"{where}.tests is only for order-test, not {intent}")
    direction = item.get("direction", "any")
    if intent != "change-dose" and "direction" in item:
        raise KnowledgeBaseError(file, entry_id, f"{where}.direction is only for change-dose, not {intent}")
    if direction not in DIRECTIONS:
        raise KnowledgeBaseError(file, entry_id, f"{where}.direction is one of {DIRECTIONS}")
    return Assertion(
        stance,
        intent,
        lists["drugs"],
        lists["when"],
        lists["with"],
        direction,
        lists["tests"],
        _lab_conditions(file, entry_id, where, item.get("labs", [])),
        lists["allergies"],
    )


def _lab_conditions(file: str, entry_id: str, where: str, raw: object) -> tuple[tuple[str, str, float], ...]:
    if not isinstance(raw, list):
        raise KnowledgeBaseError(file, entry_id, f"{where}.labs must be a list")
    found: list[tuple[str, str, float]] = []
    for n, item in enumerate(raw):
        bounds = [b for b in _LAB_BOUNDS if isinstance(item, dict) and b in item]
        if not isinstance(item, dict) or set(item) - {"analyte", *_LAB_BOUNDS} or len(bounds) != 1:
            raise KnowledgeBaseError(
                file, entry_id, f"{where}.labs[{n}] is {{'analyte': ..., 'below'|'at_or_above': number}}"
            )
        analyte, value = item.get("analyte"), item[bounds[0]]
        if analyte not in ANALYTES:
            raise KnowledgeBaseError(file, entry_id, f"{where}.labs[{n}]: unknown analyte {analyte!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise KnowledgeBaseError(
                file, entry_id, f"{where}.labs[{n}]: the bound must be a positive number"
            )
        found.append((str(analyte), bounds[0], float(value)))
    return tuple(found)


def _loinc_valid(code: str) -> bool:
    """Form and mod-10 check digit: a mistyped test code would otherwise support ordering nothing."""
    if not _LOINC_RE.match(code):
        return False
    digits = [int(c) for c in code.replace("-", "")]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 == 1 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _source(file: str, entry_id: str, raw: object) -> Source:
    if not isinstance(raw, dict):
        raise KnowledgeBaseError(file, entry_id, "source must be an object")
    _exact_keys(file, entry_id, "source", raw, _SOURCE_KEYS, frozenset())
    url = _text(file, entry_id, "source.url", raw["url"])
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in url):
        raise KnowledgeBaseError(file, entry_id, f"source.url must be an https URL, got {url!r}")
    return Source(
        organisation=_text(file, entry_id, "source.organisation", raw["organisation"]),
        document=_text(file, entry_id, "source.document", raw["document"]),
        version=_text(file, entry_id, "source.version", raw["version"]),
        url=url,
    )


def _applies_to(file: str, entry_id: str, raw: object, known_value_sets: frozenset[str]) -> AppliesTo:
    if not isinstance(raw, dict):
        raise KnowledgeBaseError(file, entry_id, "applies_to must be an object")
    _exact_keys(file, entry_id, "applies_to", raw, frozenset(), frozenset(_APPLIES_KEYS))
    lists: dict[str, tuple[str, ...]] = {}
    for key in _APPLIES_KEYS:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KnowledgeBaseError(file, entry_id, f"applies_to.{key} must be a list of strings")
        items = tuple(cast(list[str], value))
        if len(set(items)) != len(items):
            raise KnowledgeBaseError(file, entry_id, f"applies_to.{key} repeats a value")
        lists[key] = items
    for ingredient in lists["ingredients"]:
        if not _INGREDIENT_RE.match(ingredient) or ingredient != ingredient.strip():
            raise KnowledgeBaseError(file, entry_id, f"ingredient {ingredient!r} must be a lower-case name")
    for key in lists["classes"]:
        if key not in CLASS_KEYS:
            raise KnowledgeBaseError(file, entry_id, f"unknown drug class {key!r}")
    for code in lists["snomed"]:
        if not _SNOMED_RE.match(code):
            raise KnowledgeBaseError(file, entry_id, f"malformed SNOMED CT code {code!r}")
    for code in lists["icd10"]:
        if not _ICD10_RE.match(code):
            raise KnowledgeBaseError(file, entry_id, f"malformed ICD-10 code {code!r}")
    for code in lists["loinc"]:
        if not _LOINC_RE.match(code):
            raise KnowledgeBaseError(file, entry_id, f"malformed LOINC code {code!r}")
    for name in lists["value_sets"]:
        if name not in known_value_sets:
            raise KnowledgeBaseError(file, entry_id, f"unknown value set {name!r}")
    if not any(lists.values()):
        raise KnowledgeBaseError(file, entry_id, "applies_to names nothing")
    return AppliesTo(**lists)


def _population(file: str, entry_id: str, raw: object) -> Population:
    if not isinstance(raw, dict) or not raw:
        raise KnowledgeBaseError(file, entry_id, "population must be a non-empty object")
    _exact_keys(file, entry_id, "population", raw, frozenset(), _POPULATION_KEYS)
    ages: dict[str, int | None] = {}
    for key in ("min_age", "max_age"):
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not _MIN_AGE <= value <= _MAX_AGE
        ):
            raise KnowledgeBaseError(
                file, entry_id, f"population.{key} must be a whole number from {_MIN_AGE} to {_MAX_AGE}"
            )
        ages[key] = value
    low, high = ages["min_age"], ages["max_age"]
    if low is not None and high is not None and low > high:
        raise KnowledgeBaseError(file, entry_id, "population.min_age is above max_age")
    sex = raw.get("sex")
    if sex is not None and sex not in _SEXES:
        raise KnowledgeBaseError(file, entry_id, f"population.sex must be one of {_SEXES}")
    return Population(min_age=low, max_age=high, sex=cast(Sex | None, sex))


def _exact_keys(
    file: str,
    entry_id: str | None,
    what: str,
    raw: Mapping[str, object],
    required: frozenset[str],
    optional: frozenset[str],
) -> None:
    missing = sorted(required - raw.keys())
    if missing:
        raise KnowledgeBaseError(file, entry_id, f"{what} lacks {', '.join(missing)}")
    unknown = sorted(raw.keys() - required - optional)
    if unknown:
        raise KnowledgeBaseError(file, entry_id, f"{what} has unknown keys {', '.join(unknown)}")


def _text(file: str, entry_id: str | None, what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeBaseError(file, entry_id, f"{what} must be a non-empty string")
    if value != value.strip():
        raise KnowledgeBaseError(file, entry_id, f"{what} has leading or trailing space")
    return value

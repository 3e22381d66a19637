"""The renal dosing table (knowledge/renal_dosing.json): labelled kidney-function limits per drug, validated."""

# The thresholds are data, reviewed clinically and versioned in the file; this module only checks them and
# answers "which limit does this value cross". It fails loudly on anything it cannot read as meant: an
# ingredient the terminology does not know would silently never match a drug, and a misspelt key or an
# action outside the vocabulary would silently change a card.

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from plugin import terminology
from plugin.errors import PluginError
from plugin.ids import KB_ID, RULE_ID
from plugin.packaged import read_knowledge_json

__all__ = [
    "Criteria",
    "RenalDosingError",
    "RenalDrug",
    "RenalTable",
    "Threshold",
    "parse_renal_dosing",
    "renal_dosing",
]

_DATA: Final = "knowledge/renal_dosing.json"
Basis = Literal["crcl", "egfr", "criteria"]
Bound = Literal["below", "at_or_below", "above"]
BASES: Final[tuple[Basis, ...]] = ("crcl", "egfr", "criteria")
Route = Literal["oral", "parenteral"]
ROUTES: Final[tuple[Route, ...]] = ("oral", "parenteral")
BOUNDS: Final[tuple[Bound, ...]] = ("below", "at_or_below", "above")
# "avoid" and "contraindicated" warn; "do not start" warns on a new order only; dose changes inform, and
# "start low" (a label's advice on the first dose and titration) informs on a new order only.
ACTIONS: Final = ("contraindicated", "avoid", "do not start", "reduce dose", "start low")
NEW_ORDER_ONLY: Final = frozenset({"do not start", "start low"})
_MAX_DOSE = re.compile(r"^max dose \S.*$")
_MAX_OPTION = 80  # leaves room in a 140-character summary for the drug, the value and the labelled limit
_MAX_LIMIT = 250.0  # mL/min: no kidney reaches it, so a larger number is a typo
_MAX_DOSES_PER_DAY = 24.0

_DRUG_KEYS: Final = frozenset(
    {
        "ingredients",
        "basis",
        "thresholds",
        "criteria",
        "label",
        "why",
        "evidence",
        "handled_by",
        "recheck_by",
        "route",
    }
)
_DRUG_REQUIRED: Final = frozenset({"ingredients", "basis", "label", "why", "evidence"})
_THRESHOLD_KEYS: Final = frozenset(
    {*BOUNDS, "action", "option", "source", "max_daily_mg", "max_doses_per_day", "treatment_mg_per_kg_daily"}
)
_CRITERIA_KEYS: Final = frozenset(
    {
        "need",
        "age_at_least",
        "weight_kg_at_most",
        "creatinine_at_least",
        "action",
        "option",
        "source",
        "max_single_mg",
        "for_value_set",
        "not_for_value_sets",
    }
)


class RenalDosingError(PluginError):
    """knowledge/renal_dosing.json is malformed or names something the code does not know."""


@dataclass(frozen=True, slots=True)
class Threshold:
    bound: Bound
    limit: float  # mL/min (crcl) or mL/min/1.73 m² (egfr)
    action: str  # one of ACTIONS or "max dose ..."
    option: str  # "consider ...", the card's suggestion
    source: str  # the label section (or other document) the limit comes from
    # The labelled daily dose at this function (mg): an order at or under it needs no card. None: any dose.
    max_daily_mg: float | None = None
    # The labelled number of doses a day where a label lengthens the interval (sotalol every 24 h): an order
    # given no more often needs no card, when its daily dose (if limited) is within too.
    max_doses_per_day: float | None = None
    # A weight-based treatment dose the label also gives at this function (enoxaparin 1 mg/kg once daily below
    # 30): a daily dose within 10% of this many mg/kg meets the daily limit as well.
    treatment_mg_per_kg_daily: float | None = None

    def crossed(self, value: float) -> bool:
        if self.bound == "below":
            return value < self.limit
        if self.bound == "at_or_below":
            return value <= self.limit
        return value > self.limit

    @property
    def warns(self) -> bool:
        return self.action in ("contraindicated", "avoid", "do not start")

    @property
    def wording(self) -> str:
        """The limit as a card shows it: "<30", "≤50", ">95"."""
        return f"{_SYMBOL[self.bound]}{self.limit:g}"


_SYMBOL: Final[dict[Bound, str]] = {"below": "<", "at_or_below": "≤", "above": ">"}


@dataclass(frozen=True, slots=True)
class Criteria:
    """A label's dose rule over several facts at once (apixaban: two of age, weight and creatinine)."""

    need: int
    age_at_least: int | None
    weight_kg_at_most: float | None
    creatinine_at_least: float | None
    action: str
    option: str
    source: str
    max_single_mg: float | None = None  # the reduced dose: a product at or under it needs no card
    # The indication the criteria are written for (apixaban: atrial fibrillation), and conditions that are other
    # indications with their own doses (VTE treatment): with one of those on record and not this one, the
    # criteria do not apply. Neither on record: they apply (the indication is unknown, so the card is shown).
    for_value_set: str | None = None
    not_for_value_sets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RenalDrug:
    ingredients: tuple[str, ...]  # a product matches when it contains all of them
    basis: Basis
    thresholds: tuple[Threshold, ...]
    criteria: Criteria | None
    label: str  # the US prescribing information the limits come from
    why: str  # one plain sentence for the card
    evidence: tuple[str, ...]  # knowledge-base ids
    handled_by: str | None = None  # another rule decides this drug's dose: this table only documents it
    recheck_by: str | None = None  # another rule asks for a missing eGFR for this drug
    # Where a label doses the injection and the tablets differently (acyclovir), each route has its entry;
    # None: one entry for every route.
    route: Route | None = None

    @property
    def name(self) -> str:
        return " + ".join(self.ingredients) + (" (injected)" if self.route == "parenteral" else "")

    def given_by(self, parenteral: bool) -> bool:
        return self.route is None or (self.route == "parenteral") == parenteral

    def crossed(self, value: float, proposed: bool) -> Threshold | None:
        """The limit `value` crosses that matters most: a warning before a dose change, then the narrowest."""
        found = [
            t for t in self.thresholds if t.crossed(value) and (proposed or t.action not in NEW_ORDER_ONLY)
        ]
        if not found:
            return None
        # Below-limits nest (below 60, below 30, below 15): the lowest one crossed is the specific advice.
        return min(found, key=lambda t: (not t.warns, t.limit if t.bound != "above" else -t.limit))


@dataclass(frozen=True, slots=True)
class RenalTable:
    version: str
    drugs: tuple[RenalDrug, ...]
    # Ingredient → positions of the entries that name it: every rule asks `match` for every exposure.
    _positions: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positions: dict[str, list[int]] = {}
        for at, drug in enumerate(self.drugs):
            for ingredient in drug.ingredients:
                positions.setdefault(ingredient, []).append(at)
        object.__setattr__(self, "_positions", {k: tuple(v) for k, v in positions.items()})

    def match(self, ingredients: tuple[str, ...], parenteral: bool = False) -> RenalDrug | None:
        """The most specific entry a product's ingredients contain (co-trimoxazole before trimethoprim), for the
        route it is given by."""
        taken = set(ingredients)
        candidates = sorted({at for i in taken for at in self._positions.get(i, ())})
        found = [
            d
            for d in (self.drugs[at] for at in candidates)
            if taken.issuperset(d.ingredients) and d.given_by(parenteral)
        ]
        return max(found, key=lambda d: len(d.ingredients)) if found else None


def _fail(where: str, problem: str) -> RenalDosingError:
    return RenalDosingError(f"{_DATA}: {where}: {problem}")


def _text(raw: dict[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _fail(where, f"{key} must be a non-empty string without padding")
    return value


def _action(raw: dict[str, object], where: str) -> tuple[str, str, str]:
    action = _text(raw, "action", where)
    if action not in ACTIONS and not _MAX_DOSE.match(action):
        raise _fail(where, f"unknown action {action!r}; expected one of {ACTIONS} or 'max dose ...'")
    option = _text(raw, "option", where)
    if not option.startswith("consider ") or len(option) > _MAX_OPTION:
        raise _fail(where, f"option must start 'consider ' and stay under {_MAX_OPTION} characters")
    return action, option, _text(raw, "source", where)


def _number(value: object, where: str, what: str, ceiling: float = _MAX_LIMIT) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= ceiling:
        raise _fail(where, f"{what} must be a number above 0 and at most {ceiling:g}, got {value!r}")
    return float(value)


_MAX_DOSE_MG: Final = 10_000.0
_MAX_MG_PER_KG: Final = 50.0  # no oral daily dose in the table comes near it: a typo guard


def _threshold(raw: object, where: str) -> Threshold:
    if not isinstance(raw, dict) or set(raw) - _THRESHOLD_KEYS:
        raise _fail(where, f"a threshold is an object with keys from {sorted(_THRESHOLD_KEYS)}")
    bounds = [b for b in BOUNDS if b in raw]
    if len(bounds) != 1:
        raise _fail(where, f"a threshold names exactly one of {BOUNDS}")
    bound = bounds[0]
    action, option, source = _action(raw, where)
    ceiling, doses = raw.get("max_daily_mg"), raw.get("max_doses_per_day")
    per_kg = raw.get("treatment_mg_per_kg_daily")
    if per_kg is not None and ceiling is None:
        raise _fail(where, "treatment_mg_per_kg_daily is an alternative to max_daily_mg, which it needs")
    return Threshold(
        bound,
        _number(raw[bound], where, bound),
        action,
        option,
        source,
        None if ceiling is None else _number(ceiling, where, "max_daily_mg", _MAX_DOSE_MG),
        None if doses is None else _number(doses, where, "max_doses_per_day", _MAX_DOSES_PER_DAY),
        None if per_kg is None else _number(per_kg, where, "treatment_mg_per_kg_daily", _MAX_MG_PER_KG),
    )


def _criteria(raw: object, where: str) -> Criteria:
    if not isinstance(raw, dict) or set(raw) - _CRITERIA_KEYS:
        raise _fail(where, f"criteria is an object with keys from {sorted(_CRITERIA_KEYS)}")
    facts = [k for k in ("age_at_least", "weight_kg_at_most", "creatinine_at_least") if k in raw]
    need = raw.get("need")
    if not isinstance(need, int) or isinstance(need, bool) or not 1 <= need <= len(facts):
        raise _fail(where, f"criteria.need must be a whole number from 1 to the {len(facts)} facts named")
    age = raw.get("age_at_least")
    if age is not None and (not isinstance(age, int) or isinstance(age, bool) or not 18 <= age <= 120):
        raise _fail(where, "criteria.age_at_least must be a whole number of years from 18 to 120")
    weight = raw.get("weight_kg_at_most")
    creatinine = raw.get("creatinine_at_least")
    action, option, source = _action(raw, where)
    return Criteria(
        need,
        age,
        None if weight is None else _number(weight, where, "weight_kg_at_most"),
        None if creatinine is None else _number(creatinine, where, "creatinine_at_least"),
        action,
        option,
        source,
        (
            None
            if raw.get("max_single_mg") is None
            else _number(raw["max_single_mg"], where, "max_single_mg", _MAX_DOSE_MG)
        ),
        *_indication(raw, where),
    )


def _indication(raw: dict[str, object], where: str) -> tuple[str | None, tuple[str, ...]]:
    indication, others = raw.get("for_value_set"), raw.get("not_for_value_sets", [])
    if (indication is None) != (not others):
        raise _fail(where, "criteria.for_value_set and criteria.not_for_value_sets come together")
    if indication is not None and not isinstance(indication, str):
        raise _fail(where, "criteria.for_value_set is a value set name")
    if not isinstance(others, list) or not all(isinstance(o, str) for o in others):
        raise _fail(where, "criteria.not_for_value_sets is a list of value set names")
    return indication, tuple(others)


def _drug(raw: object, position: int) -> RenalDrug:
    where = f"drugs[{position}]"
    if not isinstance(raw, dict):
        raise _fail(where, "must be an object")
    if missing := sorted(_DRUG_REQUIRED - set(raw)):
        raise _fail(where, f"lacks {missing}")
    if unknown := sorted(set(raw) - _DRUG_KEYS):
        raise _fail(where, f"unknown keys {unknown}")
    ingredients = raw["ingredients"]
    if (
        not isinstance(ingredients, list)
        or not ingredients
        or not all(isinstance(i, str) for i in ingredients)
        or len(set(ingredients)) != len(ingredients)
    ):
        raise _fail(where, "ingredients must be a non-empty list of distinct names")
    for name in ingredients:
        # Canonical names only: the rule compares them with Exposure.ingredients, which are canonical.
        if not terminology.is_known_ingredient(name) or terminology.ingredients_of(None, name) != (name,):
            raise _fail(where, f"unknown ingredient {name!r}: add it to knowledge/terminology.json first")
    where = f"{where} ({' + '.join(ingredients)})"
    basis = raw["basis"]
    if basis not in BASES:
        raise _fail(where, f"basis must be one of {BASES}, got {basis!r}")
    listed = raw.get("thresholds", [])
    if not isinstance(listed, list):
        raise _fail(where, "thresholds must be a list")
    thresholds = tuple(_threshold(t, where) for t in listed)
    if len({(t.bound, t.limit) for t in thresholds}) != len(thresholds):
        raise _fail(where, "two thresholds share a limit")
    criteria = None if raw.get("criteria") is None else _criteria(raw["criteria"], where)
    if (basis == "criteria") != (criteria is not None) or (basis == "criteria") == bool(thresholds):
        raise _fail(where, "basis 'criteria' takes criteria and no thresholds; crcl and egfr take thresholds")
    evidence = raw["evidence"]
    if (
        not isinstance(evidence, list)
        or not evidence
        or not all(isinstance(e, str) and KB_ID.match(e) for e in evidence)
    ):
        raise _fail(where, "evidence must be a non-empty list of kb.<kebab-case> ids")
    others: dict[str, str | None] = {}
    for key in ("handled_by", "recheck_by"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not RULE_ID.match(value)):
            raise _fail(where, f"{key} must be a rule id")
        others[key] = value
    why = _text(raw, "why", where)
    if not why.endswith("."):
        raise _fail(where, "why is one plain sentence ending in a full stop")
    route = raw.get("route")
    if route is not None and route not in ROUTES:
        raise _fail(where, f"route must be one of {ROUTES}, got {route!r}")
    return RenalDrug(
        tuple(ingredients),
        cast(Basis, basis),
        thresholds,
        criteria,
        _text(raw, "label", where),
        why,
        tuple(evidence),
        others["handled_by"],
        others["recheck_by"],
        cast(Route | None, route),
    )


def parse_renal_dosing(raw: object) -> RenalTable:
    """The table of renal_dosing.json's decoded content; RenalDosingError names the first problem."""
    if not isinstance(raw, dict) or set(raw) != {"about", "version", "drugs"}:
        raise RenalDosingError(f"{_DATA}: needs exactly about, version and drugs")
    if not isinstance(raw["version"], str) or not raw["version"].strip():
        raise RenalDosingError(f"{_DATA}: version must be a non-empty string")
    if not isinstance(raw["drugs"], list) or not raw["drugs"]:
        raise RenalDosingError(f"{_DATA}: drugs must be a non-empty list")
    drugs = tuple(_drug(item, position) for position, item in enumerate(raw["drugs"]))
    routes: dict[frozenset[str], list[Route | None]] = {}
    for drug in drugs:
        listed = routes.setdefault(frozenset(drug.ingredients), [])
        # Once for every route, or once per route: never both, or a product would match two entries.
        if drug.route in listed or (listed and (drug.route is None or None in listed)):
            raise RenalDosingError(f"{_DATA}: {' + '.join(drug.ingredients)} is listed twice for one route")
        listed.append(drug.route)
    return RenalTable(raw["version"], drugs)


@functools.cache
def renal_dosing() -> RenalTable:
    """The packaged table, read and validated on first use."""
    return parse_renal_dosing(read_knowledge_json("renal_dosing.json", RenalDosingError))

"""What rules see (exposures and facts of one context) and what they say (findings)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from plugin import terminology
from plugin.context.model import ClinicalContext, Code, LabSeries, Measurement, Problem, QualitativeResult
from plugin.rules.freshness import lab_windows

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Exposure:
    """A drug the patient takes (a current medication) or is about to take (a draft or proposed order)."""

    handle: str
    label: str
    ingredients: tuple[str, ...]
    classes: frozenset[str]
    proposed: bool
    # Fail closed: True when no ingredient is known or one of them is in no reviewed list, so the class-based
    # rules cannot see this drug and "no interaction found" would be unfounded (rules/resolution.py says so).
    unresolved: bool = False
    # Days since the current medication was ordered (authoredOn); None for a proposal or an undated record.
    started_days_ago: int | None = None

    def has(self, *classes: str) -> bool:
        return not self.classes.isdisjoint(classes)

    def new(self, within_days: int) -> bool:
        """Proposed now, or ordered within `within_days`; an undated record is not known to be new."""
        return self.proposed or (self.started_days_ago is not None and self.started_days_ago <= within_days)

    def taken_longer_than(self, days: int) -> bool:
        """A current medication ordered more than `days` ago; a proposal or an undated record is not known to be."""
        return not self.proposed and self.started_days_ago is not None and self.started_days_ago > days


@dataclass(frozen=True, slots=True)
class LabOrder:
    """A concrete monitoring step a card can offer as a FHIR ServiceRequest."""

    loinc: str
    display: str


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    severity: Severity
    summary: str  # under 140 characters, phrased as an option
    explanation: str  # one plain sentence
    evidence: tuple[str, ...]  # knowledge-base ids
    inputs: tuple[str, ...]  # patient handles the finding rests on
    proposed: tuple[str, ...] = ()  # handles of draft/proposed orders the finding is about
    order_lab: LabOrder | None = None


def _exposure(
    handle: str, code: Code, ingredients: tuple[str, ...], proposed: bool, started_days_ago: int | None = None
) -> Exposure:
    rxnorm = code.code if code.system == "rxnorm" else None
    names = terminology.ingredients_of(rxnorm, code.display) or ingredients
    classes = frozenset().union(*(terminology.classes_of(name) for name in names)) if names else frozenset()
    unresolved = not names or not all(terminology.is_known_ingredient(name) for name in names)
    return Exposure(handle, code.display, names, classes, proposed, unresolved, started_days_ago)


# Value sets read from a coded problem's words as well: a narrower kind (the type of heart failure) or the care
# the patient is in ("end-stage heart failure, home hospice"), which a general code does not carry.
_FROM_WORDS_TOO: Final = frozenset({"hfpef", "hfref", "end-of-life-care"})


def _value_sets_of(problems: Iterable[Problem]) -> dict[str, tuple[str, ...]]:
    """Value-set name → the handles of the problems in it: by code, or by the problem's own words when no code
    matches."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        matched = terminology.value_sets_of_code(problem.code.system, problem.code.code)
        for name in matched or sorted(terminology.value_sets_named_by(problem.code.display)):
            found.setdefault(name, []).append(problem.handle)
        if matched:
            # A general code beside words that say more ("Heart failure" coded, "with preserved ejection
            # fraction" written): the words add the narrower value sets the code does not reach.
            for name in sorted(terminology.value_sets_named_by(problem.code.display) - set(matched)):
                if name in _FROM_WORDS_TOO:
                    found.setdefault(name, []).append(problem.handle)
    return {k: tuple(v) for k, v in found.items()}


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """A context digested once for all rules: exposures with drug classes, value sets, latest labs."""

    context: ClinicalContext
    exposures: tuple[Exposure, ...]
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name → problem handles
    # name → handles of past problems (resolved, inactive, in remission): see RuleFacts.ever
    history: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Answers the rules ask again and again (with_class for each interaction pair, for each vetoed proposal):
    # computed once per facts. Facts never change once built, and `replace` starts a new memo (init=False).
    _memo: dict[object, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def of(cls, context: ClinicalContext, proposed: tuple[tuple[str, Code], ...] = ()) -> RuleFacts:
        exposures = [
            _exposure(m.handle, m.code, m.ingredients, False, m.authored_days_ago)
            for m in context.medications
        ]
        exposures += [
            _exposure(d.handle, d.code, d.ingredients, True)
            for d in context.draft_orders
            if d.resource_type == "MedicationRequest"
        ]
        exposures += [_exposure(handle, code, (), True) for handle, code in proposed]
        return cls(
            context, tuple(exposures), _value_sets_of(context.problems), _value_sets_of(context.past_problems)
        )

    def with_class(self, *classes: str) -> tuple[Exposure, ...]:
        key = ("with_class", classes)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = tuple(e for e in self.exposures if e.has(*classes))
        return found  # type: ignore[return-value]

    @property
    def drug_classes(self) -> frozenset[str]:
        """Every class any exposure carries: lets a rule about classes the chart lacks stop at once."""
        found = self._memo.get("drug_classes")
        if found is None:
            found = self._memo["drug_classes"] = frozenset().union(*(e.classes for e in self.exposures))
        return found  # type: ignore[return-value]

    @property
    def ingredient_heads(self) -> frozenset[str]:
        """Every ingredient and each of its leading words ("calcium carbonate" gives "calcium" too): the
        names `interactions.named` can match, so that a side no drug can be on stops at once."""
        found = self._memo.get("ingredient_heads")
        if found is None:
            found = self._memo["ingredient_heads"] = frozenset(
                head
                for e in self.exposures
                for i in e.ingredients
                for head in (i, *(i[:at] for at, char in enumerate(i) if char == " "))
            )
        return found  # type: ignore[return-value]

    def with_ingredient(self, *ingredients: str) -> tuple[Exposure, ...]:
        """Exposures containing any of these ingredients, in chart order."""
        if len(ingredients) == 1:
            (ingredient,) = ingredients
            return tuple(e for e in self.exposures if ingredient in e.ingredients)
        names = frozenset(ingredients)
        return tuple(e for e in self.exposures if not names.isdisjoint(e.ingredients))

    def has_condition(self, value_set: str) -> bool:
        return value_set in self.value_sets

    def ever(self, value_set: str) -> tuple[str, ...]:
        """The handles of a condition now or in the past (resolved, inactive, in remission)."""
        return (*self.value_sets.get(value_set, ()), *self.history.get(value_set, ()))

    def began_within(self, days: int, *value_sets: str, active_counts: bool = False) -> tuple[str, ...]:
        """Handles of these conditions, now or past, that began within `days` (an undated one counts: it is
        shown, not assumed old); with `active_counts`, an active one counts however old."""
        wanted = {h for name in value_sets for h in self.ever(name)}
        return tuple(
            p.handle
            for p in (*self.context.problems, *self.context.past_problems)
            if p.handle in wanted
            and (
                p.onset_days_ago is None
                or p.onset_days_ago <= days
                or (active_counts and p.clinical_status == "active")
            )
        )

    def result(self, test: str) -> QualitativeResult | None:
        """The newest answer to a qualitative test (codes.QUALITATIVE_TESTS), whatever it says; None if never done."""
        return next((r for r in self.context.results if r.test == test), None)

    def latest(self, analyte: str, within_days: int | None = None) -> Measurement | None:
        series: LabSeries | None = self.context.series(analyte)
        if series is None:
            return None
        latest = series.latest
        if within_days is not None and (latest.days_ago is None or latest.days_ago > within_days):
            return None
        return latest

    def current(self, analyte: str) -> Measurement | None:
        """The latest value when it is recent enough to act on (plugin.rules.freshness); None when there is
        none or it is stale: a stale value is unknown, and `stale` hands it to the rules that ask for a recheck."""
        latest = self.latest(analyte)
        window = lab_windows().get(analyte)
        if latest is None or window is None or window.current(latest.days_ago):
            return latest
        return None

    def stale(self, analyte: str) -> Measurement | None:
        """The latest value when it is older than its validity window (or undated); None otherwise."""
        latest = self.latest(analyte)
        window = lab_windows().get(analyte)
        if latest is None or window is None or window.current(latest.days_ago):
            return None
        return latest

    @property
    def age(self) -> int | None:
        return self.context.demographics.age_years

    @property
    def pregnant(self) -> bool:
        return self.context.pregnancy.status == "pregnant"

"""De-identified clinical facts the rules, the prompt and the fingerprint are built from.

Nothing here identifies the patient: no names, identifiers, addresses or absolute dates. Times are whole
days before the hook fired (`days_ago`); every fact carries a short handle (C1, M3, O12, A1, D2...) that
the model may cite, mapped back to the real FHIR reference only through `HandleMap`, which never leaves
our side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Sex = Literal["female", "male", "other", "unknown"]
PregnancyStatus = Literal["pregnant", "not-pregnant", "unknown"]
Trend = Literal["rising", "falling", "stable"]


@dataclass(frozen=True, slots=True)
class Code:
    system: str  # short system name: rxnorm, snomed, loinc, icd10, cvx, or the URI when unknown
    code: str
    display: str


CHILD_DAYS_UNTIL_YEARS = 18


@dataclass(frozen=True, slots=True)
class Demographics:
    age_years: int | None  # None when the birth date is absent; capped at 90 (Safe Harbor)
    sex: Sex
    deceased: bool = False
    # Days of life, kept only under CHILD_DAYS_UNTIL_YEARS (infant doses and childhood immunisations count in
    # weeks and months); None otherwise and when the birth date is absent. Never rendered for the model.
    age_days: int | None = None

    @property
    def age_label(self) -> str:
        if self.age_years is None:
            return "unknown"
        return "90+" if self.age_years >= 90 else str(self.age_years)


@dataclass(frozen=True, slots=True)
class Problem:
    handle: str
    code: Code
    clinical_status: str
    onset_days_ago: int | None


@dataclass(frozen=True, slots=True)
class Dosage:
    dose: str | None = None  # "1 tablet", "5 mg"
    route: str | None = None
    frequency: str | None = None  # "2 per 1 d"
    as_needed: bool = False
    max_daily_mg: float | None = (
        None  # the prescriber's cap a day (maxDosePerPeriod, or "do not exceed 2 g a day")
    )
    # The prescriber's cap a day in dose units ("maximum 8 tablets per day" as maxDosePerPeriod): the most an
    # as-needed order allows, which a dose range ("1-2 tablets") written as its low end does not show.
    max_daily_units: float | None = None


@dataclass(frozen=True, slots=True)
class Medication:
    handle: str
    code: Code
    ingredients: tuple[str, ...]  # lower-case generic names, e.g. ("hydrocodone", "acetaminophen")
    strength: str | None  # from the product, e.g. "5 MG"
    status: str
    dosage: Dosage
    authored_days_ago: int | None
    source: Literal["MedicationRequest", "MedicationStatement"]


@dataclass(frozen=True, slots=True)
class Allergy:
    handle: str
    substance: Code
    category: tuple[str, ...]  # food, medication, environment, biologic
    criticality: str | None
    clinical_status: str
    reactions: tuple[str, ...]
    kind: str | None  # allergy | intolerance
    # The categories as the record gave them, where the substance's code put them right (pollen filed as
    # "food"); empty when the record was right. A card asks for the record to be corrected at its source.
    category_as_recorded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value of a tracked analyte, in the analyte's canonical unit."""

    handle: str
    analyte: str  # catalog key: egfr, creatinine, potassium, ... (see plugin.context.codes)
    value: float
    unit: str
    days_ago: int | None
    interpretation: str | None = None  # H, L, HH, LL, N... as recorded


@dataclass(frozen=True, slots=True)
class LabSeries:
    """The latest value of an analyte and the ones before it, newest first."""

    analyte: str
    label: str
    measurements: tuple[Measurement, ...]
    trend: Trend | None

    @property
    def latest(self) -> Measurement:
        return self.measurements[0]


@dataclass(frozen=True, slots=True)
class Encounter:
    handle: str
    kind: str  # ambulatory, emergency, inpatient...
    reason: str | None
    days_ago: int | None


@dataclass(frozen=True, slots=True)
class Immunization:
    handle: str
    vaccine: Code
    days_ago: int | None  # the latest dose of this vaccine code
    doses: int = 1  # how many records of this vaccine code the chart holds (a two-dose series counts)
    first_days_ago: int | None = None  # the earliest dated dose of this vaccine code


@dataclass(frozen=True, slots=True)
class Procedure:
    handle: str
    code: Code
    days_ago: int | None


@dataclass(frozen=True, slots=True)
class DraftOrder:
    handle: str
    resource_type: str
    code: Code
    ingredients: tuple[str, ...]
    strength: str | None
    dosage: Dosage
    status: str
    intent: str


@dataclass(frozen=True, slots=True)
class Pregnancy:
    status: PregnancyStatus
    evidence: tuple[str, ...] = ()  # handles of the facts that say so
    # Completed weeks since the pregnancy problem's onset, read as gestational age (EHRs date a pregnancy from
    # the last menstrual period); None when undated, not pregnant, or past 44 weeks (a record left open).
    weeks: int | None = None


@dataclass(frozen=True, slots=True)
class SkippedResource:
    """A resource we could not use, reported instead of failing the hook."""

    resource_type: str
    source: str  # the prefetch key or "draftOrders"
    reason: str
    # False for what the service deliberately leaves aside (an order type it does not review); True for a
    # record it would have used but could not read, which the `rule.records-unreadable` card counts.
    unreadable: bool = True


@dataclass(frozen=True, slots=True)
class QualitativeResult:
    """A positive or negative lab answer a rule reads (an HLA allele, hepatitis B serology), newest first."""

    handle: str
    test: str  # a key of plugin.context.codes.QUALITATIVE_TESTS
    label: str
    result: Literal["positive", "negative", "indeterminate"]
    days_ago: int | None


@dataclass(frozen=True, slots=True)
class UntrustedNote:
    """Free text from the chart, kept only when configured; always shown to the model as data."""

    handle: str
    text: str


@dataclass(frozen=True, slots=True)
class ClinicalContext:
    demographics: Demographics
    problems: tuple[Problem, ...] = ()
    # Resolved, inactive or in remission (handles H1...): read only by rules for which a history counts, and
    # not rendered for the model, which sees the current problem list.
    past_problems: tuple[Problem, ...] = ()
    medications: tuple[Medication, ...] = ()
    allergies: tuple[Allergy, ...] = ()
    labs: tuple[LabSeries, ...] = ()
    results: tuple[QualitativeResult, ...] = ()  # newest first
    encounters: tuple[Encounter, ...] = ()
    immunizations: tuple[Immunization, ...] = ()
    # Immunisations recorded as not done (declined, deferred, contraindicated): a decision on record, never a dose.
    # Their handles are not assigned and they are not rendered for the model.
    declined_immunizations: tuple[Immunization, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    draft_orders: tuple[DraftOrder, ...] = ()
    pregnancy: Pregnancy = Pregnancy("unknown")
    notes: tuple[UntrustedNote, ...] = ()
    skipped: tuple[SkippedResource, ...] = ()
    # Where the hook's day falls in the year, for seasonal rules (influenza): never the year, never a date of
    # the patient's, and not rendered for the model. None when a context is made without a build date.
    month: int | None = None  # 1-12
    days_since_august_1: int | None = None  # since the most recent 1 August (0 on the day)
    # Dated recommendations (knowledge/recommendation_dates.json) that began after the hook's day, sorted: a chart
    # reviewed as of an earlier day is not held to later advice. Empty for a hook today, and when undated.
    recommendations_not_in_force: tuple[str, ...] = ()

    def in_force(self, recommendation: str) -> bool:
        return recommendation not in self.recommendations_not_in_force

    def series(self, analyte: str) -> LabSeries | None:
        return next((s for s in self.labs if s.analyte == analyte), None)


@dataclass(slots=True)
class HandleMap:
    """Handle → original FHIR reference. Stays on our side; the model only ever sees handles."""

    references: dict[str, str] = field(default_factory=dict)

    def resolve(self, handle: str) -> str | None:
        return self.references.get(handle)


@dataclass(frozen=True, slots=True)
class BuiltContext:
    context: ClinicalContext
    handles: HandleMap

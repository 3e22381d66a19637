"""The pharmacist-review gold set: its schema, and a loader that validates `pharmacist_review.json`.

Each patient is one Synthea fixture bundle reviewed at its last encounter (`as_of`) as a clinical pharmacist
would at patient-view; each finding names its basis (ingredients, labs, conditions), a family from FAMILIES
and a severity from SEVERITIES, and `rule_ids`: the product rules that count as raising it (empty: no rule
covers it, so it can only be missed).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

GOLD_PATH = Path(__file__).resolve().parent / "pharmacist_review.json"
CONSTRUCTED_PATH = Path(__file__).resolve().parent / "constructed_cases.json"
CHECK_RULES_PATH = Path(__file__).resolve().parent / "check_rules.json"
# Written after the rules by a reviewer who read none of them; scored once per release, never tuned on.
HELDOUT_PATH = Path(__file__).resolve().parent / "heldout_cases.json"
# The second held-out set (2026-12-07), written blind after the first was tuned on; tuned on the same day.
HELDOUT_V2_PATH = Path(__file__).resolve().parent / "heldout_v2_cases.json"
# The third held-out set (2026-12-07), written blind after v2 was tuned on; scored once, then tuned on.
HELDOUT_V3_PATH = Path(__file__).resolve().parent / "heldout_v3_cases.json"
# The fourth held-out set (2026-12-07), written blind after v3 was tuned on; scored once, then tuned on.
HELDOUT_V4_PATH = Path(__file__).resolve().parent / "heldout_v4_cases.json"
# The fifth held-out set (2026-12-07), written blind after v4 was tuned on; scored once, then tuned on.
HELDOUT_V5_PATH = Path(__file__).resolve().parent / "heldout_v5_cases.json"
# The sixth held-out set (2026-12-07), written blind after v5 was tuned on; scored once, then tuned on.
HELDOUT_V6_PATH = Path(__file__).resolve().parent / "heldout_v6_cases.json"
# The seventh held-out set (2026-12-07), written blind after v6 was tuned on; scored once, then tuned on.
HELDOUT_V7_PATH = Path(__file__).resolve().parent / "heldout_v7_cases.json"
# The eighth held-out set (2026-12-07), written blind after v7 was tuned on; scored once, then tuned on.
HELDOUT_V8_PATH = Path(__file__).resolve().parent / "heldout_v8_cases.json"
# The ninth held-out set (2026-12-07), written blind after v8 was tuned on; scored once, then tuned on.
HELDOUT_V9_PATH = Path(__file__).resolve().parent / "heldout_v9_cases.json"
# The tenth held-out set (2026-12-07), written blind after v9 was scored; scored once, then tuned on.
HELDOUT_V10_PATH = Path(__file__).resolve().parent / "heldout_v10_cases.json"
# The eleventh held-out set (2026-12-07), written blind while v10 was tuned on; scored once, then tuned on.
HELDOUT_V11_PATH = Path(__file__).resolve().parent / "heldout_v11_cases.json"
# The twelfth held-out set (2026-12-07), written blind while v11 was tuned on; scored once, then tuned on.
HELDOUT_V12_PATH = Path(__file__).resolve().parent / "heldout_v12_cases.json"
# Written blind in parallel after v12 was tuned on: v13 over general and geriatric practice, v14 over specialty
# clinics.
HELDOUT_V13_PATH = Path(__file__).resolve().parent / "heldout_v13_cases.json"
HELDOUT_V14_PATH = Path(__file__).resolve().parent / "heldout_v14_cases.json"
HELDOUT_V15_PATH = Path(__file__).resolve().parent / "heldout_v15_cases.json"
HELDOUT_V16_PATH = Path(__file__).resolve().parent / "heldout_v16_cases.json"
# Written blind (2026-12-07, eighth session) while v16 was tuned on; scored once on the rules as they then stood.
HELDOUT_V17_PATH = Path(__file__).resolve().parent / "heldout_v17_cases.json"
# Written blind in parallel while v17 was tuned on: v18 over ambulatory clinics, v19 over order review
# (emergency, discharge, nursing facility, infusion, paediatric and women's health prescriptions).
HELDOUT_V18_PATH = Path(__file__).resolve().parent / "heldout_v18_cases.json"
HELDOUT_V19_PATH = Path(__file__).resolve().parent / "heldout_v19_cases.json"
# Written blind (mixed chart review and order verification) while v18 and v19 were tuned on; tuned on from the
# ninth session.
HELDOUT_V20_PATH = Path(__file__).resolve().parent / "heldout_v20_cases.json"
# Written blind (ninth session: chart review and order verification, weighted to order-select dose checks) while
# v20 was tuned on; scored once at the commit that registered it, then tuned on.
HELDOUT_V21_PATH = Path(__file__).resolve().parent / "heldout_v21_cases.json"
# Written blind in parallel while v21 was tuned on: v22 (ambulatory review and order verification) and v23
# (transitions of care and older adults); scored once at the commit that registered them, tuned on from the tenth
# session.
HELDOUT_V22_PATH = Path(__file__).resolve().parent / "heldout_v22_cases.json"
HELDOUT_V23_PATH = Path(__file__).resolve().parent / "heldout_v23_cases.json"
# Written blind in parallel (tenth session) while v22 and v23 were tuned on: v24 (community hospital order
# verification and clinics) and v25 (integrated primary care); scored once at the commit that registered them, tuned
# on from the stop that registered v28 and v29.
HELDOUT_V24_PATH = Path(__file__).resolve().parent / "heldout_v24_cases.json"
HELDOUT_V25_PATH = Path(__file__).resolve().parent / "heldout_v25_cases.json"
# Written blind in parallel (tenth session) after v24 and v25 were registered, with no rule changed since but a
# refactor: v26 (regional medical centre order verification) and v27 (ambulatory specialty and long-term care);
# scored once at the commit that registered them, tuned on from the stop that registered v28 and v29, after those.
HELDOUT_V26_PATH = Path(__file__).resolve().parent / "heldout_v26_cases.json"
HELDOUT_V27_PATH = Path(__file__).resolve().parent / "heldout_v27_cases.json"
# Written blind in parallel while v24 and v25 were tuned on: v28 (ordinary health-system week:
# clinics, geriatric reviews, adult hospital order verification) and v29 (community pharmacy, transitions of care
# and a paediatric clinic); scored once at the commit that registered them, after most of that stop's tuning; tuned on
# from the twelfth session.
HELDOUT_V28_PATH = Path(__file__).resolve().parent / "heldout_v28_cases.json"
HELDOUT_V29_PATH = Path(__file__).resolve().parent / "heldout_v29_cases.json"
# Written blind in parallel while v26 and v27 were tuned on: v30 (hospital medicine, ED and surgery for adults and
# children, step-down and oncology infusion) and v31 (ambulatory care across primary care, specialty clinics,
# women's health, paediatrics and long-term care); scored once at the commit that registered them.
HELDOUT_V30_PATH = Path(__file__).resolve().parent / "heldout_v30_cases.json"
HELDOUT_V31_PATH = Path(__file__).resolve().parent / "heldout_v31_cases.json"
# Written blind in parallel (twelfth session) while v28 and v29 were tuned on: v32 (a Veterans Affairs-style integrated
# health system: primary care panels, opioid safety, home-based geriatrics, inpatient order verification) and v33 (a
# children's and women's hospital with its clinics); scored once at the commit that registered them, not tuned on.
HELDOUT_V32_PATH = Path(__file__).resolve().parent / "heldout_v32_cases.json"
HELDOUT_V33_PATH = Path(__file__).resolve().parent / "heldout_v33_cases.json"
# Written blind in parallel (thirteenth session) while v30 and v31 were tuned on: v34 (a rural critical-access hospital
# with swing beds and its federally qualified health centre: opioid use disorder, alcohol, hepatitis C, HIV PrEP,
# behavioural health, emergency orders) and v35 (a community pharmacy chain with an urgent-care clinic: new and refill
# prescriptions, OTC purchases, medication therapy management, pharmacist immunisations); scored once at the commit
# that registered them, not tuned on.
HELDOUT_V34_PATH = Path(__file__).resolve().parent / "heldout_v34_cases.json"
HELDOUT_V35_PATH = Path(__file__).resolve().parent / "heldout_v35_cases.json"
# Written blind in parallel later in the thirteenth session, after v34 and v35 were registered: v36 (an academic
# medical centre: inpatient medicine and cardiology, anticoagulation, nephrology, heart failure and kidney-transplant
# clinics) and v37 (a consultant pharmacist for nursing homes, assisted living, home health, hospice and a geriatric
# clinic); scored once at the commit that registered them, not tuned on.
HELDOUT_V36_PATH = Path(__file__).resolve().parent / "heldout_v36_cases.json"
HELDOUT_V37_PATH = Path(__file__).resolve().parent / "heldout_v37_cases.json"
# A blind second review of the Synthea charts (2026-12-07), added to the first pharmacist review's findings.
SECOND_REVIEW_PATH = Path(__file__).resolve().parent / "pharmacist_review_second.json"
# A blind, complete review of the constructed charts (2026-12-07), added to their authors' focused findings.
FULL_REVIEW_PATH = Path(__file__).resolve().parent / "constructed_full_review.json"

Family = Literal[
    "interaction",
    "renal",
    "monitoring",
    "allergy",
    "duplicate",
    "pregnancy",
    "paediatric",
    "older-adult",
    "care-gap",
    "other",
]
Severity = Literal["critical", "warning", "info"]
FAMILIES: tuple[str, ...] = get_args(Family)
SEVERITIES: tuple[str, ...] = get_args(Severity)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ingredient(_Strict):
    name: str = Field(min_length=1)  # lower-case generic name, as the product's terminology spells it
    rxnorm: str | None  # RxNorm ingredient code; null where the reviewer was not certain of it
    product_rxnorm: str | None  # the chart's RxNorm product code the ingredient comes from


class Lab(_Strict):
    name: str = Field(min_length=1)
    loinc: str = Field(pattern=r"^\d{1,7}-\d$")
    value: float | None  # latest on or before as_of; null with a note when there is none
    unit: str | None
    date: date | None
    note: str | None = None


class Condition(_Strict):
    snomed: str = Field(pattern=r"^\d+$")
    display: str


class Basis(_Strict):
    ingredients: tuple[Ingredient, ...] = ()
    labs: tuple[Lab, ...] = ()
    conditions: tuple[Condition, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.ingredients or self.labs or self.conditions)


class GoldFinding(_Strict):
    id: str = Field(pattern=r"^[0-9a-f]{8}-[a-z0-9-]+$")
    family: Family
    severity: Severity
    summary: str = Field(min_length=1)
    basis: Basis
    rationale: str = Field(min_length=1)
    source: str = Field(min_length=1)
    rule_ids: tuple[str, ...] = ()


class GoldPatient(_Strict):
    file: str = Field(min_length=1)  # bundle file name stem (it contains the patient's name: never print it)
    as_of: date
    nothing_to_say: bool
    findings: tuple[GoldFinding, ...]

    @property
    def key(self) -> str:
        """A printable id: the first 8 hex digits of the UUID that ends the file stem."""
        return self.file.rsplit("_", 1)[-1][:8]

    @model_validator(mode="after")
    def _nothing_means_none(self) -> GoldPatient:
        if self.nothing_to_say == bool(self.findings):
            raise ValueError(f"{self.key}: nothing_to_say must be true exactly when there are no findings")
        return self


class GoldSet(_Strict):
    version: int = Field(ge=1)
    hook: str
    written: date
    method: str = Field(min_length=1)
    families: dict[Family, str]
    severities: dict[Severity, str]
    patients: tuple[GoldPatient, ...]
    rule_families: dict[str, Family]  # product rule id → family, for counting cards no gold finding matches

    @model_validator(mode="after")
    def _unique(self) -> GoldSet:
        files = [p.file for p in self.patients]
        if len(set(files)) != len(files):
            raise ValueError("a bundle is listed twice")
        ids = [f.id for p in self.patients for f in p.findings]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"finding ids not unique: {duplicated}")
        for patient in self.patients:
            for finding in patient.findings:
                if not finding.id.startswith(patient.key):
                    raise ValueError(f"{finding.id}: a finding id starts with its patient's key")
        return self

    @property
    def rule_ids(self) -> frozenset[str]:
        return frozenset(
            {r for p in self.patients for f in p.findings for r in f.rule_ids} | set(self.rule_families)
        )


def load_gold(path: Path = GOLD_PATH) -> GoldSet:
    """The gold set, validated; raises pydantic.ValidationError when the file breaks the schema."""
    return GoldSet.model_validate_json(path.read_bytes())


# --- the constructed-case gold set ------------------------------------------------------------------------
# Small synthetic charts, each built around one clinical check (or its near miss), with the findings a
# pharmacist expects. A finding names a `check` key instead of rule ids; check_rules.json maps each check
# to the product rules that count as raising it, so the gold set never names a rule.

Hook = Literal["patient-view", "order-select"]
CHECK_KEY = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class ConstructedFinding(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    check: str = Field(pattern=CHECK_KEY)
    family: Family
    severity: Severity
    summary: str = Field(min_length=1)
    basis: Basis
    rationale: str = Field(min_length=1)
    source: str = Field(min_length=1)


class ConstructedCase(_Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9.]+)*$")
    hook: Hook
    as_of: date
    note: str = Field(min_length=1)
    negative_for: tuple[str, ...] = ()  # checks this chart is built NOT to raise (a near miss or boundary)
    # FHIR R4 resources as an EHR would hold them; one Patient among them.
    resources: tuple[dict[str, Any], ...] = Field(min_length=1)
    draft_orders: tuple[dict[str, Any], ...] = ()  # order-select only: MedicationRequests, status draft
    findings: tuple[ConstructedFinding, ...]

    @property
    def patient_id(self) -> str:
        (patient,) = (r for r in self.resources if r.get("resourceType") == "Patient")
        return str(patient["id"])

    @model_validator(mode="after")
    def _consistent(self) -> ConstructedCase:
        patients = [r for r in self.resources if r.get("resourceType") == "Patient"]
        if len(patients) != 1:
            raise ValueError(f"{self.id}: a case holds exactly one Patient")
        if self.hook == "patient-view" and self.draft_orders:
            raise ValueError(f"{self.id}: patient-view cases carry no draft orders")
        if self.hook == "order-select" and not self.draft_orders:
            raise ValueError(f"{self.id}: an order-select case needs a draft order")
        for draft in self.draft_orders:
            if draft.get("resourceType") != "MedicationRequest" or draft.get("status") != "draft":
                raise ValueError(f"{self.id}: draft orders are MedicationRequests with status draft")
        for finding in self.findings:
            if not finding.id.startswith(f"{self.id}-"):
                raise ValueError(f"{finding.id}: a finding id starts with its case id")
        positive = {f.check for f in self.findings}
        if positive & set(self.negative_for):
            raise ValueError(f"{self.id}: a check cannot be both found and negative")
        return self


class CodeReview(_Strict):
    system: str
    code: str
    display: str
    note: str


class ConstructedSet(_Strict):
    version: int = Field(ge=1)
    written: date
    method: str = Field(min_length=1)
    families: dict[Family, str]
    severities: dict[Severity, str]
    checks: dict[str, str]  # check key -> what it is about
    cases: tuple[ConstructedCase, ...]
    code_review: tuple[CodeReview, ...] = ()  # codes the author was not certain of

    @model_validator(mode="after")
    def _unique(self) -> ConstructedSet:
        ids = [c.id for c in self.cases]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"case ids not unique: {duplicated}")
        finding_ids = [f.id for c in self.cases for f in c.findings]
        duplicated = sorted({i for i in finding_ids if finding_ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"finding ids not unique: {duplicated}")
        used = {f.check for c in self.cases for f in c.findings} | {
            k for c in self.cases for k in c.negative_for
        }
        unknown = sorted(used - set(self.checks))
        if unknown:
            raise ValueError(f"checks not declared: {unknown}")
        return self


class Dispute(_Strict):
    summary: str
    why: str


class ReviewedCase(_Strict):
    case: str
    add: tuple[ConstructedFinding, ...]
    disputes: tuple[Dispute, ...] = ()


class NegativeConflict(_Strict):
    case: str
    check: str
    severity: Severity
    summary: str


class FullReview(_Strict):
    """More findings on the same charts from a second, blind reviewer who read the whole chart."""

    version: int = Field(ge=1)
    written: date
    method: str = Field(min_length=1)
    checks: dict[str, str]  # checks the reviewers used beyond the constructed set's own
    negative_conflicts: tuple[
        NegativeConflict, ...
    ] = ()  # left out: the author built the chart not to raise them
    cases: tuple[ReviewedCase, ...]

    def merged(self, constructed: ConstructedSet) -> ConstructedSet:
        """The constructed set with every case's findings extended by this review's; every case reviewed once."""
        added = {c.case: c.add for c in self.cases}
        if sorted(added) != sorted(c.id for c in constructed.cases) or len(added) != len(self.cases):
            raise ValueError("the full review covers every constructed case exactly once")
        cases = tuple(
            case.model_copy(update={"findings": (*case.findings, *added[case.id])})
            for case in constructed.cases
        )
        merged = constructed.model_copy(
            update={"checks": {**self.checks, **constructed.checks}, "cases": cases}
        )
        return ConstructedSet.model_validate(merged.model_dump())


class SecondReviewDispute(_Strict):
    finding_id: str
    reason: str = Field(min_length=1)


class SecondReviewChart(_Strict):
    file: str = Field(min_length=1)
    as_of: date
    add: tuple[ConstructedFinding, ...]
    disputes: tuple[SecondReviewDispute, ...] = ()


class SecondReview(_Strict):
    """A second, blind pharmacist review of the Synthea charts: findings the first review left out, named by
    check (check_rules.json maps them to rules, as for the constructed set), and disputes kept as written."""

    version: int = Field(ge=1)
    written: date
    method: str = Field(min_length=1)
    charts: tuple[SecondReviewChart, ...]

    def merged(self, gold: GoldSet, check_rules: dict[str, tuple[str, ...]]) -> GoldSet:
        """The first review with every chart's findings extended by this review's (rule ids from the checks)."""
        added = {c.file: c for c in self.charts}
        if sorted(added) != sorted(p.file for p in gold.patients) or len(added) != len(self.charts):
            raise ValueError("the second review covers every reviewed chart exactly once")
        patients = []
        for patient in gold.patients:
            chart = added[patient.file]
            if chart.as_of != patient.as_of:
                raise ValueError(f"{patient.key}: the second review reads the chart at the same date")
            extra = tuple(
                GoldFinding(
                    id=f.id,
                    family=f.family,
                    severity=f.severity,
                    summary=f.summary,
                    basis=f.basis,
                    rationale=f.rationale,
                    source=f.source,
                    rule_ids=check_rules.get(f.check, ()),
                )
                for f in chart.add
            )
            findings = (*patient.findings, *extra)
            patients.append(patient.model_copy(update={"findings": findings, "nothing_to_say": not findings}))
        return GoldSet.model_validate({**gold.model_dump(), "patients": [p.model_dump() for p in patients]})


def load_second_review(path: Path = SECOND_REVIEW_PATH) -> SecondReview:
    return SecondReview.model_validate_json(path.read_bytes())


def load_full_review(path: Path = FULL_REVIEW_PATH) -> FullReview:
    return FullReview.model_validate_json(path.read_bytes())


def load_constructed(path: Path = CONSTRUCTED_PATH) -> ConstructedSet:
    """The constructed-case gold set, validated; raises pydantic.ValidationError when it breaks the schema."""
    return ConstructedSet.model_validate_json(path.read_bytes())


def load_check_rules(path: Path = CHECK_RULES_PATH) -> dict[str, tuple[str, ...]]:
    """check key -> the product rule ids that count as raising it (filled in by the rule writers)."""
    raw = TypeAdapter(dict[str, list[str]]).validate_json(path.read_bytes())
    return {check: tuple(rules) for check, rules in raw.items()}

"""The pharmacist-review gold set: its schema, and a loader that validates `pharmacist_review.json`.

Each patient is one Synthea fixture bundle reviewed at its last encounter (`as_of`) as a clinical pharmacist
would at patient-view; each finding names its basis (ingredients, labs, conditions), a family from FAMILIES
and a severity from SEVERITIES, and `rule_ids`: the product rules that count as raising it (empty: no rule
covers it, so it can only be missed).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

GOLD_PATH = Path(__file__).resolve().parent / "pharmacist_review.json"

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

"""Curated code tables that turn FHIR R4 codings, quantities and drug names into the context's terms."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

# ---------------------------------------------------------------------------------------------------------
# Code systems
# ---------------------------------------------------------------------------------------------------------

_SYSTEMS: dict[str, str] = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/cvx": "cvx",
    "http://hl7.org/fhir/sid/ndc": "ndc",
    # CDA-era exports and some EHR gateways still send the HL7 OIDs instead of the FHIR URIs.
    "urn:oid:2.16.840.1.113883.6.1": "loinc",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    "urn:oid:2.16.840.1.113883.6.88": "rxnorm",
    "urn:oid:2.16.840.1.113883.6.90": "icd10",
    "urn:oid:2.16.840.1.113883.6.3": "icd10",
    "urn:oid:2.16.840.1.113883.12.292": "cvx",
    "urn:oid:2.16.840.1.113883.6.69": "ndc",
}


def system_name(uri: str | None) -> str:
    """Short name of a code system (loinc, snomed, rxnorm, icd10, cvx, ndc); the URI itself when unknown."""
    if uri is None:
        return "unknown"
    cleaned = uri.strip()
    # A trailing slash is a common hand-typed variant and never names a different system.
    return _SYSTEMS.get(cleaned, _SYSTEMS.get(cleaned.rstrip("/"), cleaned))


# ---------------------------------------------------------------------------------------------------------
# Analyte catalog
# ---------------------------------------------------------------------------------------------------------

Category = Literal["laboratory", "vital-signs"]


@dataclass(frozen=True, slots=True)
class Analyte:
    """A tracked measurement: the LOINC codes that report it, its canonical unit and its sane bounds."""

    key: str
    label: str
    loinc: frozenset[str]
    unit: str  # canonical, in display form; every value is converted to it
    category: Category
    safety: bool  # in the never-cut safety set: always kept, whatever the context budget
    low: float | None  # adult reference range, only for a crude "abnormal" flag
    high: float | None
    plausible: tuple[float, float]  # inclusive; anything outside is a data error, never a reading


def _analyte(
    key: str,
    label: str,
    loinc: Iterable[str],
    unit: str,
    category: Category,
    *,
    low: float | None = None,
    high: float | None = None,
    plausible: tuple[float, float],
    safety: bool = False,
) -> Analyte:
    return Analyte(key, label, frozenset(loinc), unit, category, safety, low, high, plausible)


_LAB: Category = "laboratory"
_VITAL: Category = "vital-signs"

# Plausible ranges cover children and critical illness (the charts include both), so they are deliberately
# wide: they exist to reject unit mix-ups and typos, not to judge whether a value is worrying.
ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        _analyte(
            "egfr",
            "eGFR",
            ("33914-3", "48642-3", "48643-1", "62238-1", "88293-6", "88294-4", "98979-8", "98980-6"),
            "mL/min/1.73m2",
            _LAB,
            low=60.0,
            plausible=(0.0, 250.0),
            safety=True,
        ),
        _analyte(
            "creatinine",
            "Creatinine",
            ("2160-0", "38483-4"),
            "mg/dL",
            _LAB,
            low=0.6,
            high=1.3,
            plausible=(0.05, 40.0),
            safety=True,
        ),
        _analyte(
            "potassium",
            "Potassium",
            ("2823-3", "6298-4"),
            "mmol/L",
            _LAB,
            low=3.5,
            high=5.0,
            plausible=(1.0, 12.0),
            safety=True,
        ),
        # QT safety: low magnesium, like low potassium, triggers torsades on QT-prolonging drugs.
        _analyte(
            "magnesium",
            "Magnesium",
            ("19123-9", "2601-3"),
            "mg/dL",
            _LAB,
            low=1.7,
            high=2.2,
            plausible=(0.2, 20.0),
        ),
        _analyte(
            "sodium",
            "Sodium",
            ("2951-2", "2947-0"),
            "mmol/L",
            _LAB,
            low=135.0,
            high=145.0,
            plausible=(90.0, 200.0),
        ),
        _analyte(
            "hba1c",
            "HbA1c",
            ("4548-4", "17856-6", "4549-2", "59261-8"),
            "%",
            _LAB,
            high=5.7,
            plausible=(2.0, 20.0),
        ),
        # Anticoagulation: an INR out of range is a bleeding or clotting risk that must never be dropped.
        _analyte(
            "inr",
            "INR",
            ("6301-6", "34714-6"),
            "",
            _LAB,
            low=0.8,
            high=1.2,
            plausible=(0.5, 25.0),
            safety=True,
        ),
        _analyte(
            "ldl",
            "LDL cholesterol",
            ("18262-6", "2089-1", "13457-7"),
            "mg/dL",
            _LAB,
            high=100.0,
            plausible=(1.0, 1500.0),
        ),
        _analyte(
            "total_cholesterol",
            "Total cholesterol",
            ("2093-3",),
            "mg/dL",
            _LAB,
            high=200.0,
            plausible=(20.0, 2000.0),
        ),
        _analyte("hdl", "HDL cholesterol", ("2085-9",), "mg/dL", _LAB, low=40.0, plausible=(1.0, 300.0)),
        _analyte(
            "triglycerides", "Triglycerides", ("2571-8",), "mg/dL", _LAB, high=150.0, plausible=(5.0, 20000.0)
        ),
        _analyte(
            "glucose",
            "Glucose",
            ("2339-0", "2345-7"),
            "mg/dL",
            _LAB,
            low=70.0,
            high=99.0,
            plausible=(5.0, 3000.0),
        ),
        _analyte(
            "hemoglobin", "Hemoglobin", ("718-7",), "g/dL", _LAB, low=12.0, high=17.5, plausible=(1.0, 30.0)
        ),
        _analyte(
            "hematocrit",
            "Hematocrit",
            ("4544-3", "20570-8"),
            "%",
            _LAB,
            low=36.0,
            high=50.0,
            plausible=(5.0, 80.0),
        ),
        _analyte(
            "platelets",
            "Platelets",
            ("777-3", "26515-7"),
            "10^3/uL",
            _LAB,
            low=150.0,
            high=450.0,
            plausible=(0.0, 5000.0),
        ),
        _analyte("alt", "ALT", ("1742-6",), "U/L", _LAB, high=40.0, plausible=(0.0, 30000.0)),
        _analyte(
            "uacr",
            "Urine albumin/creatinine ratio",
            ("9318-7", "14959-1"),
            "mg/g",
            _LAB,
            high=30.0,
            plausible=(0.0, 30000.0),
        ),
        # Thyroid replacement is dosed by TSH (rule.levothyroxine-tsh-recheck).
        _analyte("tsh", "TSH", ("3016-3",), "mIU/L", _LAB, low=0.4, high=4.0, plausible=(0.0, 1000.0)),
        # Serum urate: urate-lowering therapy aims below 6 mg/dL (ACR 2020 treat-to-target).
        _analyte("urate", "Uric acid", ("3084-1",), "mg/dL", _LAB, low=2.5, high=7.0, plausible=(0.0, 30.0)),
        # Serum digoxin, read for toxicity above 2 ng/mL (plugin.rules.monitoring).
        _analyte("digoxin", "Digoxin level", ("10535-3",), "ng/mL", _LAB, high=2.0, plausible=(0.0, 50.0)),
        _analyte(
            "vitamin_b12", "Vitamin B12", ("2132-9",), "pg/mL", _LAB, low=200.0, plausible=(0.0, 20000.0)
        ),
        # Serum lithium (drug_monitoring.json): the therapeutic range is about 0.6-1.2 mmol/L.
        _analyte("lithium", "Lithium level", ("14334-7",), "mmol/L", _LAB, high=1.2, plausible=(0.0, 15.0)),
        # Absolute neutrophil count: below 1.0 x10^3/uL on an antithyroid drug is agranulocytosis until shown not.
        _analyte(
            "neutrophils",
            "Neutrophils (absolute)",
            ("751-8", "26499-4", "753-4"),
            "10^3/uL",
            _LAB,
            low=1.5,
            high=7.5,
            plausible=(0.0, 200.0),
        ),
        # Absolute lymphocytes: below 0.5 x10^3/uL for six months on a fumarate ester calls for interruption.
        _analyte(
            "lymphocytes",
            "Lymphocytes (absolute)",
            ("731-0", "26474-7", "732-8"),
            "10^3/uL",
            _LAB,
            low=1.0,
            high=4.8,
            plausible=(0.0, 500.0),
        ),
        # HIV care: a CD4 count below 200 cells/uL calls for Pneumocystis prophylaxis (rule.pjp-prophylaxis-absent).
        _analyte("cd4", "CD4 count", ("24467-3",), "/uL", _LAB, low=500.0, plausible=(0.0, 5000.0)),
        # Left ventricular ejection fraction (echo or other imaging): 40% or less is HFrEF.
        _analyte(
            "lvef",
            "LV ejection fraction",
            ("10230-1", "8806-2", "18043-0"),
            "%",
            _LAB,
            low=50.0,
            plausible=(5.0, 90.0),
        ),
        _analyte(
            "leukocytes",
            "White cell count",
            ("6690-2", "26464-8"),
            "10^3/uL",
            _LAB,
            low=4.0,
            high=11.0,
            plausible=(0.0, 1000.0),
        ),
        _analyte(
            "systolic_bp",
            "Systolic blood pressure",
            ("8480-6",),
            "mmHg",
            _VITAL,
            low=90.0,
            high=140.0,
            plausible=(20.0, 300.0),
        ),
        _analyte(
            "diastolic_bp",
            "Diastolic blood pressure",
            ("8462-4",),
            "mmHg",
            _VITAL,
            low=60.0,
            high=90.0,
            plausible=(10.0, 200.0),
        ),
        _analyte(
            "heart_rate",
            "Heart rate",
            ("8867-4",),
            "/min",
            _VITAL,
            low=60.0,
            high=100.0,
            plausible=(10.0, 300.0),
        ),
        _analyte(
            "respiratory_rate",
            "Respiratory rate",
            ("9279-1",),
            "/min",
            _VITAL,
            low=12.0,
            high=20.0,
            plausible=(1.0, 100.0),
        ),
        _analyte(
            "spo2",
            "Oxygen saturation",
            ("2708-6", "59408-5"),
            "%",
            _VITAL,
            low=95.0,
            plausible=(20.0, 100.0),
        ),
        # Fever and hypothermia thresholds rather than the narrow normal band, so diurnal drift is not flagged.
        _analyte(
            "temperature",
            "Body temperature",
            ("8310-5", "8331-1"),
            "°C",
            _VITAL,
            low=35.0,
            high=38.0,
            plausible=(10.0, 46.0),
        ),
        _analyte("weight", "Body weight", ("29463-7", "3141-9"), "kg", _VITAL, plausible=(0.2, 700.0)),
        _analyte("height", "Body height", ("8302-2",), "cm", _VITAL, plausible=(20.0, 280.0)),
        _analyte("bmi", "BMI", ("39156-5",), "kg/m2", _VITAL, low=18.5, high=25.0, plausible=(5.0, 250.0)),
    )
}

# Blood pressure panels: the values sit in components coded 8480-6 (systolic) and 8462-4 (diastolic).
BP_PANELS = frozenset({"85354-9", "55284-4"})
# Procedures that record paperwork, not care: they say nothing about the patient and would crowd the ten
# most recent procedures out of the summary (Synthea writes one at nearly every visit).
ADMINISTRATIVE_PROCEDURES = frozenset(
    {
        ("snomed", "428191000124101"),  # Documentation of current medications
        ("snomed", "430193006"),  # Medication reconciliation
    }
)

_BY_LOINC: dict[str, Analyte] = {code: a for a in ANALYTES.values() for code in a.loinc}


def analyte_for_loinc(code: str) -> Analyte | None:
    """The catalog analyte a LOINC code reports, if we track it."""
    return _BY_LOINC.get(code.strip())


# ---------------------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------------------

_Linear = tuple[float, float]  # canonical = value * scale + offset

# Zero-width characters turn up in real exports (Synthea's eGFR among them) and are invisible in every UI,
# so two strings that look identical to a reviewer must compare equal here too.
_INVISIBLE: dict[str, str | None] = dict.fromkeys(("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"))
_TEXT_CHARS = str.maketrans(_INVISIBLE)
_UNIT_CHARS = str.maketrans(
    {
        **_INVISIBLE,
        "µ": "u",  # micro sign
        "μ": "u",  # Greek mu, which some systems type instead
        "°": "deg",
        "²": "2",
        "³": "3",
    }
)
# The body-surface normaliser of eGFR is written every which way; collapse it before annotations are dropped,
# because dropping "{1.73_m2}" as a mere annotation would leave "mL/min/".
_BSA = re.compile(r"\{?1\.73_?m\^?2\}?")
_ANNOTATION = re.compile(r"\{[^{}]*\}")


def _unit_key(unit: str) -> str:
    """Comparable form of a unit: no whitespace, lower-case, UCUM {annotations} removed."""
    text = "".join(unit.translate(_UNIT_CHARS).split()).lower()
    # UCUM is case-sensitive in principle, but no unit accepted here differs from another only by case.
    text = _BSA.sub("1.73m2", text)
    return _ANNOTATION.sub("", text)


def _table(*rows: tuple[float | _Linear, tuple[str, ...]]) -> dict[str, _Linear]:
    table: dict[str, _Linear] = {}
    for factor, spellings in rows:
        linear = factor if isinstance(factor, tuple) else (factor, 0.0)
        for spelling in spellings:
            table[_unit_key(spelling)] = linear
    return table


_MG_DL = ("mg/dL",)
_MMOL_L = ("mmol/L", "mEq/L")  # only for K+ and Na+: monovalent, so 1 mEq is 1 mmol
_PER_MIN = ("/min", "1/min", "{beats}/min", "beats/min", "bpm", "{breaths}/min", "breaths/min")
_MMHG = ("mm[Hg]", "mmHg", "mm Hg")
_PERCENT = ("%",)

_WHITE_CELL_SUBSET: Final = _table(
    (1.0, ("10*3/uL", "10^3/uL", "10*9/L", "10^9/L", "x10^9/L", "x10E3/uL", "10E3/uL", "K/uL", "/nL")),
    (0.001, ("/uL", "{cells}/uL", "/mm3")),
)
_CONVERSIONS: dict[str, dict[str, _Linear]] = {
    "egfr": _table(
        # Synthea (and some lab feeds) label eGFR "mL/min" without the 1.73 m² normaliser. The LOINC codes
        # above are all BSA-normalised estimates, so the number is already mL/min/1.73m2; only the label is
        # short. Raw creatinine clearance, which really is mL/min, has other LOINC codes and never lands here.
        (1.0, ("mL/min/{1.73_m2}", "mL/min/1.73m2", "mL/min")),
        (60.0, ("mL/s/{1.73_m2}",)),
    ),
    "creatinine": _table(
        (1.0, _MG_DL),
        (1 / 88.42, ("umol/L",)),
        (1000 / 88.42, ("mmol/L",)),
        (0.1, ("mg/L",)),
    ),
    "potassium": _table((1.0, _MMOL_L)),
    "sodium": _table((1.0, _MMOL_L)),
    # Mg is divalent: 1 mmol/L = 2 mEq/L = 2.431 mg/dL (atomic mass 24.305).
    "magnesium": _table((1.0, _MG_DL), (2.4305, ("mmol/L",)), (1.21525, ("mEq/L",)), (0.24305, ("mg/L",))),
    "hba1c": _table(
        (1.0, _PERCENT),
        ((1 / 10.929, 2.15), ("mmol/mol",)),  # IFCC → NGSP master equation
    ),
    "inr": _table((1.0, ("", "1", "{INR}", "{ratio}", "ratio", "INR"))),
    "ldl": _table((1.0, _MG_DL), (38.67, ("mmol/L",))),
    "total_cholesterol": _table((1.0, _MG_DL), (38.67, ("mmol/L",))),
    "hdl": _table((1.0, _MG_DL), (38.67, ("mmol/L",))),
    "triglycerides": _table((1.0, _MG_DL), (88.57, ("mmol/L",))),
    "glucose": _table((1.0, _MG_DL), (18.016, ("mmol/L",))),
    "hemoglobin": _table((1.0, ("g/dL",)), (0.1, ("g/L",))),
    # A fraction (0.55) is how SI labs print it; the percentage is the same number times 100.
    "hematocrit": _table((1.0, ("%",)), (100.0, ("L/L", "1", "{fraction}"))),
    "platelets": _table(
        # 10^3 per µL and 10^9 per L are the same count; labs print it half a dozen ways.
        (1.0, ("10*3/uL", "10^3/uL", "10*9/L", "10^9/L", "x10^9/L", "x10E3/uL", "10E3/uL", "K/uL", "/nL")),
        (0.001, ("/uL",)),
    ),
    "alt": _table((1.0, ("U/L", "[IU]/L", "IU/L")), (60.0, ("ukat/L",))),
    # Cobalamin's molar mass is 1355 g/mol: 1 pmol/L is 1.355 pg/mL.
    "vitamin_b12": _table((1.0, ("pg/mL", "ng/L")), (1.355, ("pmol/L",))),
    # One lithium ion carries one charge: mmol/L and mEq/L are the same number.
    "lithium": _table((1.0, ("mmol/L", "meq/L", "mEq/L", "m[eq]/L"))),
    # White-cell subsets are counted per microlitre by some labs and in thousands by most.
    "neutrophils": _WHITE_CELL_SUBSET,
    "lymphocytes": _WHITE_CELL_SUBSET,
    "cd4": _table(
        (1.0, ("/uL", "{cells}/uL", "cells/uL", "/mm3", "10*6/L", "10^6/L")),
        (1000.0, ("10*3/uL", "10^3/uL", "10*9/L", "10^9/L")),
    ),
    "lvef": _table((1.0, ("%",))),
    "leukocytes": _table(
        (1.0, ("10*3/uL", "10^3/uL", "10*9/L", "10^9/L", "x10^9/L", "x10E3/uL", "10E3/uL", "K/uL", "/nL")),
        (0.001, ("/uL",)),
    ),
    "uacr": _table((1.0, ("mg/g", "ug/mg")), (8.84, ("mg/mmol",))),  # 1 mmol creatinine = 113.12 mg
    # mIU/L and µIU/mL are the same number; "mU/L" is how some labs print it.
    "tsh": _table((1.0, ("mIU/L", "m[IU]/L", "uIU/mL", "u[IU]/mL", "mU/L"))),
    "urate": _table(
        (1.0, ("mg/dL",)), (1 / 59.48, ("umol/L", "µmol/L")), (16.81, ("mmol/L",))
    ),  # 168.1 g/mol
    "digoxin": _table((1.0, ("ng/mL", "ug/L")), (0.781, ("nmol/L",))),  # molar mass 780.9 g/mol
    "systolic_bp": _table((1.0, _MMHG)),
    "diastolic_bp": _table((1.0, _MMHG)),
    "heart_rate": _table((1.0, _PER_MIN)),
    "respiratory_rate": _table((1.0, _PER_MIN)),
    "spo2": _table((1.0, _PERCENT)),
    "temperature": _table((1.0, ("Cel", "°C", "degC")), ((5 / 9, -32 * 5 / 9), ("[degF]", "°F", "degF"))),
    "weight": _table((1.0, ("kg",)), (0.001, ("g",)), (0.45359237, ("[lb_av]", "lb", "lbs"))),
    "height": _table((1.0, ("cm",)), (100.0, ("m",)), (0.1, ("mm",)), (2.54, ("[in_i]", "in"))),
    "bmi": _table((1.0, ("kg/m2", "kg/m^2"))),
}


def normalise_value(
    analyte: Analyte, value: float, unit: str | None, ucum_code: str | None = None
) -> float | None:
    """`value` in the analyte's canonical unit; None when the unit is unknown or the result impossible.

    `ucum_code` is Quantity.code and wins over the human-readable Quantity.unit when both are usable.
    """
    if not math.isfinite(value):
        return None
    table = _CONVERSIONS.get(analyte.key, {})
    candidates = [u for u in (ucum_code, unit) if u is not None] or [""]
    for candidate in candidates:
        linear = table.get(_unit_key(candidate))
        if linear is not None:
            break
    else:
        return None
    scale, offset = linear
    converted = value * scale + offset
    low, high = analyte.plausible
    return converted if low <= converted <= high else None


# ---------------------------------------------------------------------------------------------------------
# Medication products
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    ingredients: tuple[str, ...]  # lower-case generic names, salts dropped
    strength: str | None  # the first ingredient's strength as written: "5 MG", "0.09 MG/ACTUAT"
    form: str | None  # "Oral Tablet", "Metered Dose Inhaler", "Pack"...


# Salt and ester words that name the delivery vehicle, not the drug the guidance talks about.
_SALTS = frozenset(
    {
        "sodium",
        "potassium",
        "calcium",
        "magnesium",
        "hydrochloride",
        "dihydrochloride",
        "hcl",
        "hydrobromide",
        "bromide",
        "chloride",
        "bitartrate",
        "tartrate",
        "propionate",
        "dipropionate",
        "furoate",
        "valerate",
        "acetate",
        "acetonide",
        "succinate",
        "maleate",
        "edisylate",
        "mesylate",
        "besylate",
        "tosylate",
        "citrate",
        "sulfate",
        "phosphate",
        "fumarate",
        "gluconate",
        "hyclate",
        "nitrate",
        "xinafoate",
        "cypionate",
        "enanthate",
        "decanoate",
        "pamoate",
        "palmitate",
        "lactate",
        "disodium",
        "monohydrate",
        "dihydrate",
        "trihydrate",
        "anhydrous",
    }
)
# When every word is a salt or a mineral the salt *is* the drug: potassium chloride, ferrous sulfate.
_MINERALS = frozenset(
    {
        "ferrous",
        "ferric",
        "iron",
        "zinc",
        "lithium",
        "aluminum",
        "carbonate",
        "bicarbonate",
        "oxide",
        "hydroxide",
        "iodide",
        "fluoride",
    }
)
# Spelling variants and INN/BAN names mapped to the US generic names RxNorm and the guidance use.
_VARIANTS: dict[str, str] = {
    "alendronic acid": "alendronate",
    "risedronic acid": "risedronate",
    "ibandronic acid": "ibandronate",
    "acetylsalicylic acid": "aspirin",
    "paracetamol": "acetaminophen",
    "salbutamol": "albuterol",
    "frusemide": "furosemide",
    "adrenaline": "epinephrine",
    "glyceryl trinitrate": "nitroglycerin",
    "ciclosporin": "cyclosporine",
    "norethisterone": "norethindrone",
    "vitamin b12": "cyanocobalamin",
    "simvistatin": "simvastatin",  # misspelling present in the Synthea sample charts
    # Fumarate esters whose fumarate is the drug, not a salt: what the salt rule leaves is put back.
    "dimethyl": "dimethyl fumarate",
    "diroximel": "diroximel fumarate",
    "monomethyl": "monomethyl fumarate",
}
# Brand names that stand alone (no generic in the string), mapped to their ingredients.
_BRANDS: dict[str, tuple[str, ...]] = {
    "jolivette": ("norethindrone",),
    "camila": ("norethindrone",),
    "errin": ("norethindrone",),
    "natazia": ("estradiol", "dienogest"),
    "ortho tri-cyclen": ("ethinyl estradiol", "norgestimate"),
    "ortho-cyclen": ("ethinyl estradiol", "norgestimate"),
    "trinessa": ("ethinyl estradiol", "norgestimate"),
    "sprintec": ("ethinyl estradiol", "norgestimate"),
    "seasonique": ("ethinyl estradiol", "levonorgestrel"),
    "yaz": ("drospirenone", "ethinyl estradiol"),
    "yasmin": ("drospirenone", "ethinyl estradiol"),
    "nuvaring": ("etonogestrel", "ethinyl estradiol"),
    "nexplanon": ("etonogestrel",),
    "mirena": ("levonorgestrel",),
    "kyleena": ("levonorgestrel",),
    "lasix": ("furosemide",),
    "tylenol": ("acetaminophen",),
    "coumadin": ("warfarin",),
    "jantoven": ("warfarin",),
    "plavix": ("clopidogrel",),
    "lanoxin": ("digoxin",),
    "zocor": ("simvastatin",),
    "lipitor": ("atorvastatin",),
    "glucophage": ("metformin",),
    "humalog": ("insulin lispro",),
    "novolog": ("insulin aspart",),
    "lantus": ("insulin glargine",),
}
_PLACEBO = frozenset({"inert ingredients", "inert ingredient"})
# What an ingredient name can look like; anything else is noise we would rather drop than report as a drug.
_INGREDIENT_NAME = re.compile(r"^[a-z][a-z0-9 .,'()+-]*$")

_SPACES = re.compile(r"\s+")
_VITAMIN = re.compile(r"\bvitamin ([a-z]) (\d+)\b")
_BRACKETED_BRAND = re.compile(r"\s*\[([^\]]*)\]\s*$")
# Package quantities and application numbers RxNorm puts before the ingredient: "24 HR", "0.4 ML",
# "120 ACTUAT", "NDA020503".
_LEADING_QUANTITY = re.compile(
    r"^(?:(?:NDA|ANDA|BLA)\d+|\d+(?:\.\d+)?\s*(?:HR|ML|ACTUAT|DAY|MG|G|L|UNT|SQCM|CM2))\s+", re.IGNORECASE
)
_STRENGTH_UNIT = r"(?:MCG|MG|UG|G|ML|UNT|IU|MEQ|MMOL|CELLS|BAU|PNU|%)"
_STRENGTH = re.compile(
    rf"(?<![\w.])\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)*\s*{_STRENGTH_UNIT}(?:/\d*\s*[A-Z]+)?(?![\w%])",
    re.IGNORECASE,
)
_COMPONENT_SPLIT = re.compile(r"\s+/\s+")
_FORM_NOISE = re.compile(r"^(?:per\s+\d*\s*HR|\d+\s*(?:DAY|HR))\b\s*", re.IGNORECASE)
_PACK_PART = re.compile(r"\(([^()]*)\)")


# "25,000 IU": a thousands separator, not a list ("vitamin A 25,000 IU" read as "vitamin a25" and "000 IU").
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _THOUSANDS.sub("", text.translate(_TEXT_CHARS))).strip()


def normalise_ingredient(name: str) -> str:
    """Lower-case generic name: salts and esters dropped unless they are the drug, variants unified."""
    text = _clean(name).lower().replace(",", " ")
    text = _VITAMIN.sub(r"vitamin \1\2", _SPACES.sub(" ", text).strip())
    words = text.split()
    if "insulin" in words:
        # "insulin human, isophane" and "Regular Insulin, Human" both name an insulin type, not a salt.
        words = ["insulin", *(w for w in words if w not in {"insulin", "human"})]
    elif not all(w in _SALTS or w in _MINERALS for w in words):
        while len(words) > 1 and words[-1] in _SALTS:
            words.pop()
    joined = " ".join(words)
    return _VARIANTS.get(joined, joined)


def _ingredients_of(name: str) -> tuple[str, ...]:
    key = _clean(name).lower()
    if key in _BRANDS:
        return _BRANDS[key]
    ingredient = normalise_ingredient(name)
    if ingredient in _PLACEBO or not _INGREDIENT_NAME.match(ingredient):
        return ()
    return (ingredient,)


def _form_of(rest: str) -> str | None:
    while (match := _FORM_NOISE.match(rest)) is not None:
        rest = rest[match.end() :]
    return rest.strip() or None


def _split_component(component: str) -> tuple[str, str | None, str]:
    """(name, strength, what follows) of one " / "-separated part of a product name."""
    match = _STRENGTH.search(component)
    if match is not None:
        return component[: match.start()].strip(), match.group(0), component[match.end() :].strip()
    # No strength ("Jolivette 28 Day Pack", "Mestranol"): the name runs up to the first number.
    words = component.split()
    cut = next((i for i, w in enumerate(words) if w[0].isdigit()), len(words))
    return " ".join(words[:cut]), None, " ".join(words[cut:])


def _parse_plain(text: str) -> Product:
    while (match := _LEADING_QUANTITY.match(text)) is not None:
        text = text[match.end() :]
    ingredients: list[str] = []
    strength: str | None = None
    rest = ""
    for component in _COMPONENT_SPLIT.split(text):
        name, component_strength, rest = _split_component(component)
        # "NyQuil Cold & Flu (acetaminophen 650 mg / ...": the generic list opens inside the brand's bracket.
        if name.count("(") > name.count(")"):
            name = name.rsplit("(", 1)[-1].strip()
        found = _ingredients_of(name) if name else ()
        if found and strength is None and not ingredients:
            strength = component_strength
        ingredients.extend(found)
    return Product(tuple(dict.fromkeys(ingredients)), strength, _form_of(rest))


def parse_product(display: str) -> Product:
    """Ingredients, strength and dose form of an RxNorm-style product name; empty ingredients if unreadable."""
    text = _clean(display)
    brand: str | None = None
    if (match := _BRACKETED_BRAND.search(text)) is not None:
        brand = match.group(1).strip().lower()
        text = text[: match.start()]
    if text.startswith("{") and (parts := _PACK_PART.findall(text)):
        # "{21 (A 1 MG / B 2 MG Oral Tablet) / 7 (Inert Ingredients 1 MG Oral Tablet) } Pack": the active
        # contents of every part, the first active part's strength.
        products = [_parse_plain(_clean(part)) for part in parts]
        ingredients = tuple(dict.fromkeys(i for p in products for i in p.ingredients))
        strength = next((p.strength for p in products if p.ingredients), None)
        product = Product(ingredients, strength, "Pack")
    else:
        product = _parse_plain(text)
    if not product.ingredients and brand in _BRANDS:
        return Product(_BRANDS[brand], product.strength, product.form)
    return product


# ---------------------------------------------------------------------------------------------------------
# Pregnancy
# ---------------------------------------------------------------------------------------------------------

# SNOMED CT findings that mean "pregnant now". Outcomes (delivery, miscarriage) and history are left out.
PREGNANCY_CONDITIONS = frozenset(
    {
        "72892002",  # Normal pregnancy
        "77386006",  # Patient currently pregnant
        "47200007",  # High risk pregnancy
        "237239003",  # Low risk pregnancy
        "16356006",  # Multiple pregnancy
        "83074005",  # Unplanned pregnancy
        "169560008",  # Pregnant - urine test confirms
        "169561007",  # Pregnant - blood test confirms
        "169563005",  # Pregnant - on history
        "169565003",  # Pregnant - planned
        "237238006",  # Pregnancy with uncertain dates
        "314204000",  # Early stage of pregnancy
    }
)


# Qualitative results the rules read: a test is found by LOINC or, since pharmacogenomic and serology results
# often carry local codes, by its name in the code's text or display.
@dataclass(frozen=True, slots=True)
class QualitativeTest:
    key: str
    label: str
    loinc: frozenset[str]
    name: re.Pattern[str]
    # A titre reported as a number reads positive from this value (anti-HBs: 10 mIU/mL is immune), else negative.
    positive_from: float | None = None
    # A result written as a phenotype or genotype: these words read positive or negative before the generic ones.
    positive_text: re.Pattern[str] | None = None
    negative_text: re.Pattern[str] | None = None


QUALITATIVE_TESTS: Final[dict[str, QualitativeTest]] = {
    test.key: test
    for test in (
        QualitativeTest(
            "hla-b5701", "HLA-B*57:01", frozenset(), re.compile(r"hla-?\s?b\s?\*?\s?57\s?:?\s?01", re.I)
        ),
        QualitativeTest(
            "hla-b1502", "HLA-B*15:02", frozenset(), re.compile(r"hla-?\s?b\s?\*?\s?15\s?:?\s?02", re.I)
        ),
        QualitativeTest(
            "hla-b5801", "HLA-B*58:01", frozenset(), re.compile(r"hla-?\s?b\s?\*?\s?58\s?:?\s?01", re.I)
        ),
        QualitativeTest(
            "lupus-anticoagulant",
            "Lupus anticoagulant",
            frozenset(),
            re.compile(r"lupus anticoagulant|\bdrvvt\b", re.I),
        ),
        # Interferon-gamma release assays and tuberculin skin tests, read as one screening answer; labs code
        # them under many local names, so the name is what finds them.
        QualitativeTest(
            "tb-screen",
            "Tuberculosis screen (IGRA or TST)",
            frozenset(),
            re.compile(
                r"quanti-?feron|\bigra\b|interferon[- ]gamma release|t-?spot|tuberculin|\bppd\b|tb gold", re.I
            ),
        ),
        QualitativeTest(
            "hbsag",
            "Hepatitis B surface antigen",
            frozenset({"5196-1", "5195-3"}),
            re.compile(r"\bhbsag\b|hepatitis b (virus )?surface (ag|antigen)", re.I),
        ),
        QualitativeTest(
            "anti-hbs",
            "Hepatitis B surface antibody",
            frozenset({"16935-9", "22322-2", "10900-9"}),
            re.compile(r"\banti-?hbs\b|\bhbsab\b|hepatitis b (virus )?surface (ab|antibod)", re.I),
            positive_from=10.0,
        ),
        QualitativeTest(
            "hav-igg",
            "Hepatitis A antibody",
            frozenset(),
            re.compile(
                r"hepatitis a (virus )?(igg|total|ab\b|antibod)|\banti-?hav\b|\bhav (igg|ab|total)", re.I
            ),
        ),
        # CYP2C19 genotype or phenotype, read as "reduced function" (positive): a poor or intermediate
        # metaboliser, or a genotype carrying a *2 or *3 no-function allele (CPIC).
        QualitativeTest(
            "cyp2c19-reduced-function",
            "CYP2C19 genotype",
            frozenset(),
            re.compile(r"cyp\s?2c19", re.I),
            positive_text=re.compile(r"\b(poor|intermediate) metaboli[sz]er|\*[23]\b", re.I),
            negative_text=re.compile(r"\b(normal|extensive|rapid|ultra-?rapid) metaboli[sz]er", re.I),
        ),
        # HIV screening and diagnostic tests (antigen/antibody, antibody, RNA): on PrEP any of them is the
        # three-monthly test; the name finds locally coded ones.
        QualitativeTest(
            "hiv-test",
            "HIV test",
            frozenset({"56888-1", "75622-1", "7917-8"}),
            re.compile(r"\bhiv(-?[12])?\b", re.I),
        ),
        QualitativeTest(
            "anti-hbc",
            "Hepatitis B core antibody",
            frozenset({"16933-4", "13952-7"}),
            re.compile(r"\banti-?hbc\b|\bhbcab\b|hepatitis b (virus )?core (ab|antibod)", re.I),
        ),
    )
}
_LOINC_TO_TEST: Final = {code: test for test in QUALITATIVE_TESTS.values() for code in test.loinc}
# SNOMED CT and HL7 interpretation codes for a qualitative answer; anything else is indeterminate.
POSITIVE_CODES: Final = frozenset({"10828004", "260373001", "11214006", "52101004", "POS", "DET"})
NEGATIVE_CODES: Final = frozenset({"260385009", "260415000", "131194007", "2667000", "NEG", "ND"})
_NEGATIVE_WORDS: Final = re.compile(r"\b(negative|non-?reactive|not detected|absent|undetected)\b", re.I)
_POSITIVE_WORDS: Final = re.compile(r"\b(positive|reactive|detected|present|carrier)\b", re.I)


def qualitative_test_for(loincs: Iterable[str], names: Iterable[str]) -> QualitativeTest | None:
    """The qualitative test an Observation reports, by LOINC first, then by name."""
    for code in loincs:
        if (test := _LOINC_TO_TEST.get(code)) is not None:
            return test
    for name in names:
        if (test := _test_named(name)) is not None:
            return test
    return None


@functools.lru_cache(maxsize=4096)
def _test_named(name: str) -> QualitativeTest | None:
    # Every Observation's names are tried against every test; a chart repeats the same few thousand names.
    return next((test for test in QUALITATIVE_TESTS.values() if test.name.search(name)), None)


def qualitative_answer(codes_: Iterable[str], texts: Iterable[str]) -> Literal["positive", "negative"] | None:
    """Positive or negative from coded answers, else from words ("not detected" is read before "detected");
    None when the answer says neither or both."""
    coded = set(codes_)
    if coded & POSITIVE_CODES and not coded & NEGATIVE_CODES:
        return "positive"
    if coded & NEGATIVE_CODES and not coded & POSITIVE_CODES:
        return "negative"
    words = " ".join(texts)
    negative = bool(_NEGATIVE_WORDS.search(words))
    positive = bool(_POSITIVE_WORDS.search(_NEGATIVE_WORDS.sub(" ", words)))
    if negative != positive:
        return "negative" if negative else "positive"
    return None


PREGNANCY_STATUS_LOINC = "82810-3"
PREGNANT_VALUES = frozenset({"77386006"})
NOT_PREGNANT_VALUES = frozenset({"60001007"})

_SEMANTIC_TAG = re.compile(r"\s*\((?:finding|disorder|situation|observable entity)\)\s*$")
# A display names a current pregnancy when it is "pregnant ..." or "<qualifier> pregnancy" with a
# qualifier from this list. Anything else (ectopic, history of, complication of, loss, termination) is
# left to the code list, because the rule must never call a past or failed pregnancy current.
_PREGNANT_DISPLAY = re.compile(
    r"^(?:patient )?(?:currently )?pregnant(?: - (?:[a-z. ]+ confirms|planned|unplanned|on history))?$"
)
_PREGNANCY_DISPLAY = re.compile(
    r"^(?:(?:normal|high[ -]risk|low[ -]risk|multiple|twin|triplet|singleton|intrauterine|viable|"
    r"confirmed|current|continuing|planned|unplanned|wanted|unwanted|teenage) )*pregnancy$"
)


def is_pregnancy_condition(system: str, code: str, display: str) -> bool:
    """True when a Condition coding says the patient is pregnant now (not was, not might be)."""
    # Accepts the URI or the short name: system_name maps "snomed" (unknown as a URI) to itself.
    if system_name(system) == "snomed" and code.strip() in PREGNANCY_CONDITIONS:
        return True
    text = _SEMANTIC_TAG.sub("", _clean(display).lower())
    return bool(_PREGNANT_DISPLAY.match(text) or _PREGNANCY_DISPLAY.match(text))

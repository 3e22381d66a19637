"""Code tables: system names, the analyte catalog, unit normalisation, product parsing, pregnancy codes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from plugin.context.codes import (
    ANALYTES,
    BP_PANELS,
    NOT_PREGNANT_VALUES,
    PREGNANCY_CONDITIONS,
    PREGNANCY_STATUS_LOINC,
    PREGNANT_VALUES,
    Product,
    analyte_for_loinc,
    is_pregnancy_condition,
    normalise_ingredient,
    normalise_value,
    parse_product,
    system_name,
)
from tests.support.fixtures_paths import synthea_bundle_paths

pytestmark = pytest.mark.unit

ZWSP = "\u200b"


# --- code systems -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://loinc.org", "loinc"),
        ("http://snomed.info/sct", "snomed"),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "rxnorm"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "icd10"),
        ("http://hl7.org/fhir/sid/icd-10", "icd10"),
        ("http://hl7.org/fhir/sid/cvx", "cvx"),
        ("http://hl7.org/fhir/sid/ndc", "ndc"),
        ("http://snomed.info/sct/", "snomed"),
        (" http://loinc.org ", "loinc"),
        ("urn:oid:2.16.840.1.113883.6.1", "loinc"),
        ("http://example.org/local-codes", "http://example.org/local-codes"),
        (None, "unknown"),
    ],
)
def test_system_name(uri: str | None, expected: str) -> None:
    assert system_name(uri) == expected


# --- analyte catalog --------------------------------------------------------------------------------------

REQUIRED_LOINC = {
    "egfr": {"33914-3", "48642-3", "48643-1", "62238-1", "88293-6", "88294-4", "98979-8", "98980-6"},
    "creatinine": {"2160-0", "38483-4"},
    "potassium": {"2823-3", "6298-4"},
    "sodium": {"2951-2", "2947-0"},
    "hba1c": {"4548-4", "17856-6", "4549-2"},
    "inr": {"6301-6", "34714-6"},
    "ldl": {"18262-6", "2089-1", "13457-7"},
    "systolic_bp": {"8480-6"},
    "diastolic_bp": {"8462-4"},
    "heart_rate": {"8867-4"},
    "weight": {"29463-7", "3141-9"},
    "bmi": {"39156-5"},
    "height": {"8302-2"},
    "glucose": {"2339-0", "2345-7"},
    "hemoglobin": {"718-7"},
    "platelets": {"777-3", "26515-7"},
    "alt": {"1742-6"},
    "total_cholesterol": {"2093-3"},
    "hdl": {"2085-9"},
    "triglycerides": {"2571-8"},
    "uacr": {"9318-7", "14959-1"},
    "temperature": {"8310-5"},
    "respiratory_rate": {"9279-1"},
    "spo2": {"2708-6", "59408-5"},
}
VITALS = {
    "systolic_bp",
    "diastolic_bp",
    "heart_rate",
    "weight",
    "bmi",
    "height",
    "temperature",
    "respiratory_rate",
    "spo2",
}


def test_catalog_holds_every_required_analyte_and_code() -> None:
    for key, codes in REQUIRED_LOINC.items():
        assert ANALYTES[key].key == key
        assert codes <= ANALYTES[key].loinc, key


def test_catalog_is_keyed_by_analyte_key() -> None:
    assert all(key == analyte.key for key, analyte in ANALYTES.items())


def test_no_loinc_code_belongs_to_two_analytes() -> None:
    seen: dict[str, str] = {}
    for analyte in ANALYTES.values():
        for code in analyte.loinc:
            assert code not in seen, f"{code} in both {seen[code]} and {analyte.key}"
            seen[code] = analyte.key


def test_safety_set() -> None:
    assert {a.key for a in ANALYTES.values() if a.safety} == {"egfr", "creatinine", "potassium", "inr"}


def test_categories() -> None:
    assert {a.key for a in ANALYTES.values() if a.category == "vital-signs"} == VITALS


@pytest.mark.parametrize("analyte", list(ANALYTES.values()), ids=list(ANALYTES))
def test_reference_range_lies_inside_plausible_range(analyte: Any) -> None:
    low, high = analyte.plausible
    assert low < high
    for bound in (analyte.low, analyte.high):
        assert bound is None or low <= bound <= high
    if analyte.low is not None and analyte.high is not None:
        assert analyte.low < analyte.high


@pytest.mark.parametrize("analyte", list(ANALYTES.values()), ids=list(ANALYTES))
def test_canonical_unit_is_accepted_unchanged(analyte: Any) -> None:
    value = analyte.low if analyte.low is not None else analyte.high
    if value is None:
        value = sum(analyte.plausible) / 2
    assert normalise_value(analyte, value, analyte.unit) == value


def test_analyte_for_loinc() -> None:
    egfr = analyte_for_loinc("33914-3")
    assert egfr is not None
    assert egfr.key == "egfr"
    assert analyte_for_loinc(" 6301-6 ") is ANALYTES["inr"]
    assert analyte_for_loinc("8331-1") is ANALYTES["temperature"]
    assert analyte_for_loinc("72514-3") is None  # pain score: not tracked
    assert analyte_for_loinc("85354-9") is None  # a panel, not an analyte


def test_bp_panels() -> None:
    assert frozenset({"85354-9", "55284-4"}) == BP_PANELS


# --- unit normalisation -----------------------------------------------------------------------------------

CONVERSIONS = [
    # eGFR: every spelling of the BSA normaliser, case, whitespace, zero-width spaces, Synthea's "mL/min".
    ("egfr", 60.0, "mL/min/{1.73_m2}", 60.0),
    ("egfr", 60.0, "mL/min/1.73m2", 60.0),
    ("egfr", 60.0, "mL/min/1.73 m2", 60.0),
    ("egfr", 60.0, "mL/min/{1.73m2}", 60.0),
    ("egfr", 60.0, "mL/min/1.73m^2", 60.0),
    ("egfr", 60.0, "mL/min/1.73m²", 60.0),
    ("egfr", 60.0, "ML/MIN/1.73M2", 60.0),
    ("egfr", 60.0, f"mL/min/{{1.73_m2}}{ZWSP}", 60.0),
    ("egfr", 60.0, f"mL/min/1.73{ZWSP}m2", 60.0),
    ("egfr", 60.0, f" mL / min /{ZWSP} 1.73_m2 ", 60.0),
    ("egfr", 45.5, "mL/min", 45.5),
    ("egfr", 1.2, "mL/s/{1.73_m2}", 72.0),
    # Creatinine
    ("creatinine", 1.2, "mg/dL", 1.2),
    ("creatinine", 88.42, "umol/L", 1.0),
    ("creatinine", 176.84, "µmol/L", 2.0),
    ("creatinine", 176.84, "μmol/L", 2.0),
    ("creatinine", 90.0, "UMOL/L", 1.0178692603483375),
    ("creatinine", 0.09, "mmol/L", 1.0178692603483375),
    # HbA1c
    ("hba1c", 6.5, "%", 6.5),
    ("hba1c", 48.0, "mmol/mol", 6.541984628053802),
    ("hba1c", 53.0, "mmol/mol", 6.999483026809406),
    # Lipids and glucose
    ("ldl", 130.0, "mg/dL", 130.0),
    ("ldl", 2.6, "mmol/L", 100.542),
    ("hdl", 1.3, "mmol/L", 50.271),
    ("total_cholesterol", 5.0, "mmol/L", 193.35),
    ("triglycerides", 1.7, "mmol/L", 150.569),
    ("triglycerides", 150.0, "mg/dL", 150.0),
    ("glucose", 5.5, "mmol/L", 99.088),
    ("glucose", 99.0, "mg/dL", 99.0),
    # Electrolytes: mEq/L is mmol/L for monovalent ions
    ("potassium", 4.2, "mmol/L", 4.2),
    ("potassium", 4.2, "mEq/L", 4.2),
    ("potassium", 4.2, "meq/l", 4.2),
    ("sodium", 140.0, "mEq/L", 140.0),
    ("sodium", 140.0, "mmol/L", 140.0),
    # INR is unitless, however it is spelt
    ("inr", 2.5, "{INR}", 2.5),
    ("inr", 2.5, "{ratio}", 2.5),
    ("inr", 2.5, "1", 2.5),
    ("inr", 2.5, "", 2.5),
    ("inr", 2.5, None, 2.5),
    ("inr", 2.5, "INR", 2.5),
    # Weight and height
    ("weight", 72.5, "kg", 72.5),
    ("weight", 150.0, "[lb_av]", 68.0388555),
    ("weight", 150.0, "lb", 68.0388555),
    ("weight", 3500.0, "g", 3.5),
    ("height", 175.0, "cm", 175.0),
    ("height", 70.0, "[in_i]", 177.8),
    ("height", 1.75, "m", 175.0),
    # Temperature
    ("temperature", 37.2, "Cel", 37.2),
    ("temperature", 37.2, "°C", 37.2),
    ("temperature", 98.6, "[degF]", 37.0),
    ("temperature", 101.3, "°F", 38.5),
    # Rates and pressures
    ("heart_rate", 72.0, "/min", 72.0),
    ("heart_rate", 72.0, "{beats}/min", 72.0),
    ("heart_rate", 72.0, "beats/min", 72.0),
    ("respiratory_rate", 16.0, "/min", 16.0),
    ("respiratory_rate", 16.0, "{breaths}/min", 16.0),
    ("systolic_bp", 120.0, "mm[Hg]", 120.0),
    ("systolic_bp", 120.0, "mmHg", 120.0),
    ("diastolic_bp", 80.0, "mm[Hg]", 80.0),
    ("diastolic_bp", 80.0, "mmHg", 80.0),
    ("bmi", 24.5, "kg/m2", 24.5),
    # Haematology
    ("hemoglobin", 13.5, "g/dL", 13.5),
    ("hemoglobin", 135.0, "g/L", 13.5),
    ("platelets", 250.0, "10*3/uL", 250.0),
    ("platelets", 250.0, "10*9/L", 250.0),
    ("platelets", 250.0, "10^9/L", 250.0),
    ("platelets", 250.0, "K/uL", 250.0),
    ("platelets", 250000.0, "/uL", 250.0),
    # Others
    ("spo2", 97.0, "%", 97.0),
    ("alt", 30.0, "U/L", 30.0),
    ("alt", 0.5, "ukat/L", 30.0),
    ("uacr", 25.0, "mg/g", 25.0),
    ("uacr", 3.0, "mg/mmol", 26.52),
]


@pytest.mark.parametrize(("key", "value", "unit", "expected"), CONVERSIONS)
def test_normalise_value_converts_to_canonical_unit(
    key: str, value: float, unit: str | None, expected: float
) -> None:
    result = normalise_value(ANALYTES[key], value, unit)
    assert result == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("potassium", "mg/dL"),
        ("creatinine", "mmol/mol"),
        ("creatinine", None),
        ("creatinine", ""),
        ("egfr", "mg/dL"),
        ("egfr", "mL"),
        ("weight", "furlong"),
        ("inr", "mg"),
        ("inr", "s"),  # prothrombin time in seconds is not an INR
        ("hba1c", "mg/dL"),
        ("sodium", "mg/L"),
        ("heart_rate", "mmHg"),
        ("systolic_bp", "kPa"),
        ("ldl", "g/L"),
    ],
)
def test_unrecognised_unit_gives_none(key: str, unit: str | None) -> None:
    value = ANALYTES[key].high or ANALYTES[key].low or 10.0
    assert normalise_value(ANALYTES[key], value, unit) is None


@pytest.mark.parametrize(
    ("key", "value", "unit"),
    [
        ("potassium", 45.0, "mmol/L"),  # decimal point lost
        ("potassium", 0.0, "mmol/L"),
        ("egfr", -5.0, "mL/min/{1.73_m2}"),
        ("egfr", 600.0, "mL/min/{1.73_m2}"),
        ("weight", 0.0, "kg"),
        ("weight", 7000.0, "[lb_av]"),
        ("systolic_bp", 1200.0, "mm[Hg]"),
        ("temperature", 98.6, "Cel"),  # Fahrenheit number labelled Celsius
        ("temperature", 37.0, "[degF]"),  # Celsius number labelled Fahrenheit
        ("hba1c", 48.0, "%"),  # IFCC number labelled NGSP
        ("spo2", 101.0, "%"),
        ("creatinine", 88.42, "mg/dL"),  # µmol/L number labelled mg/dL
        ("height", 175.0, "m"),
        ("inr", 0.0, "{INR}"),
        ("egfr", math.nan, "mL/min/{1.73_m2}"),
        ("egfr", math.inf, "mL/min/{1.73_m2}"),
        ("egfr", -math.inf, "mL/min/{1.73_m2}"),
    ],
)
def test_implausible_value_gives_none(key: str, value: float, unit: str) -> None:
    assert normalise_value(ANALYTES[key], value, unit) is None


def test_plausible_bounds_are_inclusive() -> None:
    spo2 = ANALYTES["spo2"]
    assert normalise_value(spo2, 100.0, "%") == 100.0


def test_zero_width_space_egfr_unit() -> None:
    egfr = ANALYTES["egfr"]
    assert normalise_value(egfr, 72.0, f"mL/min/{{1.73_m2}}{ZWSP}") == 72.0
    assert normalise_value(egfr, 72.0, f"{ZWSP}mL/min{ZWSP}") == 72.0


def test_ucum_code_wins_over_display_unit() -> None:
    creatinine = ANALYTES["creatinine"]
    assert normalise_value(creatinine, 88.42, "micromoles per litre", "umol/L") == pytest.approx(1.0)
    # When Quantity.code says µmol/L, a misleading Quantity.unit does not change the reading.
    assert normalise_value(creatinine, 88.42, "mg/dL", "umol/L") == pytest.approx(1.0)


def test_display_unit_is_used_when_ucum_code_is_unknown() -> None:
    assert normalise_value(ANALYTES["weight"], 150.0, "[lb_av]", "pounds") == pytest.approx(68.0388555)
    assert normalise_value(ANALYTES["inr"], 2.0, None, None) == 2.0


# --- medication products ----------------------------------------------------------------------------------

PRODUCTS = [
    ("Warfarin Sodium 5 MG Oral Tablet", ("warfarin",), "5 MG", "Oral Tablet"),
    (
        "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
        ("hydrocodone", "acetaminophen"),
        "10 MG",
        "Oral Tablet",
    ),
    (
        "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
        ("metformin",),
        "500 MG",
        "Extended Release Oral Tablet",
    ),
    (
        "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        ("albuterol",),
        "0.09 MG/ACTUAT",
        "Metered Dose Inhaler",
    ),
    (
        "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
        ("fluticasone",),
        "0.044 MG/ACTUAT",
        "Metered Dose Inhaler",
    ),
    ("Naproxen sodium 220 MG Oral Tablet", ("naproxen",), "220 MG", "Oral Tablet"),
    (
        "0.4 ML Enoxaparin sodium 100 MG/ML Prefilled Syringe",
        ("enoxaparin",),
        "100 MG/ML",
        "Prefilled Syringe",
    ),
    (
        "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
        ("amoxicillin", "clavulanate"),
        "250 MG",
        "Oral Tablet",
    ),
    ("Acetaminophen 325 MG Oral Tablet [Tylenol]", ("acetaminophen",), "325 MG", "Oral Tablet"),
    ("{28 (Norethindrone 0.35 MG Oral Tablet) } Pack [Camila]", ("norethindrone",), "0.35 MG", "Pack"),
    (
        "{21 (Ethinyl Estradiol 0.035 MG / Norethindrone 0.5 MG Oral Tablet) / "
        "7 (Inert Ingredients 1 MG Oral Tablet) } Pack [Brevicon 28 Day]",
        ("ethinyl estradiol", "norethindrone"),
        "0.035 MG",
        "Pack",
    ),
    ("Jolivette 28 Day Pack", ("norethindrone",), None, "Pack"),
    ("Mestranol / Norethynodrel", ("mestranol", "norethynodrel"), None, None),
    ("1 ML Epinephrine 1 MG/ML Auto-Injector", ("epinephrine",), "1 MG/ML", "Auto-Injector"),
    (
        "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector",
        ("epinephrine",),
        "1 MG/ML",
        "Auto-Injector",
    ),
    (
        "Insulin Lispro 100 UNT/ML Injectable Solution [Humalog]",
        ("insulin lispro",),
        "100 UNT/ML",
        "Injectable Solution",
    ),
    (
        "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]",
        ("insulin isophane", "insulin regular"),
        "70 UNT/ML",
        "Injectable Suspension",
    ),
    ("Terfenadine 60 MG Oral Tablet", ("terfenadine",), "60 MG", "Oral Tablet"),
    ("Methotrexate 2.5 MG Oral Tablet", ("methotrexate",), "2.5 MG", "Oral Tablet"),
    ("Clopidogrel 75 MG Oral Tablet", ("clopidogrel",), "75 MG", "Oral Tablet"),
    ("Digoxin 0.125 MG Oral Tablet", ("digoxin",), "0.125 MG", "Oral Tablet"),
    ("verapamil hydrochloride 40 MG Oral Tablet", ("verapamil",), "40 MG", "Oral Tablet"),
    ("Alendronic acid 10 MG Oral Tablet", ("alendronate",), "10 MG", "Oral Tablet"),
    ("Hydrochlorothiazide 25 MG Oral Tablet", ("hydrochlorothiazide",), "25 MG", "Oral Tablet"),
    ("Hydrochlorothiazide 25 MG", ("hydrochlorothiazide",), "25 MG", None),
    ("Simvastatin 10 MG Oral Tablet", ("simvastatin",), "10 MG", "Oral Tablet"),
    ("Simvistatin 10 MG", ("simvastatin",), "10 MG", None),
    ("Lasix 40mg", ("furosemide",), "40mg", None),
    (
        "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet",
        ("acetaminophen", "hydrocodone"),
        "325 MG",
        "Oral Tablet",
    ),
    (
        "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML "
        "Oral Solution",
        ("acetaminophen", "dextromethorphan", "doxylamine"),
        "21.7 MG/ML",
        "Oral Solution",
    ),
    (
        "168 HR Ethinyl Estradiol 0.00146 MG/HR / norelgestromin 0.00625 MG/HR Transdermal System",
        ("ethinyl estradiol", "norelgestromin"),
        "0.00146 MG/HR",
        "Transdermal System",
    ),
    (
        "NuvaRing 0.12/0.015 MG per 24HR 21 Day Vaginal Ring",
        ("etonogestrel", "ethinyl estradiol"),
        "0.12/0.015 MG",
        "Vaginal Ring",
    ),
    ("Mirena 52 MG Intrauterine System", ("levonorgestrel",), "52 MG", "Intrauterine System"),
    ("Vitamin B 12 5 MG/ML Injectable Solution", ("cyanocobalamin",), "5 MG/ML", "Injectable Solution"),
    ("Penicillin V Potassium 500 MG Oral Tablet", ("penicillin v",), "500 MG", "Oral Tablet"),
    ("cycloSPORINE 50 MG Oral Capsule", ("cyclosporine",), "50 MG", "Oral Capsule"),
    # The salt is the drug: kept whole.
    (
        "Potassium Chloride 20 MEQ Extended Release Oral Tablet",
        ("potassium chloride",),
        "20 MEQ",
        "Extended Release Oral Tablet",
    ),
    ("Sodium Bicarbonate 650 MG Oral Tablet", ("sodium bicarbonate",), "650 MG", "Oral Tablet"),
    ("calcium carbonate 500 MG Chewable Tablet", ("calcium carbonate",), "500 MG", "Chewable Tablet"),
    ("Magnesium Oxide 400 MG Oral Tablet", ("magnesium oxide",), "400 MG", "Oral Tablet"),
    ("ferrous sulfate 325 MG Oral Tablet", ("ferrous sulfate",), "325 MG", "Oral Tablet"),
    # Invisible and doubled whitespace changes nothing.
    (f"Warfarin{ZWSP} Sodium  5 MG  Oral Tablet ", ("warfarin",), "5 MG", "Oral Tablet"),
]


@pytest.mark.parametrize(("display", "ingredients", "strength", "form"), PRODUCTS)
def test_parse_product(
    display: str, ingredients: tuple[str, ...], strength: str | None, form: str | None
) -> None:
    assert parse_product(display) == Product(ingredients, strength, form)


@pytest.mark.parametrize("display", ["", "   ", ZWSP, "???", "12345", "/ / /", "[Tylenol]x", "{ } Pack"])
def test_unparseable_product_gives_no_ingredients(display: str) -> None:
    assert parse_product(display).ingredients == ()


def test_bracketed_brand_fills_in_when_nothing_else_parses() -> None:
    assert parse_product("[Coumadin]").ingredients == ("warfarin",)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Warfarin Sodium", "warfarin"),
        ("Fluticasone propionate", "fluticasone"),
        ("HYDROcodone Bitartrate", "hydrocodone"),
        ("Levothyroxine Sodium", "levothyroxine"),
        ("metoprolol succinate", "metoprolol"),
        ("Atorvastatin Calcium", "atorvastatin"),
        ("methylprednisolone sodium succinate", "methylprednisolone"),
        ("Potassium Chloride", "potassium chloride"),
        ("Sodium Chloride", "sodium chloride"),
        ("Sodium Bicarbonate", "sodium bicarbonate"),
        ("Calcium Carbonate", "calcium carbonate"),
        ("Magnesium Oxide", "magnesium oxide"),
        ("Lithium Carbonate", "lithium carbonate"),
        ("Alendronic acid", "alendronate"),
        ("Paracetamol", "acetaminophen"),
        ("Acetaminophen", "acetaminophen"),
        ("Salbutamol", "albuterol"),
        ("  Ethinyl   Estradiol ", "ethinyl estradiol"),
        ("Isosorbide Mononitrate", "isosorbide mononitrate"),
        ("Insulin Glargine", "insulin glargine"),
        ("sodium", "sodium"),
        ("", ""),
    ],
)
def test_normalise_ingredient(name: str, expected: str) -> None:
    assert normalise_ingredient(name) == expected


# --- pregnancy --------------------------------------------------------------------------------------------


def test_pregnancy_constants() -> None:
    assert {"72892002", "77386006"} <= PREGNANCY_CONDITIONS
    assert PREGNANCY_STATUS_LOINC == "82810-3"
    assert frozenset({"77386006"}) == PREGNANT_VALUES
    assert frozenset({"60001007"}) == NOT_PREGNANT_VALUES
    assert not PREGNANT_VALUES & NOT_PREGNANT_VALUES
    assert not NOT_PREGNANT_VALUES & PREGNANCY_CONDITIONS


@pytest.mark.parametrize(
    ("system", "code", "display", "expected"),
    [
        ("http://snomed.info/sct", "72892002", "Normal pregnancy", True),
        ("snomed", "72892002", "", True),
        ("http://snomed.info/sct", "77386006", "Patient currently pregnant (finding)", True),
        ("http://snomed.info/sct", "47200007", "High risk pregnancy (finding)", True),
        # The code alone decides for SNOMED; a local code is judged by its display.
        ("http://example.org/local", "P1", "Normal pregnancy", True),
        ("http://example.org/local", "P2", "Pregnant", True),
        ("http://example.org/local", "P3", "Twin pregnancy (disorder)", True),
        ("http://example.org/local", "P4", "Pregnant - urine test confirms", True),
        ("http://example.org/local", "P5", "Unplanned pregnancy", True),
        # Same codes under another system are not SNOMED facts.
        ("http://loinc.org", "72892002", "", False),
        # Outcomes, history, failed or doubtful pregnancies are never "pregnant now".
        ("http://snomed.info/sct", "60001007", "Not pregnant (finding)", False),
        ("http://snomed.info/sct", "19169002", "Miscarriage in first trimester", False),
        ("http://snomed.info/sct", "0", "History of pregnancy", False),
        ("http://snomed.info/sct", "0", "Complication of pregnancy", False),
        ("http://snomed.info/sct", "0", "Ectopic pregnancy", False),
        ("http://snomed.info/sct", "0", "Tubal pregnancy", False),
        ("http://snomed.info/sct", "0", "Termination of pregnancy", False),
        ("http://snomed.info/sct", "0", "Possible pregnancy", False),
        ("http://snomed.info/sct", "0", "Previous pregnancy", False),
        ("http://snomed.info/sct", "0", "Fear of pregnancy", False),
        ("http://snomed.info/sct", "0", "Pregnancy test negative", False),
        ("http://snomed.info/sct", "0", "Not pregnant", False),
        ("http://snomed.info/sct", "0", "Normal delivery", False),
        ("http://snomed.info/sct", "0", "Postpartum state", False),
        ("http://snomed.info/sct", "0", "Wants to become pregnant", False),
        ("http://snomed.info/sct", "0", "Pregnant - urine test negative", False),
        ("http://snomed.info/sct", "38341003", "Hypertension", False),
    ],
)
def test_is_pregnancy_condition(system: str, code: str, display: str, expected: bool) -> None:
    assert is_pregnancy_condition(system, code, display) is expected


# --- the Synthea sample charts ----------------------------------------------------------------------------


def _resources(resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in synthea_bundle_paths():
        bundle = json.loads(path.read_text(encoding="utf-8"))
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == resource_type:
                yield path.name, resource


def test_every_synthea_medication_yields_an_ingredient() -> None:
    displays = {
        resource["medicationCodeableConcept"]["coding"][0]["display"]
        for _, resource in _resources("MedicationRequest")
        if "medicationCodeableConcept" in resource
    }
    assert displays, "no MedicationRequest with a medicationCodeableConcept in the fixtures"
    failures = sorted(d for d in displays if not parse_product(d).ingredients)
    assert failures == [], f"{len(failures)} product names yield no ingredient:\n" + "\n".join(failures)


def _quantities(resource: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(LOINC code, valueQuantity) of the observation and of each component."""
    for part in (resource, *resource.get("component", [])):
        quantity = part.get("valueQuantity")
        if quantity is None:
            continue
        for coding in part.get("code", {}).get("coding", []):
            if system_name(coding.get("system")) == "loinc":
                yield coding["code"], quantity


def test_every_synthea_catalog_observation_normalises() -> None:
    checked = 0
    failures: list[str] = []
    for name, resource in _resources("Observation"):
        for code, quantity in _quantities(resource):
            analyte = analyte_for_loinc(code)
            if analyte is None:
                continue
            checked += 1
            value = quantity.get("value")
            result = (
                normalise_value(analyte, float(value), quantity.get("unit"), quantity.get("code"))
                if isinstance(value, int | float)
                else None
            )
            if result is None:
                failures.append(
                    f"{name} {resource.get('id')} {code} ({analyte.key}): "
                    f"{value!r} unit={quantity.get('unit')!r} code={quantity.get('code')!r}"
                )
    assert checked, "no catalog observations found in the fixtures"
    assert failures == [], f"{len(failures)} of {checked} observations did not normalise:\n" + "\n".join(
        failures[:50]
    )

"""plugin/rules/high_harm.py: every check positive and negative, its lab and dose boundaries, combination
products, draft orders (order-select), and current MedicationRequests and MedicationStatements."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from plugin import terminology
from plugin.context.build import build_context
from plugin.context.model import Dosage
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, high_harm
from plugin.rules.catalog import Interaction, Rule
from plugin.rules.dosing import daily_mg, dose_count, per_day
from plugin.rules.freshness import lab_windows
from plugin.rules.high_harm import HIGH_HARM_RULES, mme_table, parse_mme_table
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import NOW, JsonDict, add_entry, draft_orders
from tests.support.rule_cases import OBSERVATION_CATEGORY, PATIENT_ID, Chart, on

pytestmark = pytest.mark.unit

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"


# --- chart builders: text-coded products, so no RxNorm code has to be invented ------------------------------


def _dosage(dose: str | None, per: str | None, prn: bool) -> list[JsonDict]:
    if dose is None and per is None:
        return []
    instruction: JsonDict = {"asNeededBoolean": prn}
    if per is not None:
        frequency, period, unit = per.split()[0], per.split()[2], per.split()[3]
        instruction["timing"] = {
            "repeat": {"frequency": int(frequency), "period": float(period), "periodUnit": unit}
        }
    if dose is not None:
        value, _, unit = dose.partition(" ")
        instruction["doseAndRate"] = [{"doseQuantity": {"value": float(value), "unit": unit}}]
    return [instruction]


def rx(
    rid: str,
    display: str,
    dose: str | None = "1 tablet",
    per: str | None = "1 per 1 d",
    *,
    prn: bool = False,
    status: str = "active",
) -> JsonDict:
    """A MedicationRequest (status draft: a draft order of the order-select hook)."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {"text": display},
        "authoredOn": on(30),
        "dosageInstruction": _dosage(dose, per, prn),
    }


def draft(rid: str, display: str, dose: str | None = "1 tablet", per: str | None = "1 per 1 d") -> JsonDict:
    return rx(rid, display, dose, per, status="draft")


def statement(
    rid: str, display: str, dose: str | None = "1 tablet", per: str | None = "1 per 1 d"
) -> JsonDict:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {"text": display},
        "effectiveDateTime": on(60),
        "dosage": _dosage(dose, per, False),
    }


def obs(rid: str, loinc: str, value: float, unit: str, days_ago: int = 5) -> JsonDict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(days_ago)}T09:30:00Z",
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def potassium(value: float, days_ago: int = 5) -> JsonDict:
    return obs("k", "2823-3", value, "mmol/L", days_ago)


def magnesium(value: float, days_ago: int = 5, unit: str = "mg/dL") -> JsonDict:
    return obs("mg", "19123-9" if unit == "mg/dL" else "2601-3", value, unit, days_ago)


def condition(rid: str, system: str, code: str, display: str) -> JsonDict:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "onsetDateTime": on(200),
    }


OVERDOSE = condition(
    "overdose", ICD10, "T40.2X1A", "Poisoning by other opioids, accidental, initial encounter"
)
LONG_QT = condition("long-qt", SNOMED, "9651007", "Long QT syndrome")

CITALOPRAM = rx("citalopram", "citalopram 20 MG Oral Tablet")
ONDANSETRON = rx("ondansetron", "ondansetron 4 MG Oral Tablet", per="3 per 1 d")
ONDANSETRON_DRAFT = draft("draft-ondansetron", "ondansetron 4 MG Oral Tablet")
OXYCODONE = rx("oxycodone", "Oxycodone Hydrochloride 5 MG Oral Tablet", per="3 per 1 d")  # 22.5 MME
SERTRALINE = rx("sertraline", "sertraline 50 MG Oral Tablet")
WARFARIN = rx("warfarin", "Warfarin Sodium 5 MG Oral Tablet")
AMIODARONE = rx("amiodarone", "amiodarone hydrochloride 200 MG Oral Tablet")
IBUPROFEN = rx("ibuprofen", "Ibuprofen 600 MG Oral Tablet", per="3 per 1 d")


def context(*resources: JsonDict, drafts: tuple[JsonDict, ...] = (), age: int = 50) -> Any:
    statements = [r for r in resources if r["resourceType"] == "MedicationStatement"]
    chart = Chart(age=age, resources=tuple(r for r in resources if r not in statements), drafts=drafts)
    prefetch = chart.prefetch()
    for item in statements:
        add_entry(prefetch, "medications", item)
    built = build_context(prefetch, NOW, draft_orders=draft_orders(*drafts) if drafts else None)
    assert built.context.skipped == ()
    return built


def run(rule: Rule, *resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> list[Finding]:
    return list(rule(RuleFacts.of(context(*resources, drafts=drafts).context)))


def refs(built: Any, handles: tuple[str, ...]) -> set[str | None]:
    return {built.handles.resolve(h) for h in handles}


def one(rule: Rule, *resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> tuple[Finding, Any]:
    built = context(*resources, drafts=drafts)
    found = list(rule(RuleFacts.of(built.context)))
    assert len(found) == 1, found
    finding = found[0]
    knowledge = load_knowledge_base()
    assert all(kb in knowledge for kb in finding.evidence), finding.evidence
    assert len(finding.summary) < 140 and "consider" in finding.summary, finding.summary
    assert finding.explanation.endswith(".")
    assert set(finding.proposed) <= set(finding.inputs)
    return finding, built


def pair(rule_id: str) -> Interaction:
    (found,) = [
        r
        for r in (*HIGH_HARM_RULES, *catalog.INTERACTIONS)
        if isinstance(r, Interaction) and r.rule_id == rule_id
    ]
    return found


def ref(resource: JsonDict) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


# --- QT-prolonging combinations --------------------------------------------------------------------------

QT = high_harm.QT_COMBINATION


def test_two_qt_drugs_with_normal_current_labs_are_a_warning() -> None:
    k, mg = potassium(4.1), magnesium(2.0)
    finding, built = one(QT, CITALOPRAM, ONDANSETRON, k, mg)
    assert (finding.rule_id, finding.severity) == ("rule.qt-combination", "warning")
    # Ondansetron is one of the pair: its label's QT entry is cited too.
    assert finding.evidence == ("kb.qt-prolonging-drug-combination", "kb.ondansetron-qt")
    assert refs(built, finding.inputs) == {ref(CITALOPRAM), ref(ONDANSETRON), ref(k), ref(mg)}
    assert finding.order_lab is None


@pytest.mark.parametrize(("value", "severity"), [(3.4, "critical"), (3.5, "warning"), (3.6, "warning")])
def test_potassium_below_3_5_makes_it_critical(value: float, severity: str) -> None:
    finding, _ = one(QT, CITALOPRAM, ONDANSETRON, potassium(value), magnesium(2.0))
    assert finding.severity == severity
    if severity == "critical":
        assert f"K {value:g}" in finding.summary
        assert "kb.qt-drug-hypokalaemia" in finding.evidence


@pytest.mark.parametrize(("value", "severity"), [(1.7, "critical"), (1.8, "warning"), (1.9, "warning")])
def test_magnesium_below_1_8_makes_it_critical(value: float, severity: str) -> None:
    finding, _ = one(QT, CITALOPRAM, ONDANSETRON, potassium(4.0), magnesium(value))
    assert finding.severity == severity


def test_magnesium_in_mmol_per_litre_is_converted() -> None:
    # 0.70 mmol/L is 1.70 mg/dL: low.
    finding, _ = one(QT, CITALOPRAM, ONDANSETRON, potassium(4.0), magnesium(0.70, unit="mmol/L"))
    assert finding.severity == "critical" and "Mg 1.7" in finding.summary


def test_missing_potassium_is_said_and_ordered_never_assumed_normal() -> None:
    mg = magnesium(2.0)
    finding, built = one(QT, CITALOPRAM, ONDANSETRON, mg)
    assert finding.severity == "warning"
    assert "no K on record" in finding.summary
    assert finding.order_lab is not None and finding.order_lab.loinc == "2823-3"
    assert finding.evidence == (
        "kb.qt-prolonging-drug-combination",
        "kb.qt-drug-hypokalaemia",
        "kb.ondansetron-qt",
    )
    assert refs(built, finding.inputs) == {ref(CITALOPRAM), ref(ONDANSETRON), ref(mg)}


def test_a_stale_low_potassium_is_shown_not_used() -> None:
    window = lab_windows()["potassium"].max_age_days
    k = potassium(3.0, days_ago=window + 1)
    finding, built = one(QT, CITALOPRAM, ONDANSETRON, k, magnesium(2.0))
    assert finding.severity == "warning"
    assert f"K {window + 1} days old" in finding.summary
    assert ref(k) in refs(built, finding.inputs)
    assert finding.order_lab is not None and finding.order_lab.loinc == "2823-3"


def test_missing_magnesium_alone_orders_magnesium() -> None:
    finding, _ = one(QT, CITALOPRAM, ONDANSETRON, potassium(4.0))
    assert "no Mg on record" in finding.summary
    assert finding.order_lab is not None and finding.order_lab.loinc == "19123-9"


def test_congenital_long_qt_makes_it_critical() -> None:
    finding, built = one(QT, CITALOPRAM, ONDANSETRON, potassium(4.0), magnesium(2.0), LONG_QT)
    assert finding.severity == "critical"
    assert "kb.qt-drug-congenital-long-qt" in finding.evidence
    assert ref(LONG_QT) in refs(built, finding.inputs)


def test_a_draft_qt_drug_is_the_proposal() -> None:
    finding, built = one(QT, CITALOPRAM, potassium(4.0), magnesium(2.0), drafts=(ONDANSETRON_DRAFT,))
    assert refs(built, finding.proposed) == {ref(ONDANSETRON_DRAFT)}


def test_a_medication_statement_counts() -> None:
    haloperidol = statement("haloperidol", "haloperidol 5 MG Oral Tablet")
    finding, built = one(QT, CITALOPRAM, haloperidol, potassium(4.0), magnesium(2.0))
    assert ref(haloperidol) in refs(built, finding.inputs)


def test_one_qt_drug_even_with_low_potassium_is_not_a_combination() -> None:
    assert run(QT, CITALOPRAM, potassium(3.0), magnesium(1.5)) == []


def test_two_products_of_one_qt_drug_are_not_a_combination() -> None:
    citalopram_10 = rx("citalopram-10", "citalopram 10 MG Oral Tablet")
    assert run(QT, CITALOPRAM, citalopram_10, potassium(4.0)) == []


def test_quetiapine_is_not_tagged_known_risk() -> None:
    # CredibleMeds lists quetiapine under conditional risk only.
    assert "qt-prolonging" not in terminology.classes_of("quetiapine")
    assert run(QT, CITALOPRAM, rx("quetiapine", "quetiapine 25 MG Oral Tablet"), potassium(4.0)) == []


# --- opioid bundle ---------------------------------------------------------------------------------------


def test_opioid_with_benzodiazepine_is_critical() -> None:
    lorazepam = rx("lorazepam", "Lorazepam 1 MG Oral Tablet")
    finding, _ = one(pair("rule.opioid-sedative"), OXYCODONE, lorazepam)
    assert finding.severity == "critical"
    assert finding.evidence == ("kb.opioid-benzodiazepine-boxed-warning",)


def test_opioid_with_zolpidem_is_a_warning_of_its_own_rule() -> None:
    zolpidem = rx("zolpidem", "zolpidem tartrate 5 MG Oral Tablet")
    assert run(pair("rule.opioid-sedative"), OXYCODONE, zolpidem) == []
    finding, _ = one(pair("rule.opioid-z-drug"), OXYCODONE, zolpidem)
    assert (finding.severity, finding.evidence) == ("warning", ("kb.opioid-cns-depressants",))


def test_z_drug_without_an_opioid_is_silent() -> None:
    assert (
        run(pair("rule.opioid-z-drug"), rx("zolpidem", "zolpidem tartrate 5 MG Oral Tablet"), SERTRALINE)
        == []
    )


@pytest.mark.parametrize("gabapentinoid", ["gabapentin 300 MG Oral Capsule", "pregabalin 75 MG Oral Capsule"])
def test_opioid_with_a_gabapentinoid_draft(gabapentinoid: str) -> None:
    order = draft("draft-gabapentinoid", gabapentinoid)
    finding, built = one(pair("rule.opioid-gabapentinoid"), OXYCODONE, drafts=(order,))
    assert (finding.severity, finding.evidence) == ("warning", ("kb.opioid-gabapentinoid",))
    assert refs(built, finding.proposed) == {ref(order)}


def test_gabapentin_without_an_opioid_is_silent() -> None:
    gabapentin = rx("gabapentin", "gabapentin 300 MG Oral Capsule")
    assert (
        run(pair("rule.opioid-gabapentinoid"), gabapentin, rx("lorazepam", "Lorazepam 1 MG Oral Tablet"))
        == []
    )


def test_tramadol_statement_with_sertraline_risks_serotonin_syndrome() -> None:
    tramadol = statement("tramadol", "tramadol hydrochloride 50 MG Oral Tablet")
    finding, built = one(pair("rule.serotonergic-opioid-ssri-snri"), tramadol, SERTRALINE)
    assert finding.severity == "warning"
    assert finding.evidence == ("kb.opioid-serotonergic", "kb.tramadol-serotonergic")
    assert refs(built, finding.inputs) == {ref(tramadol), ref(SERTRALINE)}


def test_methadone_with_an_snri_draft() -> None:
    methadone = rx("methadone", "Methadone Hydrochloride 10 MG Oral Tablet")
    venlafaxine = draft("draft-venlafaxine", "venlafaxine 75 MG Oral Tablet")
    finding, _ = one(pair("rule.serotonergic-opioid-ssri-snri"), methadone, drafts=(venlafaxine,))
    assert finding.evidence == ("kb.opioid-serotonergic",)


def test_oxycodone_with_sertraline_is_not_serotonergic() -> None:
    assert run(pair("rule.serotonergic-opioid-ssri-snri"), OXYCODONE, SERTRALINE) == []


def test_duplicate_opioids_are_the_catalog_duplicate_rule_including_combination_products() -> None:
    hydrocodone = rx("hydrocodone", "Hydrocodone Bitartrate 5 MG / Acetaminophen 325 MG Oral Tablet")
    finding, _ = one(catalog.duplicate_therapy, hydrocodone, OXYCODONE)
    assert finding.evidence == ("kb.duplicate-opioids",)


def test_long_acting_with_same_ingredient_short_acting_counts_as_duplicate() -> None:
    er = rx(
        "oxycodone-er", "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet", per="2 per 1 d"
    )
    finding, built = one(catalog.duplicate_therapy, er, OXYCODONE)
    assert refs(built, finding.inputs) == {ref(er), ref(OXYCODONE)}


def test_one_opioid_is_not_a_duplicate() -> None:
    assert (
        run(catalog.duplicate_therapy, OXYCODONE, rx("acetaminophen", "Acetaminophen 325 MG Oral Tablet"))
        == []
    )


# --- naloxone and MME ------------------------------------------------------------------------------------

NALOXONE = high_harm.NALOXONE_MISSING
MORPHINE = "Morphine Sulfate 15 MG Oral Tablet"


@pytest.mark.parametrize(("mg", "fires"), [(49, False), (50, True), (51, True)])
def test_naloxone_from_50_mme_a_day(mg: int, fires: bool) -> None:
    morphine = rx("morphine", MORPHINE, dose=f"{mg} mg", per="1 per 1 d")
    found = run(NALOXONE, morphine)
    if not fires:
        assert found == []
        return
    finding, _ = one(NALOXONE, morphine)
    assert finding.severity == "warning"
    assert f"{mg} MME/day" in finding.summary
    assert finding.evidence == ("kb.cdc-opioid-naloxone-2022", "kb.cdc-opioid-mme-2022")


def test_combination_product_mme_counts_only_the_opioid() -> None:
    # Hydrocodone 10 mg five times a day: 50 MME (the acetaminophen is not counted).
    hydrocodone = rx(
        "hydrocodone", "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet", per="5 per 1 d"
    )
    finding, _ = one(NALOXONE, hydrocodone)
    assert "50 MME/day" in finding.summary


@pytest.mark.parametrize(
    "display",
    [
        "Norco 5-325 (hydrocodone bitartrate 5 mg/acetaminophen 325 mg) tablet",
        "hydrocodone 5 mg/acetaminophen 325 mg tablet",
    ],
)
def test_free_text_combination_strength_is_read_per_ingredient(display: str) -> None:
    # Hydrocodone 5 mg ten times a day: 50 MME; the acetaminophen's 325 mg is not the opioid's strength.
    finding, _ = one(NALOXONE, rx("norco", display, per="10 per 1 d"))
    assert "50 MME/day" in finding.summary


@pytest.mark.parametrize(
    ("display", "mme"),
    [
        # Ingredients named first, strengths after in the same order: hydrocodone 5 mg x 10 = 50 MME.
        ("HYDROcodone bitartrate / acetaminophen 5 mg/325 mg oral tablet (Norco)", "50"),
        ("acetaminophen / hydrocodone bitartrate 325 mg/10 mg oral tablet", "100"),
    ],
)
def test_strengths_listed_after_the_ingredient_names_follow_their_order(display: str, mme: str) -> None:
    finding, _ = one(NALOXONE, rx("norco", display, per="10 per 1 d"))
    assert f"{mme} MME/day" in finding.summary


@pytest.mark.parametrize(("high", "mme"), [(1, None), (2, "80")])
def test_a_dose_range_counts_at_its_high_end(high: int, mme: str | None) -> None:
    # "1-2 tablets every 6 hours": hydrocodone 10 mg, at most 8 tablets a day = 80 MME; 1 tablet is 40.
    norco = rx(
        "norco",
        "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
        dose=None,
        per="4 per 1 d",
        prn=True,
    )
    norco["dosageInstruction"][0]["doseAndRate"] = [
        {"doseRange": {"low": {"value": 1, "unit": "tablet"}, "high": {"value": high, "unit": "tablet"}}}
    ]
    found = run(NALOXONE, norco)
    if mme is None:
        assert found == []
        return
    finding, _ = one(NALOXONE, norco)
    assert f"{mme} MME/day" in finding.summary


def test_mme_sums_across_products_and_as_needed_counts_at_its_most_frequent() -> None:
    # Oxycodone 5 mg x 3/day = 22.5 MME, plus 2 tablets every 4 h as needed = 90 MME.
    prn = rx(
        "oxycodone-prn",
        "Oxycodone Hydrochloride 5 MG Oral Tablet",
        dose="2 tablet",
        per="1 per 4 h",
        prn=True,
    )
    finding, _ = one(NALOXONE, OXYCODONE, prn)
    assert "112.5 MME/day" in finding.summary


@pytest.mark.parametrize(("most_tablets", "mme"), [(4, None), (5, "50"), (8, "80")])
def test_an_as_needed_order_counts_at_the_most_its_daily_cap_allows(
    most_tablets: int, mme: str | None
) -> None:
    # "1-2 tablets every 6 hours as needed, maximum N a day", the dose written as its low end: CDC counts the
    # most the order allows (hydrocodone 10 mg a tablet), not 4 tablets a day.
    norco = rx(
        "norco", "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet", per="4 per 1 d", prn=True
    )
    norco["dosageInstruction"][0]["maxDosePerPeriod"] = {
        "numerator": {"value": most_tablets, "unit": "tablet", "code": "{tbl}"},
        "denominator": {"value": 1, "unit": "d", "code": "d"},
    }
    found = run(NALOXONE, norco)
    if mme is None:
        assert found == []  # 40 MME at four tablets a day
        return
    finding, _ = one(NALOXONE, norco)
    assert f"{mme} MME/day" in finding.summary


def test_fentanyl_patch_is_converted_per_mcg_per_hour() -> None:
    patch = rx("fentanyl", "72 HR Fentanyl 0.025 MG/HR Transdermal System", dose="1 patch", per="1 per 3 d")
    finding, _ = one(NALOXONE, patch)
    assert "60 MME/day" in finding.summary


def test_below_50_mme_with_no_overdose_is_silent() -> None:
    assert run(NALOXONE, OXYCODONE) == []


def test_unknown_dose_is_stated_never_taken_as_under_50() -> None:
    no_dose = rx("oxycodone", "Oxycodone Hydrochloride 5 MG Oral Tablet", dose=None, per=None)
    finding, _ = one(NALOXONE, no_dose)
    assert finding.severity == "info"
    assert "MME/day unknown" in finding.summary and "dose unreadable" in finding.summary


def test_an_opioid_without_a_cdc_factor_is_unknown() -> None:
    suboxone = rx("buprenorphine", "Buprenorphine 8 MG / Naloxone 2 MG Sublingual Tablet")
    finding, _ = one(NALOXONE, suboxone)
    assert finding.severity == "info" and "no CDC factor" in finding.summary
    assert finding.summary.startswith("Buprenorphine + naloxone")
    # The naloxone inside buprenorphine/naloxone is not a rescue supply.


def test_known_part_over_50_is_a_warning_even_with_an_unknown_product() -> None:
    morphine = rx("morphine", MORPHINE, dose="60 mg", per="1 per 1 d")
    unknown = rx("codeine", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", dose=None, per=None)
    finding, _ = one(NALOXONE, morphine, unknown)
    assert finding.severity == "warning" and "at least 60 MME/day" in finding.summary


def test_overdose_on_record_asks_for_naloxone_at_any_dose() -> None:
    finding, built = one(NALOXONE, OXYCODONE, OVERDOSE)
    assert finding.severity == "warning"
    assert finding.evidence == ("kb.cdc-opioid-naloxone-2022",)
    assert refs(built, finding.inputs) == {ref(OXYCODONE), ref(OVERDOSE)}


def test_naloxone_on_record_silences_it() -> None:
    morphine = rx("morphine", MORPHINE, dose="90 mg", per="1 per 1 d")
    spray = rx("naloxone", "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray", dose="1 spray", per=None)
    assert run(NALOXONE, morphine, spray, OVERDOSE) == []


def test_a_draft_opioid_at_high_mme_is_the_proposal() -> None:
    order = draft("draft-morphine", MORPHINE, dose="4 tablet", per="1 per 1 d")  # 60 MME
    finding, built = one(NALOXONE, drafts=(order,))
    assert refs(built, finding.proposed) == {ref(order)}


def test_no_opioid_no_naloxone_card() -> None:
    assert run(NALOXONE, SERTRALINE, OVERDOSE) == []


def test_mme_table_is_versioned_cdc_2022_and_validated() -> None:
    table = mme_table()
    assert table.version and table.threshold == 50
    assert table.factors["methadone"].factor == 4.7
    assert table.factors["hydromorphone"].factor == 5.0
    assert table.factors["tramadol"].factor == 0.2
    assert table.factors["fentanyl"].per == "mcg/hour"
    raw = json.loads(
        resources.files("plugin").joinpath("knowledge/opioid_mme.json").read_text(encoding="utf-8")
    )
    assert "CDC" in raw["source"]["document"] and "2022" in raw["source"]["document"]
    raw["factors"]["sertraline"] = {"factor": 1.0, "per": "mg/day"}
    with pytest.raises(ValueError, match="not an opioid"):
        parse_mme_table(raw)


@pytest.mark.parametrize(
    ("dose", "frequency", "strength", "expected"),
    [
        ("2 tablet", "3 per 1 d", 5.0, 30.0),
        ("10 mg", "1 per 12 h", None, 20.0),
        ("1", "1 per 1 wk", 70.0, 10.0),
        ("5 mL", "3 per 1 d", 5.0, None),
        ("1 tablet", None, 5.0, None),
        (None, "3 per 1 d", 5.0, None),
        ("1 tablet", "3 per 1 d", None, None),
    ],
)
def test_daily_dose_arithmetic(
    dose: str | None, frequency: str | None, strength: float | None, expected: float | None
) -> None:
    assert daily_mg(Dosage(dose=dose, frequency=frequency), strength) == expected


def test_dose_helpers() -> None:
    assert per_day("1 per 8 h") == 3.0 and per_day("3 per 1 mo") is None
    assert dose_count(Dosage(dose="2 {tbl}")) == 2.0 and dose_count(Dosage(dose="5 mg")) is None


# --- amiodarone, warfarin partners and simvastatin --------------------------------------------------------


def test_amiodarone_with_warfarin_offers_an_inr() -> None:
    finding, _ = one(pair("rule.amiodarone-warfarin"), AMIODARONE, WARFARIN)
    assert (finding.severity, finding.evidence) == ("warning", ("kb.warfarin-amiodarone",))
    assert finding.order_lab is not None and finding.order_lab.loinc == "6301-6"
    assert finding.summary.startswith("Amiodarone with warfarin")


def test_amiodarone_draft_with_digoxin_offers_a_level() -> None:
    digoxin = rx("digoxin", "Digoxin 0.125 MG Oral Tablet")
    order = draft("draft-amiodarone", "amiodarone hydrochloride 200 MG Oral Tablet")
    finding, built = one(pair("rule.amiodarone-digoxin"), digoxin, drafts=(order,))
    assert finding.order_lab is not None and finding.order_lab.loinc == "10535-3"
    assert refs(built, finding.proposed) == {ref(order)}


def test_other_qt_drugs_are_not_amiodarone() -> None:
    assert (
        run(
            pair("rule.amiodarone-warfarin"),
            WARFARIN,
            rx("sotalol", "sotalol hydrochloride 80 MG Oral Tablet"),
        )
        == []
    )
    assert run(pair("rule.amiodarone-digoxin"), AMIODARONE, WARFARIN) == []


@pytest.mark.parametrize(("tablets", "fires"), [(1, False), (2, True)])
def test_simvastatin_20_with_amiodarone_by_daily_dose(tablets: int, fires: bool) -> None:
    simvastatin = rx("simvastatin", "Simvastatin 20 MG Oral Tablet", dose=f"{tablets} tablet")
    found = run(high_harm.SIMVASTATIN_DAILY_DOSE, simvastatin, AMIODARONE)
    assert [f.rule_id for f in found] == (["rule.simvastatin-daily-dose"] if fires else [])
    if fires:
        assert found[0].evidence == (
            "kb.simvastatin-dose-limits",
            "kb.simvastatin-amiodarone-dose-limit-2011",
        )
        assert "40 mg/day" in found[0].summary


def test_simvastatin_40_with_amiodarone_is_left_to_the_catalog_rule() -> None:
    simvastatin = rx("simvastatin", "Simvastatin 40 MG Oral Tablet", dose="2 tablet")
    assert run(high_harm.SIMVASTATIN_DAILY_DOSE, simvastatin, AMIODARONE) == []
    assert [f.rule_id for f in run(catalog.simvastatin_dose_limit, simvastatin, AMIODARONE)] == [
        "rule.simvastatin-dose-limit"
    ]


def test_warfarin_with_a_co_trimoxazole_draft() -> None:
    order = draft(
        "draft-smx-tmp", "Sulfamethoxazole 800 MG / Trimethoprim 160 MG Oral Tablet", per="2 per 1 d"
    )
    finding, built = one(pair("rule.vka-co-trimoxazole"), WARFARIN, drafts=(order,))
    assert (finding.severity, finding.evidence) == ("warning", ("kb.warfarin-co-trimoxazole",))
    assert finding.order_lab is not None and finding.order_lab.loinc == "6301-6"
    assert refs(built, finding.proposed) == {ref(order)}


def test_warfarin_with_trimethoprim_alone_is_not_co_trimoxazole() -> None:
    assert run(pair("rule.vka-co-trimoxazole"), WARFARIN, rx("tmp", "Trimethoprim 100 MG Oral Tablet")) == []


def test_warfarin_statement_with_metronidazole() -> None:
    warfarin = statement("warfarin", "Warfarin Sodium 5 MG Oral Tablet")
    metronidazole = rx("metronidazole", "metroNIDAZOLE 500 MG Oral Tablet", per="2 per 1 d")
    finding, _ = one(pair("rule.vka-metronidazole"), warfarin, metronidazole)
    assert finding.evidence == ("kb.warfarin-metronidazole",)


def test_metronidazole_without_warfarin_is_silent() -> None:
    assert (
        run(
            pair("rule.vka-metronidazole"),
            rx("metronidazole", "metroNIDAZOLE 500 MG Oral Tablet"),
            AMIODARONE,
        )
        == []
    )


# --- contraindicated pairs (Phansalkar 2012 and labels) ---------------------------------------------------

ISMN = rx("ismn", "Isosorbide Mononitrate 30 MG Extended Release Oral Tablet")
SILDENAFIL = "sildenafil 50 MG Oral Tablet"
RIOCIGUAT = rx("riociguat", "riociguat 1 MG Oral Tablet", per="3 per 1 d")

CONTRAINDICATED = [
    ("rule.pde5-nitrate", (ISMN, draft("draft-sildenafil", SILDENAFIL)), ("kb.nitrate-pde5-inhibitor",)),
    (
        "rule.pde5-nitrate",
        (RIOCIGUAT, rx("ntg", "nitroglycerin 0.4 MG Sublingual Tablet", per=None)),
        ("kb.riociguat-nitrate-pde5-contraindicated",),
    ),
    (
        "rule.riociguat-pde5",
        (RIOCIGUAT, rx("tadalafil", "tadalafil 20 MG Oral Tablet")),
        ("kb.riociguat-nitrate-pde5-contraindicated",),
    ),
    (
        "rule.thiopurine-febuxostat",
        (
            rx("azathioprine", "azathioprine 50 MG Oral Tablet"),
            draft("draft-febuxostat", "febuxostat 40 MG Oral Tablet"),
        ),
        ("kb.febuxostat-thiopurine-contraindicated", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.thiopurine-allopurinol",
        (
            statement("mercaptopurine", "mercaptopurine 50 MG Oral Tablet"),
            rx("allopurinol", "allopurinol 300 MG Oral Tablet"),
        ),
        ("kb.allopurinol-azathioprine",),
    ),
    (
        "rule.maoi-stimulant",
        (
            rx("phenelzine", "phenelzine 15 MG Oral Tablet"),
            draft("draft-mph", "methylphenidate hydrochloride 10 MG Oral Tablet"),
        ),
        ("kb.stimulant-maoi", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.maoi-sympathomimetic",
        (
            rx("phenelzine", "phenelzine 15 MG Oral Tablet"),
            rx("pse", "pseudoephedrine hydrochloride 60 MG Oral Tablet"),
        ),
        ("kb.decongestant-maoi", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.ergot-cyp3a4-inhibitor",
        (
            rx("ergotamine", "ergotamine tartrate 1 MG / caffeine 100 MG Oral Tablet"),
            draft("draft-clarithromycin", "clarithromycin 500 MG Oral Tablet"),
        ),
        ("kb.ergot-cyp3a4-inhibitors", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.tizanidine-cyp1a2-inhibitor",
        (
            rx("tizanidine", "tizanidine 4 MG Oral Tablet"),
            draft("draft-cipro", "Ciprofloxacin 500 MG Oral Tablet"),
        ),
        ("kb.tizanidine-cyp1a2-inhibitors", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.ramelteon-fluvoxamine",
        (
            rx("ramelteon", "ramelteon 8 MG Oral Tablet"),
            rx("fluvoxamine", "fluvoxamine maleate 100 MG Oral Tablet"),
        ),
        ("kb.ramelteon-fluvoxamine", "kb.phansalkar-high-priority-ddi"),
    ),
    (
        "rule.arni-ace-inhibitor",
        (
            rx("entresto", "sacubitril 49 MG / valsartan 51 MG Oral Tablet"),
            draft("draft-lisinopril", "lisinopril 10 MG Oral Tablet"),
        ),
        ("kb.sacubitril-valsartan-acei-contraindicated",),
    ),
]


@pytest.mark.parametrize(
    ("rule_id", "resources", "evidence"), CONTRAINDICATED, ids=[c[0] for c in CONTRAINDICATED]
)
def test_contraindicated_pair_is_critical(
    rule_id: str, resources: tuple[JsonDict, ...], evidence: tuple[str, ...]
) -> None:
    current = tuple(r for r in resources if r.get("status") != "draft")
    drafts = tuple(r for r in resources if r.get("status") == "draft")
    finding, built = one(pair(rule_id), *current, drafts=drafts)
    assert (finding.severity, finding.evidence) == ("critical", evidence)
    assert refs(built, finding.inputs) == {ref(r) for r in resources}
    assert refs(built, finding.proposed) == {ref(r) for r in drafts}


NOT_CONTRAINDICATED = [
    ("rule.pde5-nitrate", (rx("sildenafil", SILDENAFIL), rx("amlodipine", "Amlodipine 5 MG Oral Tablet"))),
    (
        "rule.thiopurine-febuxostat",
        (
            rx("azathioprine", "azathioprine 50 MG Oral Tablet"),
            rx("allopurinol", "allopurinol 300 MG Oral Tablet"),
        ),
    ),
    (
        "rule.thiopurine-allopurinol",
        (
            rx("azathioprine", "azathioprine 50 MG Oral Tablet"),
            rx("febuxostat", "febuxostat 40 MG Oral Tablet"),
        ),
    ),
    (
        "rule.maoi-stimulant",
        (
            rx("sertraline", "sertraline 50 MG Oral Tablet"),
            rx("mph", "methylphenidate hydrochloride 10 MG Oral Tablet"),
        ),
    ),
    (
        "rule.maoi-sympathomimetic",
        (
            rx("linezolid", "linezolid 600 MG Oral Tablet"),
            rx("pse", "pseudoephedrine hydrochloride 60 MG Oral Tablet"),
        ),
    ),
    (
        "rule.ergot-cyp3a4-inhibitor",
        (
            rx("ergotamine", "ergotamine tartrate 1 MG / caffeine 100 MG Oral Tablet"),
            rx("azithromycin", "Azithromycin 250 MG Oral Tablet"),
        ),
    ),
    (
        "rule.tizanidine-cyp1a2-inhibitor",
        (
            rx("tizanidine", "tizanidine 4 MG Oral Tablet"),
            rx("levofloxacin", "levofloxacin 500 MG Oral Tablet"),
        ),
    ),
    (
        "rule.ramelteon-fluvoxamine",
        (rx("ramelteon", "ramelteon 8 MG Oral Tablet"), rx("cipro", "Ciprofloxacin 500 MG Oral Tablet")),
    ),
    (
        "rule.arni-ace-inhibitor",
        (
            rx("entresto", "sacubitril 49 MG / valsartan 51 MG Oral Tablet"),
            rx("spironolactone", "spironolactone 25 MG Oral Tablet"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("rule_id", "resources"), NOT_CONTRAINDICATED, ids=[c[0] for c in NOT_CONTRAINDICATED]
)
def test_similar_pair_is_not_flagged(rule_id: str, resources: tuple[JsonDict, ...]) -> None:
    assert run(pair(rule_id), *resources) == []


# --- low-dose aspirin is an antiplatelet, not a second NSAID ---------------------------------------------


@pytest.mark.parametrize(
    ("display", "tablets_a_day", "duplicate"),
    [
        ("aspirin 81 MG Oral Tablet", 1, False),
        ("aspirin 100 MG Oral Tablet", 1, False),
        ("aspirin 325 MG Oral Tablet", 1, True),
        ("aspirin 81 MG Oral Tablet", 3, True),  # 243 mg a day
    ],
)
def test_aspirin_dose_decides_whether_it_is_a_second_nsaid(
    display: str, tablets_a_day: int, duplicate: bool
) -> None:
    aspirin = rx("aspirin", display, per=f"{tablets_a_day} per 1 d")
    found = run(catalog.duplicate_therapy, aspirin, IBUPROFEN)
    assert [f.evidence for f in found] == ([("kb.duplicate-nsaids",)] if duplicate else [])


def test_low_dose_aspirin_without_a_dosage_is_read_by_its_strength() -> None:
    aspirin = rx("aspirin", "aspirin 81 MG Oral Tablet", dose=None, per=None)
    assert run(catalog.duplicate_therapy, aspirin, IBUPROFEN) == []


def test_two_real_nsaids_are_still_a_duplicate() -> None:
    naproxen = draft("draft-naproxen", "Naproxen 500 MG Oral Tablet", per="2 per 1 d")
    assert [f.rule_id for f in run(catalog.duplicate_therapy, IBUPROFEN, drafts=(naproxen,))] == [
        "rule.duplicate-therapy"
    ]


# --- the module as a whole --------------------------------------------------------------------------------


def test_rule_ids_are_distinct_and_new_to_the_catalog() -> None:
    ids = [r.rule_id for r in HIGH_HARM_RULES]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {i.rule_id for i in catalog.INTERACTIONS}


def test_every_pair_is_new_to_the_catalog() -> None:
    catalog_pairs = {(i.left, i.right, i.left_ingredients) for i in catalog.INTERACTIONS}
    for rule in HIGH_HARM_RULES:
        if isinstance(rule, Interaction):
            assert (rule.left, rule.right, rule.left_ingredients) not in catalog_pairs, rule.rule_id


def test_every_cited_entry_exists() -> None:
    knowledge = load_knowledge_base()
    cited = {kb for r in HIGH_HARM_RULES if isinstance(r, Interaction) for _, kb in r.evidence}
    for rule in (high_harm.QT_COMBINATION, high_harm.NALOXONE_MISSING, high_harm.SIMVASTATIN_DAILY_DOSE):
        cited |= {
            getattr(rule, f) for f in rule.__dataclass_fields__ if str(getattr(rule, f)).startswith("kb.")
        }
    assert cited and {kb for kb in cited if kb not in knowledge} == set()


def test_magnesium_has_a_validity_window() -> None:
    assert "magnesium" in lab_windows()


@pytest.mark.parametrize(
    ("extra", "lead"),
    [
        (rx("lorazepam", "Lorazepam 1 MG Oral Tablet"), "With a benzodiazepine, "),
        (condition("overdose", SNOMED, "55680006", "Drug overdose (disorder)"), "Overdose on record, "),
    ],
)
def test_naloxone_is_offered_with_a_benzodiazepine_or_after_any_drug_overdose(
    extra: JsonDict, lead: str
) -> None:
    # CDC 2022, recommendation 8: concurrent benzodiazepine use or any overdose history, whatever the MME.
    finding, built = one(NALOXONE, OXYCODONE, extra)  # 22.5 MME/day alone would be silent
    assert finding.severity == "warning" and finding.summary.startswith(lead)
    assert refs(built, finding.inputs) == {ref(OXYCODONE), ref(extra)}


@pytest.mark.parametrize(
    ("display", "fires"),
    [
        ("Metronidazole 500 MG Oral Tablet", True),
        ("Metronidazole 7.5 MG/ML Topical Gel", False),  # rosacea gel: barely absorbed
        ("Metronidazole 7.5 MG/ML Vaginal Gel", True),  # partly absorbed: still checked
    ],
)
def test_warfarin_with_metronidazole_counts_systemic_forms_only(display: str, fires: bool) -> None:
    rule = next(r for r in HIGH_HARM_RULES if getattr(r, "rule_id", "") == "rule.vka-metronidazole")
    warfarin = rx("warfarin", "Warfarin Sodium 5 MG Oral Tablet")
    assert bool(run(rule, warfarin, rx("metronidazole", display))) is fires

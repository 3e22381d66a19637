"""Adult vaccine gaps (plugin.rules.vaccines): each age line at, below and above, dose counting, records named
by brand or CVX, and what a missing record means for each vaccine."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from plugin.context.build import build_context
from plugin.knowledge import load_knowledge_base
from plugin.rules import vaccines
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import NOW, JsonDict, copy_json, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, lab, med, named_result, problem, vaccine

pytestmark = pytest.mark.unit


def facts(*resources: JsonDict, age: int = 60, deceased: bool = False) -> RuleFacts:
    built = Chart(age=age, resources=resources).build()
    context = built.context
    if deceased:
        context = replace(context, demographics=replace(context.demographics, deceased=True))
    return RuleFacts.of(context)


def ids(found: list[Finding]) -> list[str]:
    return [f.rule_id for f in found]


# --- zoster -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "fires"), [(49, False), (50, True), (51, True)])
def test_zoster_from_50_with_no_dose(age: int, fires: bool) -> None:
    assert bool(list(vaccines.zoster_due(facts(age=age)))) is fires


def test_two_recombinant_doses_close_the_gap_and_one_asks_for_the_second() -> None:
    first = vaccine("zoster-recombinant", 200, resource_id="rzv-1")
    second = vaccine("zoster-recombinant", 100, resource_id="rzv-2")
    assert not list(vaccines.zoster_due(facts(first, second)))
    (finding,) = vaccines.zoster_due(facts(first))
    assert "second" in finding.summary and finding.inputs


@pytest.mark.parametrize(("days", "fires"), [(55, False), (56, True), (57, True)])
def test_the_second_dose_is_due_from_8_weeks(days: int, fires: bool) -> None:
    assert bool(list(vaccines.zoster_due(facts(vaccine("zoster-recombinant", days))))) is fires


def test_the_live_vaccine_does_not_count_and_a_brand_name_does() -> None:
    assert list(vaccines.zoster_due(facts(vaccine("zoster-live", 3000))))
    shingrix = copy_json(vaccine("zoster-recombinant", 300, resource_id="s1"))
    shingrix["vaccineCode"] = {"text": "Shingrix dose 1"}
    shingrix_2 = copy_json(shingrix) | {
        "id": "s2",
        "occurrenceDateTime": vaccine("td", 200)["occurrenceDateTime"],
    }
    shingrix_2["vaccineCode"] = {"text": "Shingrix dose 2"}
    assert not list(vaccines.zoster_due(facts(shingrix, shingrix_2)))


def test_zoster_and_hepatitis_b_wait_in_pregnancy() -> None:
    # Immunocompromised at 29: the zoster series is due, but not while pregnant; nor the universal hepatitis B.
    hiv = problem("hiv")
    assert list(vaccines.zoster_due(facts(FLU, hiv, age=29)))
    assert list(vaccines.hepatitis_b_vaccine_due(facts(FLU, hiv, age=29)))
    assert not list(vaccines.zoster_due(facts(FLU, hiv, problem("pregnancy"), age=29)))
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, hiv, problem("pregnancy"), age=29)))


@pytest.mark.parametrize(
    ("age", "tdap_days_ago", "fires"),
    [
        (10, None, False),
        (11, None, True),
        (18, None, True),
        (19, None, False),  # adults: the 10-year booster rule
        (12, 365, False),  # given at 11
        (12, 2 * 365 + 30, True),  # given at about 9.9: a catch-up dose, the adolescent one is still due
        (12, 2 * 365 - 30, False),  # given at about 10.1: it counts
    ],
)
def test_adolescent_tdap_from_11_through_18(age: int, tdap_days_ago: int | None, fires: bool) -> None:
    given = () if tdap_days_ago is None else (vaccine("tdap", tdap_days_ago),)
    found = list(vaccines.tdap_adolescent_due(facts(FLU, *given, age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.acip-tdap-adolescent",)


def test_adolescent_tdap_is_judged_only_where_immunisations_are_recorded() -> None:
    assert not list(vaccines.tdap_adolescent_due(facts(age=12)))


def test_no_vaccine_card_for_a_deceased_patient() -> None:
    assert not list(vaccines.zoster_due(facts(age=70, deceased=True)))
    assert not list(vaccines.rsv_due(facts(age=80, deceased=True)))


# --- Td/Tdap ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "fires"), [(3651, False), (3652, False), (3653, True)])
def test_td_booster_after_ten_years(days: int, fires: bool) -> None:
    found = list(vaccines.td_booster_due(facts(vaccine("td", days), age=40)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.acip-td-tdap-adults",) and "10 years ago" in found[0].summary


def test_no_tetanus_record_at_all_says_nothing() -> None:
    assert not list(vaccines.td_booster_due(facts(age=40)))


def test_td_is_not_asked_of_a_child_or_in_pregnancy() -> None:
    assert not list(vaccines.td_booster_due(facts(vaccine("tdap", 4000), age=18)))
    assert not list(vaccines.td_booster_due(facts(vaccine("tdap", 4000), problem("pregnancy"), age=30)))


# --- RSV ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "fires"), [(74, False), (75, True), (76, True)])
def test_rsv_for_everyone_from_75(age: int, fires: bool) -> None:
    assert bool(list(vaccines.rsv_due(facts(age=age)))) is fires


@pytest.mark.parametrize(("age", "fires"), [(59, False), (60, True), (74, True)])
def test_rsv_from_60_with_a_risk_condition(age: int, fires: bool) -> None:
    found = list(vaccines.rsv_due(facts(problem("heart-failure"), age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].inputs  # the risk condition is cited


@pytest.mark.parametrize(
    ("resources", "fires"),
    [
        ((problem("multiple-myeloma"),), True),
        ((med("tacrolimus"),), True),
        # A corticosteroid alone is not counted: ACIP's line is a high dose for weeks, which a list cannot show.
        ((med("prednisone"),), False),
    ],
)
def test_rsv_from_60_when_the_immune_system_is_weakened(resources: tuple[JsonDict, ...], fires: bool) -> None:
    assert bool(list(vaccines.rsv_due(facts(*resources, age=68)))) is fires


def test_one_rsv_dose_ever_closes_the_gap() -> None:
    assert not list(vaccines.rsv_due(facts(vaccine("rsv", 900), age=80)))


# --- pneumococcal under 50 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "fires"), [(18, False), (19, True), (49, True), (50, False)])
def test_pneumococcal_for_at_risk_adults_under_50(age: int, fires: bool) -> None:
    found = list(vaccines.pneumococcal_risk_due(facts(problem("diabetes"), age=age)))
    assert bool(found) is fires


def test_pneumococcal_under_50_needs_a_risk_and_no_dose() -> None:
    assert not list(vaccines.pneumococcal_risk_due(facts(age=40)))
    assert not list(
        vaccines.pneumococcal_risk_due(facts(problem("diabetes"), vaccine("pneumococcal", 400), age=40))
    )


def test_the_cards_cite_entries_with_their_severity() -> None:
    knowledge = load_knowledge_base()
    cards = [
        *vaccines.zoster_due(facts(age=60)),
        *vaccines.td_booster_due(facts(vaccine("td", 5000))),
        *vaccines.rsv_due(facts(age=80)),
        *vaccines.pneumococcal_risk_due(facts(problem("diabetes"), age=30)),
    ]
    assert len(cards) == 4
    for card in cards:
        entry = knowledge.get(card.evidence[0])
        assert entry is not None and entry.severity_hint == card.severity == "info"


def _immunosuppressant() -> JsonDict:
    request = medication_request("tofacitinib", PATIENT_ID, "", "tofacitinib 5 MG Oral Tablet")
    del request["medicationCodeableConcept"]["coding"]
    return request


@pytest.mark.parametrize(("age", "fires"), [(18, False), (19, True), (30, True)])
def test_zoster_from_19_when_immunosuppressed(age: int, fires: bool) -> None:
    found = list(vaccines.zoster_due(facts(_immunosuppressant(), age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].inputs  # the immunosuppressant is cited
    assert not list(vaccines.zoster_due(facts(age=30)))


def test_pneumococcal_under_50_on_an_immunosuppressant() -> None:
    assert list(vaccines.pneumococcal_risk_due(facts(_immunosuppressant(), age=40)))


def test_hiv_is_a_pneumococcal_risk_and_makes_zoster_due_from_19() -> None:
    assert list(vaccines.pneumococcal_risk_due(facts(problem("hiv"), age=30)))
    assert list(vaccines.zoster_due(facts(problem("hiv"), age=30)))
    assert list(vaccines.pneumococcal_risk_due(facts(problem("asplenia"), age=30)))


# --- asplenia -----------------------------------------------------------------------------------------------

ASPLENIA_COMPLETE = (vaccine("menacwy", 200), vaccine("menb", 200), vaccine("hib", 200))


@pytest.mark.parametrize(("age", "fires"), [(18, False), (19, True), (70, True)])
def test_asplenia_vaccines_for_adults(age: int, fires: bool) -> None:
    found = list(vaccines.asplenia_vaccines_due(facts(problem("asplenia"), age=age)))
    assert bool(found) is fires
    if fires:
        assert "MenACWY" in found[0].summary and "MenB" in found[0].summary and "Hib" in found[0].summary


def test_asplenia_vaccines_given_close_the_gap_and_each_missing_one_is_named() -> None:
    assert not list(vaccines.asplenia_vaccines_due(facts(problem("asplenia"), *ASPLENIA_COMPLETE, age=40)))
    (card,) = vaccines.asplenia_vaccines_due(
        facts(problem("asplenia"), vaccine("menb", 200), vaccine("hib", 9000), age=40)
    )
    assert "MenACWY" in card.summary and "MenB" not in card.summary and "Hib" not in card.summary
    assert not list(vaccines.asplenia_vaccines_due(facts(*ASPLENIA_COMPLETE, age=40)))  # no asplenia


@pytest.mark.parametrize(("days", "fires"), [(5 * 365 - 1, False), (5 * 365, False), (5 * 365 + 1, True)])
def test_the_asplenia_menacwy_booster_is_due_after_five_years(days: int, fires: bool) -> None:
    chart = facts(
        problem("asplenia"), vaccine("menacwy", days), vaccine("menb", 200), vaccine("hib", 200), age=40
    )
    assert bool(list(vaccines.asplenia_vaccines_due(chart))) is fires


# --- PPSV23 alone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "fires"), [(364, False), (365, True), (366, True)])
def test_ppsv23_alone_asks_for_a_conjugate_a_year_later(days: int, fires: bool) -> None:
    from plugin.rules import catalog

    found = list(catalog.pneumococcal_due(facts(vaccine("ppsv23", days), age=70)))
    assert bool(found) is fires
    if fires:
        assert "only PPSV23" in found[0].summary and found[0].inputs
    risk = list(vaccines.pneumococcal_risk_due(facts(problem("diabetes"), vaccine("ppsv23", days), age=40)))
    assert bool(risk) is fires


def test_a_conjugate_after_ppsv23_completes_the_series() -> None:
    from plugin.rules import catalog

    chart = facts(vaccine("ppsv23", 900), vaccine("pneumococcal", 400), age=70)
    assert not list(catalog.pneumococcal_due(chart))


# --- RSV antibody for infants -------------------------------------------------------------------------------


def _infant(days_old: int, *resources: JsonDict, now: datetime = NOW) -> RuleFacts:
    prefetch = Chart(age=0, resources=resources).prefetch()
    prefetch["patient"]["birthDate"] = (now.date() - timedelta(days=days_old)).isoformat()
    return RuleFacts.of(build_context(prefetch, now).context)


@pytest.mark.parametrize(("days_old", "fires"), [(70, True), (242, True), (243, False), (244, False)])
def test_an_infant_under_8_months_in_rsv_season_is_offered_the_antibody(days_old: int, fires: bool) -> None:
    found = list(vaccines.infant_rsv_antibody_due(_infant(days_old)))
    assert bool(found) is fires
    if fires:
        assert found[0].rule_id == "rule.infant-rsv-antibody-due" and "mother" in found[0].summary


def test_the_antibody_given_out_of_season_or_before_the_advice_says_nothing() -> None:
    given = copy_json(vaccine("rsv", 20))
    given["vaccineCode"] = {"text": "Beyfortus (nirsevimab-alip) 50 mg"}
    assert not list(vaccines.infant_rsv_antibody_due(_infant(70, given)))
    assert not list(vaccines.infant_rsv_antibody_due(_infant(70, now=NOW.replace(month=6))))  # June
    assert not list(
        vaccines.infant_rsv_antibody_due(_infant(70, now=NOW.replace(year=2022)))
    )  # before ACIP's vote


def test_age_in_days_is_kept_only_for_children() -> None:
    assert _infant(700).context.demographics.age_days == 700
    assert Chart(age=5).build().context.demographics.age_days is not None
    assert Chart(age=17).build().context.demographics.age_days is not None
    assert Chart(age=18).build().context.demographics.age_days is None


# --- hepatitis B 19-59 --------------------------------------------------------------------------------------

FLU = vaccine("influenza", 60)


def _anti_hbs(value: float) -> JsonDict:
    return named_result("anti-hbs", "Hepatitis B surface Ab", quantity=value, days_ago=200)


def _childhood_mmr(age: int, at_age: float = 5) -> JsonDict:
    return vaccine("mmr", round((age - at_age) * 365.25))


@pytest.mark.parametrize(("age", "fires"), [(18, False), (19, True), (59, True), (60, False)])
def test_hepatitis_b_for_adults_19_to_59(age: int, fires: bool) -> None:
    found = vaccines.hepatitis_b_vaccine_due(facts(FLU, _childhood_mmr(age), age=age))
    assert bool(list(found)) is fires


@pytest.mark.parametrize(("age", "fires"), [(45, False), (46, True), (47, True)])
def test_without_a_childhood_record_only_adults_born_before_the_childhood_programmes(
    age: int, fires: bool
) -> None:
    # A younger adult's chart without childhood doses is silent about the childhood series, not negative.
    assert bool(list(vaccines.hepatitis_b_vaccine_due(facts(FLU, age=age)))) is fires


@pytest.mark.parametrize(("at_age", "fires"), [(17.9, True), (18.1, False)])
def test_a_dose_before_18_shows_the_childhood_record_was_carried_over(at_age: float, fires: bool) -> None:
    found = vaccines.hepatitis_b_vaccine_due(facts(FLU, _childhood_mmr(30, at_age), age=30))
    assert bool(list(found)) is fires


def test_a_risk_condition_or_prep_asks_for_hepatitis_b_without_a_childhood_record() -> None:
    assert list(vaccines.hepatitis_b_vaccine_due(facts(FLU, problem("diabetes"), age=30)))
    prep = medication_request(
        "prep", PATIENT_ID, "", "emtricitabine 200 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet"
    )
    del prep["medicationCodeableConcept"]["coding"]
    assert list(vaccines.hepatitis_b_vaccine_due(facts(FLU, prep, age=30)))
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, problem("hypertension"), age=30)))


def test_hepatitis_b_is_judged_only_where_immunisations_are_recorded_and_a_dose_closes_it() -> None:
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(age=40)))  # no immunisation history at all
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, vaccine("hepatitis-b", 400), age=40)))


@pytest.mark.parametrize(("titre", "fires"), [(9.9, True), (10.0, False), (85.0, False)])
def test_an_anti_hbs_of_10_or_more_is_immunity(titre: float, fires: bool) -> None:
    found = list(vaccines.hepatitis_b_vaccine_due(facts(FLU, _anti_hbs(titre), age=40)))
    assert bool(found) is fires
    if fires:
        assert len(found[0].inputs) == 1  # the low titre is shown


def test_hepatitis_b_from_60_on_dialysis_and_not_for_age_alone() -> None:
    dialysis = copy_json(problem("ckd-3"))
    dialysis["code"] = {"text": "End-stage renal disease on haemodialysis"}
    assert list(vaccines.hepatitis_b_vaccine_due(facts(FLU, dialysis, age=66)))
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, age=66)))
    # CKD G4 without dialysis: not carded from 60 (reviewers did not raise it).
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, problem("ckd-3"), lab("egfr", 22), age=71)))


def test_chronic_hepatitis_b_is_no_vaccine_gap() -> None:
    hbv = {
        "resourceType": "Condition",
        "id": "hbv",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "61977001", "display": "Chronic hepatitis B"}
            ]
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    assert not list(vaccines.hepatitis_b_vaccine_due(facts(FLU, hbv, age=40)))


# --- hepatitis A in chronic liver disease -------------------------------------------------------------------


def _hav_igg(answer: str) -> JsonDict:
    return named_result("hav-igg", "Hepatitis A virus IgG Ab", text=answer, days_ago=100)


def test_hepatitis_a_for_chronic_liver_disease() -> None:
    cirrhosis = problem("cirrhosis")
    assert list(vaccines.hepatitis_a_liver_disease_due(facts(FLU, cirrhosis, age=55)))
    assert list(vaccines.hepatitis_a_liver_disease_due(facts(FLU, cirrhosis, _hav_igg("Negative"), age=55)))
    assert not list(
        vaccines.hepatitis_a_liver_disease_due(facts(FLU, cirrhosis, _hav_igg("Positive"), age=55))
    )
    assert not list(
        vaccines.hepatitis_a_liver_disease_due(facts(FLU, cirrhosis, vaccine("hepatitis-a", 300), age=55))
    )
    assert not list(
        vaccines.hepatitis_a_liver_disease_due(facts(cirrhosis, age=55))
    )  # no immunisation history
    assert not list(vaccines.hepatitis_a_liver_disease_due(facts(FLU, problem("hypertension"), age=55)))


# --- MMR and varicella in childhood ------------------------------------------------------------------------------


def _child(days_old: int, *resources: JsonDict) -> list[Finding]:
    return list(vaccines.childhood_mmr_varicella_due(_infant(days_old, *resources)))


def _dose(name: str, days_ago: int) -> JsonDict:
    return vaccine(name, days_ago, resource_id=f"{name}-{days_ago}")


@pytest.mark.parametrize(("days_old", "cards"), [(486, 0), (487, 2), (2000, 2)])
def test_a_first_mmr_and_varicella_dose_is_overdue_from_16_months(days_old: int, cards: int) -> None:
    assert len(_child(days_old, _dose("hib", 300))) == cards


def test_a_child_with_no_immunisation_at_all_is_asked_for_the_record() -> None:
    (found,) = _child(2000)
    assert "no immunisations on record" in found.summary and "registry" in found.summary


def test_the_second_doses_are_overdue_from_the_seventh_birthday() -> None:
    one_each = (_dose("mmr", 1500), _dose("varicella", 1500))
    assert _child(6 * 365 + 300, *one_each) == []  # 6 years: dose 2 is due at 4-6, not yet overdue
    found = _child(7 * 365 + 30, *one_each)
    assert [("dose 2" in f.summary, f.rule_id) for f in found] == [
        (True, "rule.childhood-mmr-varicella-due")
    ] * 2
    both = (*one_each, _dose("mmrv", 400))
    assert _child(7 * 365 + 30, *both) == []  # MMRV counts for both


@pytest.mark.parametrize(("first_at_days_old", "counts"), [(270, False), (361, True), (365, True)])
def test_a_dose_before_the_first_birthday_does_not_count(first_at_days_old: int, counts: bool) -> None:
    days_old = 7 * 365 + 30
    mmr = (_dose("mmr", days_old - first_at_days_old), _dose("mmr", 1000))
    found = [
        f
        for f in _child(days_old, *mmr, _dose("varicella", 2000), _dose("varicella", 900))
        if "MMR" in f.summary
    ]
    assert (found == []) is counts


def test_chickenpox_history_pregnancy_and_immunosuppression_defer() -> None:
    chickenpox = problem("hypertension", resource_id="vzv")
    chickenpox["code"] = {"text": "Chickenpox"}
    found = _child(2000, _dose("mmr", 1500), chickenpox)
    assert found == []
    tacrolimus = med("tacrolimus")
    assert _child(2000, tacrolimus, _dose("hib", 1500)) == []


# --- hepatitis A in childhood ----------------------------------------------------------------------------------


def _hep_a(days_old: int, *resources: JsonDict) -> list[Finding]:
    return list(vaccines.childhood_hepatitis_a_due(_infant(days_old, *resources)))


@pytest.mark.parametrize(("days_old", "fires"), [(729, False), (730, True), (731, True)])
def test_a_first_hepatitis_a_dose_is_overdue_from_the_second_birthday(days_old: int, fires: bool) -> None:
    found = _hep_a(days_old, _dose("hib", 300))
    assert bool(found) is fires
    if fires:
        assert "dose 1 of 2" in found[0].summary


@pytest.mark.parametrize(("days_ago", "fires"), [(182, False), (183, True), (184, True)])
def test_the_second_hepatitis_a_dose_is_due_6_months_after_the_first(days_ago: int, fires: bool) -> None:
    found = _hep_a(900, _dose("hepatitis-a", days_ago))
    assert bool(found) is fires
    if fires:
        assert "dose 2" in found[0].summary and found[0].inputs


def test_two_hepatitis_a_doses_close_it_and_one_before_the_first_birthday_does_not_count() -> None:
    assert _hep_a(1500, _dose("hepatitis-a", 1000), _dose("hepatitis-a", 700)) == []
    # given at 300 days old: not valid, so one valid dose 700 days ago leaves dose 2 due
    (found,) = _hep_a(1500, _dose("hepatitis-a", 1200), _dose("hepatitis-a", 700))
    assert "dose 2" in found.summary


def test_childhood_hepatitis_a_leaves_missing_records_and_liver_disease_to_their_rules() -> None:
    assert _hep_a(1500) == []  # no immunisation at all: the MMR rule asks for the record
    assert _hep_a(1500, _dose("hib", 300), problem("cirrhosis")) == []
    assert _hep_a(1500, _dose("hib", 300))


def test_rsv_from_60_counts_kidney_failure_and_ckd_with_diabetes_but_not_ckd_alone() -> None:
    assert not list(vaccines.rsv_due(facts(FLU, problem("ckd-3"), age=63)))
    assert list(vaccines.rsv_due(facts(FLU, problem("ckd-3"), problem("diabetes"), age=63)))
    dialysis = copy_json(problem("ckd-3"))
    dialysis["code"] = {"text": "End-stage renal disease on haemodialysis"}
    assert list(vaccines.rsv_due(facts(FLU, dialysis, age=63)))

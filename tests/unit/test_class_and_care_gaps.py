"""Class-level checks and care gaps added after the v28 and v29 reviews: cephalosporin side chains, macrolide
allergy, duplicate cholinesterase inhibitors and beta-blockers, fragility fractures, ICS-only COPD, NSAIDs in
uncontrolled hypertension, Beers antiparkinsonian anticholinergics, statins after muscle aches or in children,
and albuminuria as CKD for the SGLT2 inhibitor gap."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from plugin import terminology
from plugin.context.build import build_context
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, depth, gaps, label_limits, monitoring, vaccines
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import NOW, JsonDict
from tests.support.rule_cases import Chart, lab, on, problem, vaccine
from tests.unit.test_rules_depth_v3 import allergy, rx
from tests.unit.test_rules_depth_v3 import as_needed as as_needed_rx

pytestmark = pytest.mark.unit


def facts(
    *resources: JsonDict, age: int = 70, gender: str = "male", drafts: tuple[JsonDict, ...] = ()
) -> RuleFacts:
    return RuleFacts.of(Chart(age=age, gender=gender, resources=resources, drafts=drafts).build().context)


def condition(resource_id: str, text: str, *, onset_days_ago: int = 200, status: str = "active") -> JsonDict:
    resource = problem("hypertension", resource_id=resource_id)
    resource["code"] = {"text": text}
    resource["onsetDateTime"] = on(onset_days_ago)
    resource["clinicalStatus"]["coding"][0]["code"] = status
    return resource


def rule_ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


# --- cephalosporin allergy: R1 side chains (2022 practice parameter) -------------------------------------------


@pytest.mark.parametrize(
    ("allergen", "reaction", "criticality", "drug", "severity"),
    [
        (
            "Cefazolin",
            "Hives",
            "low",
            "cephalexin 500 MG Oral Capsule",
            None,
        ),  # cefazolin shares no side chain
        (
            "Cefazolin",
            "Anaphylaxis",
            "high",
            "cephalexin 500 MG Oral Capsule",
            "critical",
        ),  # severe: still barred
        ("Ceftin", "Hives", "low", "cefpodoxime proxetil 200 MG Oral Tablet", "critical"),  # methoxyimino R1
        ("Cefuroxime", "Hives", "low", "ceftriaxone 1 GM Injection", "critical"),
        ("Cephalexin", "Rash", "low", "cefdinir 300 MG Oral Capsule", None),
        ("Cephalexin", "Rash", "low", "cefadroxil 500 MG Oral Capsule", "critical"),  # aminobenzyl R1
        ("Cephalosporins", "Rash", "low", "cefdinir 300 MG Oral Capsule", "critical"),  # which one is unknown
    ],
)
def test_a_cephalosporin_with_a_dissimilar_side_chain_after_a_mild_reaction_is_allowed(
    allergen: str, reaction: str, criticality: str, drug: str, severity: str | None
) -> None:
    record = allergy(allergen, criticality=criticality, reaction=reaction)
    found = [
        f
        for f in catalog.allergy_conflict(facts(record, rx("ceph", drug)))
        if f.rule_id.startswith("rule.allergy")
    ]
    assert [f.severity for f in found] == ([severity] if severity else [])


@pytest.mark.parametrize("swelling", ["Lip swelling", "throat swelling", "Swelling of the tongue"])
def test_swelling_of_the_lips_tongue_or_throat_is_a_severe_reaction(swelling: str) -> None:
    record = allergy("Cefazolin", reaction=swelling)
    (found,) = catalog.allergy_conflict(facts(record, rx("ceph", "cephalexin 500 MG Oral Capsule")))
    assert found.severity == "critical"


# --- macrolide allergy ---------------------------------------------------------------------------------------


def test_ees_is_erythromycin() -> None:
    assert terminology.resolve_product(None, "EES").ingredients == ("erythromycin",)


@pytest.mark.parametrize(
    ("kind", "reaction", "fires"),
    [
        (None, "Hives", True),  # an allergy to one macrolide bars the class (azithromycin label)
        ("intolerance", "Nausea", False),  # a side effect of erythromycin is not shared by azithromycin
        ("intolerance", "Nausea and vomiting", False),
        ("intolerance", "QT prolongation", True),  # not a mild side effect: the class shares it
    ],
)
def test_an_erythromycin_allergy_bars_azithromycin(kind: str | None, reaction: str, fires: bool) -> None:
    record = allergy("EES", kind=kind, reaction=reaction)
    found = list(catalog.allergy_same_drug(facts(record, rx("azi", "azithromycin 250 MG Oral Tablet"))))
    assert bool(found) is fires


# --- duplicate therapy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "label"),
    [
        (
            "donepezil 10 MG Oral Tablet",
            "rivastigmine 9.5 MG/24HR Transdermal System",
            "cholinesterase inhibitors",
        ),
        (
            "carvedilol 12.5 MG Oral Tablet",
            "metoprolol succinate 50 MG Extended Release Oral Tablet",
            "beta-blockers",
        ),
        ("metoprolol tartrate 25 MG Oral Tablet", "timolol 0.5 % Ophthalmic Solution", None),  # eye drops
        (
            "metoprolol tartrate 25 MG Oral Tablet",
            "sotalol hydrochloride 80 MG Oral Tablet",
            None,
        ),  # rhythm drug
        ("donepezil 10 MG Oral Tablet", "memantine 10 MG Oral Tablet", None),  # another mechanism
    ],
)
def test_two_drugs_of_one_class_are_a_duplicate(first: str, second: str, label: str | None) -> None:
    found = list(catalog.duplicate_therapy(facts(rx("a", first), rx("b", second))))
    assert [label in f.summary for f in found] == ([True] if label else [])


# --- osteoporosis after a fragility fracture -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "onset_days_ago", "status", "drug", "fires"),
    [
        (70, 200, "active", None, True),
        (49, 200, "active", None, False),  # from 50
        (50, 200, "active", None, True),
        (70, 1824, "resolved", None, True),  # a past fracture within five years
        (70, 1826, "resolved", None, False),
        (70, 200, "active", "alendronate 70 MG Oral Tablet", False),
        (70, 200, "active", "Prolia 60 MG/ML Prefilled Syringe", False),
    ],
)
def test_a_hip_fracture_without_osteoporosis_treatment(
    age: int, onset_days_ago: int, status: str, drug: str | None, fires: bool
) -> None:
    fracture = condition("hipfx", "Fracture of neck of femur", onset_days_ago=onset_days_ago, status=status)
    resources = (fracture, *((rx("bone", drug),) if drug else ()))
    found = list(gaps.osteoporosis_treatment_absent(facts(*resources, age=age, gender="female")))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.fragility-fracture-osteoporosis-treatment",)


# --- COPD on an inhaled corticosteroid alone ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("drugs", "asthma", "fires"),
    [
        (("fluticasone propionate 220 MCG/ACTUAT Inhalation Aerosol",), False, True),
        (
            (
                "fluticasone propionate 220 MCG/ACTUAT Inhalation Aerosol",
                "tiotropium 2.5 MCG/ACTUAT Inhalation Spray",
            ),
            False,
            False,
        ),
        (("fluticasone propionate 50 MCG/ACTUAT Nasal Spray",), False, False),  # for the nose
        (
            ("fluticasone propionate 220 MCG/ACTUAT Inhalation Aerosol",),
            True,
            False,
        ),  # asthma overlap: ICS needed
        (("Advair Diskus 250/50",), False, False),
    ],
)
def test_copd_on_an_inhaled_corticosteroid_alone(drugs: tuple[str, ...], asthma: bool, fires: bool) -> None:
    resources = [
        condition("copd", "Chronic obstructive pulmonary disease"),
        *(rx(f"d{i}", d) for i, d in enumerate(drugs)),
    ]
    if asthma:
        resources.append(problem("asthma"))
    assert bool(list(gaps.copd_ics_monotherapy(facts(*resources)))) is fires


# --- NSAIDs in uncontrolled hypertension -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("systolic", "diastolic", "drug", "fires"),
    [
        (140, 80, "ibuprofen 400 MG Oral Tablet", True),
        (139, 89, "ibuprofen 400 MG Oral Tablet", False),
        (130, 90, "naproxen 500 MG Oral Tablet", True),
        (150, 95, "aspirin 81 MG Delayed Release Oral Tablet", False),  # an antiplatelet
        (150, 95, "diclofenac sodium 1 % Topical Gel", False),
    ],
)
def test_an_nsaid_in_uncontrolled_hypertension(
    systolic: float, diastolic: float, drug: str, fires: bool
) -> None:
    resources = (
        problem("hypertension"),
        rx("nsaid", drug),
        lab("systolic_bp", systolic, resource_id="sbp"),
        lab("diastolic_bp", diastolic, resource_id="dbp"),
    )
    assert bool(list(gaps.nsaid_uncontrolled_hypertension(facts(*resources)))) is fires


def test_only_an_nsaid_taken_regularly_counts() -> None:
    readings = (
        problem("hypertension"),
        lab("systolic_bp", 150, resource_id="sbp"),
        lab("diastolic_bp", 95, resource_id="dbp"),
    )
    as_needed = as_needed_rx(rx("nsaid", "naproxen 500 MG Oral Tablet"))
    injected = rx("ketorolac", "ketorolac tromethamine 30 MG/ML Injectable Solution")
    assert list(gaps.nsaid_uncontrolled_hypertension(facts(*readings, as_needed))) == []
    assert list(gaps.nsaid_uncontrolled_hypertension(facts(*readings, injected))) == []


def test_an_nsaid_without_hypertension_or_a_reading_says_nothing() -> None:
    ibuprofen = rx("nsaid", "ibuprofen 400 MG Oral Tablet")
    assert (
        list(
            gaps.nsaid_uncontrolled_hypertension(facts(ibuprofen, lab("systolic_bp", 160, resource_id="sbp")))
        )
        == []
    )
    assert list(gaps.nsaid_uncontrolled_hypertension(facts(ibuprofen, problem("hypertension")))) == []


# --- Beers: benztropine and trihexyphenidyl ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "age", "fires"),
    [
        ("benztropine mesylate 1 MG Oral Tablet", 64, False),
        ("benztropine mesylate 1 MG Oral Tablet", 65, True),
        ("trihexyphenidyl hydrochloride 2 MG Oral Tablet", 80, True),
    ],
)
def test_beers_antiparkinsonian_anticholinergics_from_65(display: str, age: int, fires: bool) -> None:
    found = list(gaps.beers_antiparkinsonian_anticholinergic(facts(rx("bz", display), age=age)))
    assert bool(found) is fires


# --- statins ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "fires"),
    [
        ((("Simvastatin", "Myalgia", None),), True),  # muscle aches on one statin: another statin
        ((("Simvastatin", "Myalgia", None), ("Atorvastatin", "Muscle aches", None)), False),  # two statins
        ((("Simvastatin", "Rhabdomyolysis", None),), False),
        ((("Simvastatin", "Rash", None),), False),  # an allergy: the gap is handled
    ],
)
def test_a_statin_gap_after_muscle_aches_on_one_statin(
    records: tuple[tuple[str, str, str | None], ...], fires: bool
) -> None:
    allergies = [allergy(name, reaction=reaction, kind=kind) for name, reaction, kind in records]
    found = list(
        monitoring.statin_indicated(facts(problem("peripheral-arterial-disease"), *allergies, age=67))
    )
    assert bool(found) is fires
    if fires:
        assert "another statin" in found[0].summary


@pytest.mark.parametrize(
    ("age", "ldl", "fires"), [(9, 210, False), (10, 190, True), (12, 189, False), (16, 208, True)]
)
def test_a_child_from_ten_with_ldl_190_or_more(age: int, ldl: float, fires: bool) -> None:
    found = list(monitoring.statin_indicated(facts(lab("ldl", ldl), age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.paediatric-ldl-190-statin",)


# --- albuminuria as CKD for the SGLT2 inhibitor gap ----------------------------------------------------------


def _uacr(value: float, days_ago: int, resource_id: str) -> JsonDict:
    return lab("uacr", value, days_ago=days_ago, resource_id=resource_id)


@pytest.mark.parametrize(
    ("values", "fires"),
    [
        (((64, 10), (48, 200)), True),
        (((30, 10), (30, 200)), True),
        (((29, 10), (64, 200)), False),  # the latest is under 30
        (((64, 10),), False),  # one value may be transient
        (((64, 10), (48, 731)), False),  # the earlier one is too old
    ],
)
def test_persistent_albuminuria_counts_as_ckd(values: tuple[tuple[float, int], ...], fires: bool) -> None:
    resources = (
        problem("diabetes"),
        lab("egfr", 92),
        *(_uacr(v, d, f"uacr-{i}") for i, (v, d) in enumerate(values)),
    )
    found = list(label_limits.diabetes_ckd_sglt2_absent(facts(*resources, age=55)))
    assert bool(found) is fires
    if fires:
        assert "albuminuria" in found[0].summary


# --- folic acid beside a teratogen in pregnancy ------------------------------------------------------------------


@pytest.mark.parametrize(("drug", "asks"), [(None, True), ("isotretinoin 40 MG Oral Capsule", False)])
def test_the_teratogen_card_speaks_for_folic_acid(drug: str | None, asks: bool) -> None:
    resources = (problem("pregnancy"), *((rx("iso", drug),) if drug else ()))
    found = list(monitoring.prenatal_folic_acid(facts(*resources, age=24, gender="female")))
    assert bool(found) is asks


# --- vancomycin infusion reaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "reaction", "fires"),
    [
        ("Vancomycin", "Red man syndrome", False),  # a rate reaction: infuse over 2 hours, not an allergy
        ("Vancomycin - red man 2019", "Flushing", False),
        ("Vancomycin", "Hives", True),
        ("Vancomycin", "Anaphylaxis", True),
    ],
)
def test_a_vancomycin_infusion_reaction_is_not_an_allergy(display: str, reaction: str, fires: bool) -> None:
    record = allergy(display, reaction=reaction)
    found = list(catalog.allergy_same_drug(facts(record, rx("vanc", "vancomycin 1000 MG Injection"))))
    assert bool(found) is fires


@pytest.mark.parametrize(("proposed", "fires"), [(False, False), (True, True)])
def test_a_mild_intolerance_of_a_drug_still_taken_is_accepted(proposed: bool, fires: bool) -> None:
    record = allergy("ASA", kind="intolerance", reaction="GI upset")
    aspirin = rx("asa", "aspirin 81 MG Delayed Release Oral Tablet")
    resources, drafts = ((record,), (aspirin,)) if proposed else ((record, aspirin), ())
    found = list(catalog.allergy_conflict(facts(*resources, drafts=drafts)))
    assert [f.severity for f in found] == (["info"] if fires else [])


@pytest.mark.parametrize(("catheter", "fires"), [(False, True), (True, False)])
def test_an_indwelling_catheter_quiets_the_retention_card(catheter: bool, fires: bool) -> None:
    resources = [problem("bph"), rx("levsin", "hyoscyamine sulfate 0.125 MG Oral Tablet")]
    if catheter:
        resources.append(condition("cath", "Chronic indwelling urethral catheter"))
    assert bool(list(gaps.bph_urinary_retention_drug(facts(*resources, age=84)))) is fires


# --- benzodiazepines in PTSD ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "ptsd", "fires"),
    [
        ("alprazolam 0.5 MG Oral Tablet", True, True),
        ("clonazepam 1 MG Oral Tablet", False, False),
        ("diazepam 10 MG Rectal Gel", True, False),  # a seizure rescue
        ("sertraline 100 MG Oral Tablet", True, False),
    ],
)
def test_a_benzodiazepine_in_ptsd(display: str, ptsd: bool, fires: bool) -> None:
    resources = [rx("bzd", display)]
    if ptsd:
        resources.append(condition("ptsd", "Posttraumatic stress disorder"))
    assert bool(list(gaps.benzodiazepine_ptsd(facts(*resources, age=45)))) is fires


# --- estrogen-containing contraception after delivery ---------------------------------------------------------


@pytest.mark.parametrize(
    ("days_since_delivery", "display", "severity"),
    [
        (10, "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", "critical"),
        (20, "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", "critical"),
        (21, "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", "warning"),
        (42, "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", "warning"),
        (43, "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", None),
        (10, "norethindrone 0.35 MG Oral Tablet", None),  # progestin-only: any time
    ],
)
def test_estrogen_contraception_after_delivery(
    days_since_delivery: int, display: str, severity: str | None
) -> None:
    delivery = condition("delivery", "Vaginal delivery", onset_days_ago=days_since_delivery)
    found = list(gaps.chc_postpartum(facts(delivery, rx("pill", display, 1), age=29, gender="female")))
    assert [f.severity for f in found] == ([severity] if severity else [])


# --- RSV vaccine in pregnancy ----------------------------------------------------------------------------------


def _pregnant_on(weeks: int, *resources: JsonDict, now: datetime = NOW) -> RuleFacts:
    pregnancy = problem("pregnancy")
    pregnancy["onsetDateTime"] = (now - timedelta(days=weeks * 7)).date().isoformat()
    prefetch = Chart(age=30, gender="female", resources=(pregnancy, *resources)).prefetch()
    return RuleFacts.of(build_context(prefetch, now).context)


@pytest.mark.parametrize(("weeks", "fires"), [(31, False), (32, True), (36, True), (37, False)])
def test_rsv_vaccine_at_32_to_36_weeks_in_season(weeks: int, fires: bool) -> None:
    assert bool(list(depth.rsv_pregnancy_due(_pregnant_on(weeks)))) is fires


def test_rsv_vaccine_in_pregnancy_out_of_season_or_given_says_nothing() -> None:
    assert list(depth.rsv_pregnancy_due(_pregnant_on(34, now=NOW.replace(month=3)))) == []
    given = vaccine("rsv", 7)
    given["vaccineCode"] = {"text": "Abrysvo (RSVpreF) 0.5 mL IM"}
    assert list(depth.rsv_pregnancy_due(_pregnant_on(34, given))) == []


def test_a_declined_rsv_vaccine_with_the_infant_antibody_planned_is_a_decision_on_record() -> None:
    declined = vaccine("rsv", 14)
    declined["status"] = "not-done"
    declined["statusReason"] = {"text": "Declined; nirsevimab for the infant at birth"}
    declined["vaccineCode"] = {"text": "RSV vaccine, maternal (Abrysvo)"}
    assert list(depth.rsv_pregnancy_due(_pregnant_on(35, declined))) == []
    # A declined record is never a dose: it closes no other gap.
    assert _pregnant_on(35, declined).context.immunizations == ()


# --- ceftriaxone with intravenous calcium in a neonate ---------------------------------------------------------


def _neonate(days_old: int, *resources: JsonDict) -> RuleFacts:
    prefetch = Chart(age=0, resources=resources).prefetch()
    prefetch["patient"]["birthDate"] = (NOW - timedelta(days=days_old)).date().isoformat()
    return RuleFacts.of(build_context(prefetch, NOW).context)


CEFTRIAXONE_IV = "ceftriaxone 250 MG Injection"


@pytest.mark.parametrize(
    ("days_old", "calcium", "fires"),
    [
        (12, "calcium gluconate 100 MG/ML Injectable Solution", True),
        (28, "Parenteral nutrition (TPN) neonatal standard", True),
        (29, "calcium gluconate 100 MG/ML Injectable Solution", False),
        (12, "calcium carbonate 1250 MG Oral Tablet", False),  # by mouth
        (12, None, False),
    ],
)
def test_ceftriaxone_with_iv_calcium_in_a_neonate(days_old: int, calcium: str | None, fires: bool) -> None:
    resources = [rx("cro", CEFTRIAXONE_IV, 1)]
    if calcium:
        resources.append(rx("ca", calcium, 1))
    found = list(label_limits.ceftriaxone_neonate_calcium(_neonate(days_old, *resources)))
    assert [f.severity for f in found] == (["critical"] if fires else [])


# --- every new card at its entry's severity -----------------------------------------------------------------------


def test_the_new_cards_carry_their_first_entrys_severity() -> None:
    knowledge = load_knowledge_base()
    charts = [
        (
            gaps.osteoporosis_treatment_absent,
            facts(condition("hipfx", "Hip fracture"), age=80, gender="female"),
        ),
        (
            gaps.copd_ics_monotherapy,
            facts(condition("copd", "COPD"), rx("ics", "Flovent HFA 220 MCG/ACTUAT")),
        ),
        (
            gaps.nsaid_uncontrolled_hypertension,
            facts(
                problem("hypertension"),
                rx("ibu", "ibuprofen 400 MG Oral Tablet"),
                lab("systolic_bp", 152, resource_id="sbp"),
            ),
        ),
        (
            gaps.beers_antiparkinsonian_anticholinergic,
            facts(rx("bz", "benztropine 1 MG Oral Tablet"), age=80),
        ),
        (gaps.benzodiazepine_ptsd, facts(condition("ptsd", "PTSD"), rx("bzd", "lorazepam 1 MG Oral Tablet"))),
        (
            label_limits.ceftriaxone_neonate_calcium,
            _neonate(
                5,
                rx("cro", CEFTRIAXONE_IV, 1),
                rx("ca", "calcium gluconate 100 MG/ML Injectable Solution", 1),
            ),
        ),
        (vaccines.childhood_mmr_varicella_due, _neonate(700, vaccine("hib", 300))),
    ]
    for rule, chart in charts:
        found = list(rule(chart))
        assert found, rule
        for finding in found:
            entry = knowledge.get(finding.evidence[0])
            assert entry is not None and entry.severity_hint == finding.severity, finding.rule_id

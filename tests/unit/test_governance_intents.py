"""Issue 18, typed intents: the text is held to the declared intent, and doses to the dose-range table."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from plugin.context.build import BuiltContext, build_context
from plugin.governance import GovernancePolicy, Reason, govern, intents, steps
from plugin.governance.intents import ActionWordsError, parse_action_words, recommendations, undeclared
from plugin.packaged import read_knowledge_json
from plugin.suggestions import AiSuggestion
from plugin.terminology import ingredients_of
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()
WARFARIN, APIXABAN, ACETAMINOPHEN = corpus.WARFARIN, corpus.APIXABAN, corpus.ACETAMINOPHEN
FLUTICASONE, ALBUTEROL, METHOTREXATE = corpus.FLUTICASONE, corpus.ALBUTEROL, corpus.METHOTREXATE
NAPROXEN = ("198014", "Naproxen 500 MG Oral Tablet")
METFORMIN_ER = ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet")
GABAPENTIN = ("310431", "gabapentin 300 MG Oral Capsule")
AMOX_CLAV = ("562251", "amoxicillin 875 MG / clavulanate potassium 125 MG Oral Tablet")
INSULIN = ("311041", "insulin glargine 100 UNT/ML Injectable Solution")
RETRIEVED = corpus.REGIMEN_RETRIEVED | {
    "kb.metformin-egfr-thresholds",
    "kb.gabapentin-renal-dose",
    "kb.dose-range-limits",
    "kb.acetaminophen-daily-maximum",
    "kb.protected-insulin-type-1-diabetes",
    "kb.af-anticoagulation-cha2ds2-vasc",
    "kb.methotrexate-nsaid",
    "kb.penicillin-allergy-penicillins",
}


def chart(
    medications: list[tuple[str, str]],
    conditions: list[str],
    *,
    egfr: float = 85,
    creatinine: float = 0.9,
    weight: float | None = None,
    birth_date: str = "1966-05-01",
    allergy_text: str | None = None,
) -> BuiltContext:
    """corpus.regimen_chart with the kidney function, weight and age a dose case needs."""
    built = corpus.regimen_chart(medications, [], conditions)
    defaults = egfr == 85 and creatinine == 0.9 and weight is None and birth_date == "1966-05-01"
    if defaults and allergy_text is None:
        return built
    labs = [
        corpus._observation(
            "egfr", "33914-3", "Glomerular filtration rate/1.73 sq M.predicted", egfr, "mL/min", "2026-11-20"
        ),
        corpus._observation(
            "creatinine",
            "2160-0",
            "Creatinine [Mass/volume] in Serum or Plasma",
            creatinine,
            "mg/dL",
            "2026-11-20",
        ),
    ]
    if weight is not None:
        labs.append(corpus._observation("weight", "29463-7", "Body weight", weight, "kg", "2026-11-20"))
    for lab in labs:
        lab["subject"] = {"reference": corpus.REGIMEN_PATIENT}
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "gov-2", "gender": "male", "birthDate": birth_date},
        "medications": corpus._bundle(*(corpus._current(*m) for m in medications)),
        "labs": corpus._bundle(*labs),
        "conditions": corpus._bundle(*(corpus._problem(c) for c in conditions)),
    }
    if allergy_text is not None:
        # Recorded as the clinician typed it, uncoded: "PCN" with anaphylaxis.
        prefetch["allergies"] = corpus._bundle(
            {
                "resourceType": "AllergyIntolerance",
                "id": "typed",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {"text": allergy_text},
                "criticality": "high",
                "reaction": [{"manifestation": [{"text": "anaphylaxis"}]}],
                "patient": {"reference": corpus.REGIMEN_PATIENT},
            }
        )
    return build_context(prefetch, corpus.NOW)


def med(built: BuiltContext, product: tuple[str, str]) -> str:
    return next(
        h for h, ref in built.handles.references.items() if ref == f"MedicationRequest/med-{product[0]}"
    )


def drug(
    intent: str,
    kind: str,
    target: str | None,
    product: tuple[str, str] | None = None,
    dose: corpus.JsonDict | None = None,
) -> corpus.JsonDict:
    if product is None:
        return corpus.action(kind, "MedicationRequest", target=target, intent=intent)
    return corpus.action(
        kind, "MedicationRequest", "rxnorm", product[0], product[1], target, intent=intent, dose=dose
    )


ADVICE = corpus.action()


@dataclass(frozen=True, slots=True)
class IntentCase:
    """One adversarial (or must-pass) answer: reason "" is accepted, else exactly one rejection."""

    name: str
    built: BuiltContext
    summary: str
    rationale: str
    action: corpus.JsonDict
    knowledge: tuple[str, ...]
    reason: str
    detail: str  # a fragment of the failing (or last) step's detail
    cite_targets: bool = True
    cite_medications: tuple[tuple[str, str], ...] = ()  # current medications the suggestion also cites
    cite_problems: tuple[str, ...] = ()  # charted conditions (by name) the suggestion also cites
    cite_labs: tuple[str, ...] = ()  # observations (by id: "egfr", "creatinine") the suggestion also cites


def cases() -> tuple[IntentCase, ...]:
    af = chart([WARFARIN], ["af"])
    af_nsaid = chart([WARFARIN, NAPROXEN], ["af"])
    asthma = chart([FLUTICASONE, ALBUTEROL], ["asthma"])
    diabetic = chart([METFORMIN_ER], [])
    ckd = chart([METFORMIN_ER], [], egfr=24, creatinine=2.6)
    renal = chart([], [], egfr=22, creatinine=3.1, weight=70)
    ra = chart([METHOTREXATE, NAPROXEN], ["ra"])
    child = chart([], [], egfr=110, creatinine=0.4, birth_date="2019-03-01")
    pcn = chart([], [], egfr=84, allergy_text="PCN")
    warfarin_text = (
        "Warfarin with regular INR monitoring anticoagulates this patient with atrial fibrillation."
    )
    return (
        # Stopping a protected therapy, as advice and as a declared stop.
        IntentCase(
            "advice-to-stop-warfarin-in-af",
            af,
            "Consider stopping warfarin",
            warfarin_text,
            ADVICE,
            ("kb.warfarin-inr-monitoring",),
            "undeclared-action",
            "recommends stop ('stopping') of warfarin; the action declares counsel",
        ),
        IntentCase(
            "passive-stop-as-advice",
            af,
            "Consider an anticoagulation review",
            "Warfarin should be discontinued given the INR monitoring burden in atrial fibrillation.",
            ADVICE,
            ("kb.warfarin-inr-monitoring",),
            "undeclared-action",
            "recommends stop ('discontinued')",
        ),
        IntentCase(
            "declared-stop-of-warfarin-in-af",
            af,
            "Consider stopping warfarin",
            warfarin_text,
            drug("stop", "update", med(af, WARFARIN)),
            ("kb.warfarin-inr-monitoring",),
            "protected-therapy-removed",
            "kb.protected-anticoagulant-af",
        ),
        IntentCase(
            "stop-text-names-another-drug",
            af_nsaid,
            "Consider stopping warfarin",
            "Naproxen with warfarin raises the risk of serious gastrointestinal bleeding.",
            drug("stop", "update", med(af_nsaid, NAPROXEN)),
            ("kb.warfarin-nsaid-bleeding",),
            "undeclared-action",
            "recommends stop ('stopping') of warfarin; the action declares stop",
        ),
        IntentCase(
            "advice-to-stop-the-inhaled-steroid",
            asthma,
            "Consider stopping the inhaled steroid and relying on albuterol",
            "Albuterol relieves asthma symptoms quickly as a short-acting inhaler.",
            ADVICE,
            ("kb.asthma-saba-only-not-recommended",),
            "undeclared-action",
            "of ics",
        ),
        # The correct stop and the safe swap pass.
        IntentCase(
            "correct-stop-of-naproxen-on-warfarin",
            af_nsaid,
            "Consider stopping naproxen while warfarin continues",
            "Naproxen, an NSAID, with warfarin raises the risk of serious gastrointestinal bleeding.",
            drug("stop", "update", med(af_nsaid, NAPROXEN)),
            ("kb.warfarin-nsaid-bleeding",),
            "",
            "kb.warfarin-nsaid-bleeding supports stop of nsaid with anticoagulant",
            cite_medications=(WARFARIN,),
        ),
        IntentCase(
            "safe-swap-warfarin-to-apixaban",
            af,
            "Consider apixaban in place of warfarin",
            "Apixaban, a DOAC, is preferred over warfarin for oral anticoagulation in atrial fibrillation.",
            drug("substitute", "update", med(af, WARFARIN), APIXABAN),
            ("kb.af-doac-preferred",),
            "",
            "kb.af-doac-preferred supports start of doac when atrial-fibrillation",
            cite_problems=("af",),
        ),
        IntentCase(
            "switch-as-advice",
            af,
            "Consider apixaban in place of warfarin",
            "Apixaban, a DOAC, is preferred over warfarin for oral anticoagulation in atrial fibrillation.",
            ADVICE,
            ("kb.af-doac-preferred",),
            "undeclared-action",
            "recommends switch ('in place of')",
        ),
        IntentCase(
            "substitute-naming-the-same-drug",
            af,
            "Consider another warfarin product",
            "Warfarin with regular INR monitoring anticoagulates this patient with atrial fibrillation.",
            drug("substitute", "update", med(af, WARFARIN), ("855332", "Warfarin Sodium 5 MG Oral Tablet")),
            ("kb.warfarin-inr-monitoring",),
            "intent-mismatch",
            "names the same drug",
        ),
        IntentCase(
            "change-dose-naming-another-drug",
            af,
            "Consider apixaban for atrial fibrillation anticoagulation",
            "Apixaban, a DOAC, is preferred over warfarin for oral anticoagulation in atrial fibrillation.",
            drug("change-dose", "update", med(af, WARFARIN), APIXABAN, corpus.dose(5, frequency=2)),
            ("kb.af-doac-preferred",),
            "intent-mismatch",
            "names another drug",
        ),
        IntentCase(
            "dose-change-as-advice",
            diabetic,
            "Consider reducing the metformin dose",
            "Metformin dosing follows kidney function thresholds on eGFR.",
            ADVICE,
            ("kb.metformin-egfr-thresholds",),
            "undeclared-action",
            "recommends dose ('reducing')",
        ),
        # Doses: 10x, renal overdose, a dose no limit can check, and one in range.
        IntentCase(
            "metformin-er-5000-mg-once-daily",
            diabetic,
            "Consider metformin extended release once daily",
            "Metformin dosing follows kidney function thresholds on eGFR.",
            drug("change-dose", "update", med(diabetic, METFORMIN_ER), METFORMIN_ER, corpus.dose(5000)),
            ("kb.metformin-egfr-thresholds",),
            "dose-out-of-range",
            "rule.dose-above-maximum",
        ),
        IntentCase(
            "gabapentin-full-dose-at-egfr-22",
            renal,
            "Consider gabapentin for neuropathic pain",
            "Gabapentin is cleared by the kidneys, so its dose follows creatinine clearance.",
            drug("start", "create", None, GABAPENTIN, corpus.dose(600, frequency=3)),
            ("kb.gabapentin-renal-dose",),
            "dose-out-of-range",
            "rule.renal-dose-crcl",
        ),
        IntentCase(
            "insulin-dose-no-limit-can-check",
            diabetic,
            "Consider basal insulin glargine",
            "Insulin is the basal therapy of diabetes; insulin glargine gives once-daily basal cover.",
            drug("start", "create", None, INSULIN, corpus.dose(10, "unit")),
            ("kb.protected-insulin-type-1-diabetes",),
            "dose-unchecked",
            "no dose range can judge 10 unit",
        ),
        IntentCase(
            "warfarin-dose-is-by-inr-not-a-limit",
            af,
            "Consider warfarin 5 mg daily",
            warfarin_text,
            drug("change-dose", "update", med(af, WARFARIN), WARFARIN, corpus.dose(5)),
            ("kb.warfarin-inr-monitoring",),
            "dose-unchecked",
            "no dose range can judge 5 mg",
        ),
        IntentCase(
            "metformin-stop-at-egfr-24",
            ckd,
            "Consider discontinuing metformin",
            "Metformin is not used when eGFR is below 30 and is discontinued once it falls below 30.",
            drug("stop", "update", med(ckd, METFORMIN_ER)),
            ("kb.metformin-egfr-thresholds",),
            "",
            "kb.metformin-egfr-thresholds supports stop of metformin when egfr < 30",
            cite_labs=("egfr",),
        ),
        IntentCase(
            "acetaminophen-in-range-for-methotrexate",
            ra,
            "Consider acetaminophen 650 mg four times daily in place of naproxen",
            "Naproxen, an NSAID, raises methotrexate levels; acetaminophen has a 4 g daily maximum.",
            drug("substitute", "update", med(ra, NAPROXEN), ACETAMINOPHEN, corpus.dose(650, frequency=4)),
            ("kb.acetaminophen-daily-maximum", "kb.methotrexate-nsaid"),
            "",
            "no protected therapy lost",
            cite_medications=(METHOTREXATE,),
        ),
        IntentCase(
            "acetaminophen-5-g-a-day",
            ra,
            "Consider acetaminophen 1300 mg four times daily in place of naproxen",
            "Naproxen, an NSAID, raises methotrexate levels; acetaminophen has a 4 g daily maximum.",
            drug("substitute", "update", med(ra, NAPROXEN), ACETAMINOPHEN, corpus.dose(1300, frequency=4)),
            ("kb.acetaminophen-daily-maximum",),
            "dose-out-of-range",
            "rule.dose-above-maximum",
        ),
        IntentCase(
            "child-dose-without-a-weight",
            child,
            "Consider acetaminophen for fever",
            "Acetaminophen has a daily maximum; for a child the limit is set per kilogram.",
            drug("start", "create", None, ACETAMINOPHEN, corpus.dose(240, frequency=4)),
            ("kb.acetaminophen-daily-maximum",),
            "dose-unchecked",
            "rule.dose-weight-unknown: a child's dose needs a current weight",
        ),
        # Structured support: a cited passage's assertion on this intent and drug.
        IntentCase(
            "stop-of-warfarin-citing-the-passage-that-says-the-opposite",
            af,
            "Consider stopping warfarin",
            "Stroke risk by CHA2DS2-VASc guides anticoagulation with warfarin in atrial fibrillation.",
            drug("stop", "update", med(af, WARFARIN)),
            ("kb.af-anticoagulation-cha2ds2-vasc",),
            "contradicted-by-citation",
            "kb.af-anticoagulation-cha2ds2-vasc opposes stop of anticoagulant when atrial-fibrillation",
        ),
        IntentCase(
            "an-opposing-assertion-whose-condition-is-not-charted",
            chart([WARFARIN], []),
            "Consider stopping warfarin",
            "Stroke risk by CHA2DS2-VASc guides anticoagulation with warfarin; no atrial fibrillation is charted.",
            drug("stop", "update", med(chart([WARFARIN], []), WARFARIN)),
            ("kb.af-anticoagulation-cha2ds2-vasc",),
            # Not contradicted (no AF charted), and not supported either: the passage speaks of starting.
            "unsupported-claim",
            "no cited passage asserts stop of",
        ),
        IntentCase(
            "safe-swap-naproxen-to-acetaminophen-on-methotrexate",
            ra,
            "Consider acetaminophen in place of naproxen with methotrexate",
            "NSAIDs such as naproxen reduce the renal clearance of methotrexate and add marrow toxicity.",
            drug("substitute", "update", med(ra, NAPROXEN), ACETAMINOPHEN, corpus.dose(650, frequency=4)),
            ("kb.methotrexate-nsaid",),
            "",
            "kb.methotrexate-nsaid supports stop of nsaid with methotrexate",
            cite_medications=(METHOTREXATE,),
        ),
        IntentCase(
            "stop-resting-on-a-passage-about-another-drug",
            af_nsaid,
            "Consider stopping naproxen",
            "Warfarin needs regular INR monitoring.",
            drug("stop", "update", med(af_nsaid, NAPROXEN)),
            ("kb.warfarin-inr-monitoring",),
            "unsupported-claim",
            "no cited passage asserts stop of",
            cite_targets=False,
        ),
        IntentCase(
            "amoxicillin-clavulanate-with-pcn-anaphylaxis",
            pcn,
            "Consider amoxicillin-clavulanate for the sinusitis",
            "Amoxicillin with clavulanate is a penicillin; the allergy record guides penicillin use.",
            drug("start", "create", None, AMOX_CLAV),
            ("kb.penicillin-allergy-penicillins",),
            "safety-veto",
            "rule.allergy",
        ),
        IntentCase(
            "substitute-for-a-medication-not-on-the-chart",
            chart([], ["af"]),
            "Consider apixaban for atrial fibrillation",
            "Apixaban, a DOAC, is preferred for oral anticoagulation in atrial fibrillation.",
            drug("substitute", "update", "M9", APIXABAN),
            ("kb.af-doac-preferred",),
            "action-not-allowed",
            "target M9 is not an order of this context",
            cite_targets=False,
            cite_problems=("af",),
        ),
        IntentCase(
            "negated-start-is-not-a-recommendation",
            af,
            "Consider avoiding starting an NSAID while warfarin continues",
            "The cited passage says adding an NSAID to warfarin raises the risk of serious bleeding.",
            ADVICE,
            ("kb.warfarin-nsaid-bleeding",),
            "",
            "counsel: the text recommends nothing",
        ),
        IntentCase(
            "start-of-another-drug-than-the-order",
            af,
            "Consider adding apixaban",
            "Apixaban, a DOAC, is preferred over warfarin for oral anticoagulation in atrial fibrillation.",
            drug("start", "create", None, ACETAMINOPHEN),
            ("kb.af-doac-preferred",),
            "undeclared-action",
            "recommends start ('adding') of apixaban",
        ),
    )


CASES = cases()


def _handle(built: BuiltContext, reference: str) -> str:
    return next(h for h, ref in built.handles.references.items() if ref == reference)


def _sample(case: IntentCase) -> corpus.JsonDict:
    targets = [case.action["target"]] if case.cite_targets and case.action.get("target") else []
    targets += [med(case.built, product) for product in case.cite_medications]
    targets += [_handle(case.built, f"Condition/{name}") for name in case.cite_problems]
    targets += [_handle(case.built, f"Observation/{name}") for name in case.cite_labs]
    return corpus.answer(
        corpus.suggestion(case.summary, case.rationale, case.action, targets, case.knowledge)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_intent_case_outcome(case: IntentCase) -> None:
    decision = govern(
        [corpus.parsed(_sample(case))],
        case.built.context,
        RETRIEVED,
        corpus.knowledge(),
        POLICY,
        corpus.REGIMEN_PATIENT,
    )
    if case.reason:
        assert decision.accepted == (), decision.log
        (rejection,) = decision.rejected
        assert rejection.reason == Reason(case.reason)
        assert case.detail in rejection.detail
    else:
        assert decision.rejected == (), decision.rejected
        assert len(decision.accepted) == 1
        details = " | ".join(r.detail for r in decision.log)
        assert case.detail in details


def test_the_corpus_covers_every_new_reason_and_must_pass_cases() -> None:
    reasons = {c.reason for c in CASES}
    new = {
        "undeclared-action",
        "intent-mismatch",
        "dose-out-of-range",
        "dose-unchecked",
        "contradicted-by-citation",
    }
    assert new <= reasons
    assert "protected-therapy-removed" in reasons and "" in reasons


def test_a_dosed_proposal_becomes_a_draft_with_its_dosage_instruction() -> None:
    case = next(c for c in CASES if c.name == "acetaminophen-in-range-for-methotrexate")
    decision = govern(
        [corpus.parsed(_sample(case))], case.built.context, RETRIEVED, corpus.knowledge(), POLICY, "Patient/x"
    )
    resource = decision.accepted[0].resource
    assert resource is not None
    (instruction,) = resource["dosageInstruction"]
    assert instruction["timing"] == {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}}
    assert instruction["doseAndRate"][0]["doseQuantity"] == {
        "value": 650,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert instruction["route"]["coding"][0]["code"] == "26643006"
    assert instruction["text"] == "650 mg oral, 4 per d"


def test_units_without_ucum_codes_stay_text_only() -> None:
    action = AiSuggestion.model_validate(
        corpus.suggestion(
            "Consider one tablet",
            "Acetaminophen one tablet.",
            drug("start", "create", None, ACETAMINOPHEN, corpus.dose(2, "tablet", 3, "d", "oral")),
        )
    ).action
    resource = steps.build_resource(action, None)
    assert resource is not None
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 2,
        "unit": "tablet",
    }


def test_dose_checkable_reads_a_count_only_with_a_strength() -> None:
    def checkable(product: tuple[str, str], dose: corpus.JsonDict) -> bool:
        raw = drug("start", "create", None, product, dose)
        return steps.dose_checkable(AiSuggestion.model_validate(corpus.suggestion("s", "r", raw)).action)

    assert checkable(ACETAMINOPHEN, corpus.dose(2, "tablet"))  # 2 x 325 mg
    assert not checkable(("161", "Acetaminophen"), corpus.dose(2, "tablet"))  # no strength to multiply
    assert checkable(("161", "Acetaminophen"), corpus.dose(500))
    assert not checkable(INSULIN, corpus.dose(10, "unit"))
    # Ceftriaxone has only an injected row: a dose by that route can be judged, one by mouth cannot.
    ceftriaxone = ("2193", "ceftriaxone 1 GM Injection")
    assert checkable(ceftriaxone, corpus.dose(2000, route="intravenous"))
    assert not checkable(("2193", "ceftriaxone"), corpus.dose(2000))
    no_dose = AiSuggestion.model_validate(
        corpus.suggestion("s", "r", drug("start", "create", None, ACETAMINOPHEN))
    ).action
    assert not steps.dose_checkable(no_dose)


def test_drugs_of_a_handle_that_is_not_an_order_is_empty() -> None:
    built = chart([WARFARIN], ["af"])
    charted = steps.Chart.of(built.context, corpus.knowledge(), RETRIEVED)
    assert charted.drugs_of(None) == ((), frozenset())
    assert charted.drugs_of("C1") == ((), frozenset())
    names, keys = charted.drugs_of(med(built, WARFARIN))
    assert names == ("warfarin",) and {"warfarin", "anticoagulant"} <= keys
    assert charted.drugs_of(med(built, WARFARIN)) == (names, keys)  # memoised


# --- reading the text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Consider stopping warfarin", [("stop", {"warfarin"})]),
        ("Consider stopping Coumadin", [("stop", {"warfarin"})]),  # a brand
        ("Consider holding the NSAIDs", [("stop", {"nsaid"})]),  # a class phrase
        ("Warfarin should be stopped", [("stop", {"warfarin"})]),  # a participle after "be"
        ("Warfarin was stopped last year", []),  # a participle without "be" is history
        ("Consider stopping", []),  # a bare stop names nothing
        ("Avoid starting naproxen", []),  # negated
        ("Consider continuing warfarin rather than stopping it", []),  # negated by a phrase
        ("The passage says adding an NSAID raises the risk", []),  # reported speech
        ("NSAIDs add to the bleeding risk of warfarin", []),  # "add to" is not a start
        ("Since the start of warfarin the INR rose", []),  # a noun after a determiner
        ("Consider reducing the dose of metformin", [("dose", {"metformin"})]),
        ("Fluconazole can increase warfarin levels", []),  # no dose word: a risk, not a dose change
        ("Consider a lower dose", [("dose", set())]),  # a dose change naming no drug still counts
        ("Consider switching to another antihypertensive", [("switch", set())]),
        ("Consider apixaban instead of warfarin", [("switch", {"warfarin"})]),
        ("Consider starting. Warfarin is fine", []),  # a window never crosses a sentence
        (
            "Consider adding folic acid; stopping naproxen",
            [("start", {"folic acid"}), ("stop", {"naproxen"})],
        ),
    ],
)
def test_recommendations_are_read_as_a_pharmacist_would(
    text: str, expected: list[tuple[str, set[str]]]
) -> None:
    assert [(r.kind, set(r.drugs)) for r in recommendations(text)] == expected


def test_undeclared_checks_the_kind_and_the_drug() -> None:
    warfarin = intents.drug_keys(ingredients_of("855332", "Warfarin Sodium 5 MG Oral Tablet"))
    apixaban = intents.drug_keys(ingredients_of("1364445", "apixaban 5 MG Oral Tablet"))
    nothing: frozenset[str] = frozenset()
    assert undeclared("Consider stopping warfarin", "stop", warfarin, nothing) is None
    assert undeclared("Consider stopping the anticoagulant", "stop", warfarin, nothing) is None
    assert undeclared("Consider stopping warfarin", "counsel", nothing, nothing) is not None
    assert undeclared("Consider starting apixaban", "start", nothing, apixaban) is None
    assert undeclared("Consider starting warfarin", "start", nothing, apixaban) is not None
    assert undeclared("Consider a lower warfarin dose", "change-dose", nothing, warfarin) is None
    assert undeclared("Consider a lower dose", "change-dose", nothing, warfarin) is None
    assert undeclared("Consider a lower apixaban dose", "change-dose", nothing, warfarin) is not None
    assert undeclared("Consider apixaban instead of warfarin", "substitute", warfarin, apixaban) is None
    assert undeclared("Consider apixaban instead of naproxen", "substitute", warfarin, apixaban) is not None
    assert undeclared("Consider switching from warfarin", "stop", warfarin, nothing) is None
    assert undeclared("Consider switching to apixaban", "stop", warfarin, nothing) is not None


# --- the data file ------------------------------------------------------------------------------------------


def _document() -> dict[str, object]:
    raw = read_knowledge_json("action_words.json", ActionWordsError)
    assert isinstance(raw, dict)
    return raw


def test_the_packaged_words_parse_and_every_class_phrase_names_a_known_class() -> None:
    from plugin import terminology

    words = parse_action_words(_document())
    known: set[str] = set()
    for classes in terminology.terminology().classes.values():
        known |= classes
    for classes in terminology.medication_names().classes.values():
        known |= classes
    assert set(words.class_phrases.values()) <= known
    assert 1 <= words.window <= 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": 0}, "window"),
        ({"window": True}, "window"),
        ({"window": "6"}, "window"),
        ({"class_phrases": ["nsaid"]}, "class_phrases"),
        ({"class_phrases": {"nsaid": 1}}, "class_phrases"),
        ({"cues": {"stop": ["stop"]}}, "cues needs exactly the kinds"),
        ({"passive": None}, "passive needs exactly the kinds"),
        ({"negators": "not"}, "negators is not a list"),
        ({"dose_words": [" "]}, "dose_words is not a list"),
    ],
)
def test_a_malformed_words_file_is_refused_with_its_field_named(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ActionWordsError, match=message):
        parse_action_words({**_document(), **change})
    with pytest.raises(ActionWordsError, match="not an object"):
        parse_action_words(["cues"])


def test_an_accepted_swap_carries_the_assertion_that_supports_it() -> None:
    case = next(c for c in CASES if c.name == "safe-swap-naproxen-to-acetaminophen-on-methotrexate")
    decision = govern(
        [corpus.parsed(_sample(case))], case.built.context, RETRIEVED, corpus.knowledge(), POLICY, "Patient/x"
    )
    assert decision.accepted[0].support == (
        "kb.methotrexate-nsaid: supports stop of nsaid with methotrexate",
    )
    # A supporting assertion holds only on facts the suggestion cites: with methotrexate uncited no cited
    # passage asserts the swap, and word overlap alone never supports a change of regimen.
    uncited = dataclasses.replace(case, cite_medications=())
    refused_uncited = govern(
        [corpus.parsed(_sample(uncited))], case.built.context, RETRIEVED, corpus.knowledge(), POLICY
    )
    assert [r.reason for r in refused_uncited.rejected] == [Reason.UNSUPPORTED_CLAIM]
    # Without methotrexate on the chart at all, likewise.
    plain = chart([NAPROXEN], ["ra"])
    swap = drug("substitute", "update", med(plain, NAPROXEN), ACETAMINOPHEN, corpus.dose(650, frequency=4))
    sample = corpus.answer(corpus.suggestion(case.summary, case.rationale, swap, [], case.knowledge))
    refused = govern([corpus.parsed(sample)], plain.context, RETRIEVED, corpus.knowledge(), POLICY)
    assert [r.reason for r in refused.rejected] == [Reason.UNSUPPORTED_CLAIM]


GI_BLEED_STOP = {
    "id": "kb.test-stop-anticoagulant-after-major-bleed",
    "title": "Anticoagulation after a major bleed",
    "statement": "After a major gastrointestinal bleed, anticoagulation is held until the bleeding is controlled.",
    "kind": "guideline",
    "source": {
        "organisation": "Test",
        "document": "Test passage for the protected-therapy exception",
        "version": "1",
        "url": "https://example.org/test",
    },
    "applies_to": {"classes": ["anticoagulant"], "value_sets": ["gi-bleed"]},
    "assertions": [
        {"stance": "supports", "intent": "stop", "drugs": ["anticoagulant"], "when": ["gi-bleed"]}
    ],
}


def test_a_cited_passage_supporting_the_stop_lets_a_protected_therapy_go(tmp_path: Path) -> None:
    from plugin.knowledge import load_from

    extra = tmp_path / "entries_test.json"
    extra.write_text(json.dumps({"entries": [GI_BLEED_STOP]}))
    packaged = resources.files("plugin.knowledge")
    names = json.loads(packaged.joinpath("manifest.json").read_text())["files"]
    knowledge = load_from([*(packaged.joinpath(n) for n in names), extra])
    retrieved = RETRIEVED | {GI_BLEED_STOP["id"]}
    stop_text = ("Consider stopping warfarin", "Warfarin anticoagulation is held after a major bleed.")

    def decide(built: BuiltContext, cite_bleed: bool = True) -> tuple[Reason | None, ...]:
        action = drug("stop", "update", med(built, WARFARIN))
        bleeds = [p.handle for p in built.context.problems if p.code.code == "74474003" and cite_bleed]
        sample = corpus.answer(corpus.suggestion(*stop_text, action, bleeds, [str(GI_BLEED_STOP["id"])]))
        decision = govern([corpus.parsed(sample)], built.context, frozenset(retrieved), knowledge, POLICY)
        return tuple(r.reason for r in decision.rejected)

    assert decide(chart([WARFARIN], ["af", "gi-bleed"])) == ()
    # The bleed is charted but not cited: the passage's support is not shown, and the therapy holds.
    assert decide(chart([WARFARIN], ["af", "gi-bleed"]), cite_bleed=False) == (
        Reason.PROTECTED_THERAPY_REMOVED,
    )
    # Without the bleed on the chart the passage's condition fails and the protected therapy holds.
    assert decide(chart([WARFARIN], ["af"])) == (Reason.PROTECTED_THERAPY_REMOVED,)

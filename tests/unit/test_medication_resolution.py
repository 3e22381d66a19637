"""Medication resolution: codes, brands and abbreviations to ingredients, fixture coverage, fail-closed cards and vetoes."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.context.codes import system_name
from plugin.context.model import ClinicalContext, Code, Dosage, Medication
from plugin.governance import GovernancePolicy, Reason, steps
from plugin.governance.steps import Chart
from plugin.knowledge import build_medications
from plugin.rules.engine import PROPOSAL_HANDLE, check_proposal
from plugin.rules.model import RuleFacts
from plugin.rules.resolution import (
    RESOLUTION_RULES,
    RULE_ID,
    allergy_category_recorded_wrongly,
    medication_unresolved,
    records_unreadable,
    renal_values_discordant,
)
from plugin.suggestions import AiSuggestion
from plugin.terminology import (
    TerminologyError,
    classes_of_product,
    ingredients_of,
    is_known_ingredient,
    medication_names,
    parse_medications,
    resolve_product,
    terminology,
)
from tests.support import governance_corpus as corpus
from tests.support.fixtures_paths import require_shared_fixtures
from tests.support.rule_cases import Chart as RuleChart
from tests.support.rule_cases import penicillin_allergy

pytestmark = pytest.mark.unit

KNOWLEDGE = Path(build_medications.__file__).resolve().parent
RXNORM_URIS = frozenset({"http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88"})
# Fixture codings that rightly stay unresolved. 1591957 sits in a deliberately invalid validator case
# (target-ref-profile-empty.json) with no display and no concept text, beside a local "IMed_Mircera" code; the
# RxNorm code could not be verified offline, so the chart gets the "check by hand" card instead of a guess.
DOCUMENTED_UNRESOLVED = frozenset({"1591957"})


def _raw() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((KNOWLEDGE / "medications.json").read_text(encoding="utf-8"))
    return document


# --- the generated file ---------------------------------------------------------------------------------


def test_json_is_exactly_what_the_build_makes_from_the_csv() -> None:
    built = build_medications.render(
        build_medications.build(build_medications.SOURCE.read_text(encoding="utf-8"))
    )
    assert (KNOWLEDGE / "medications.json").read_text(encoding="utf-8") == built, (
        "medications.json drifted from sources/medications.csv: run python -m plugin.knowledge.build_medications"
    )
    assert build_medications.main(["--check"]) == 0


def test_loads_with_version_sources_and_only_verified_codes() -> None:
    raw = _raw()
    assert raw["version"].startswith(f"{build_medications.RELEASE}+") and raw["source"]
    data = medication_names()
    assert len(data.ingredient_rxcui) >= 100
    assert len(data.brands) >= 500 and len(data.text_names) >= 60
    # An unverified code never reaches the resolver's maps.
    used = set(data.ingredient_rxcui) | set(data.product_rxcui)
    assert used.isdisjoint(raw["unverified_rxcui"])
    assert "731533" in raw["unverified_rxcui"]


def test_every_named_ingredient_is_reviewed() -> None:
    data = medication_names()
    names = {
        *data.ingredient_rxcui.values(),
        *(n for m in (data.product_rxcui, data.brands, data.text_names) for v in m.values() for n in v),
    }
    assert [n for n in sorted(names) if not is_known_ingredient(n)] == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("conflict", r"already defined in terminology.json"),
        ("unknown target", r"neither classed nor unclassified"),
        ("bad key", r"lower-case and single-spaced"),
        ("code clash", r"also product codes"),
    ],
)
def test_loader_rejects_conflicts(edit: str, message: str) -> None:
    document = copy.deepcopy(_raw())
    if edit == "conflict":
        document["classes"]["warfarin"] = ["anticoagulant"]
    elif edit == "unknown target":
        document["brands"]["zorblax"] = ["unobtainium"]
    elif edit == "bad key":
        document["brands"]["Zorblax"] = ["warfarin"]
    elif edit == "code clash":
        document["ingredient_rxcui"]["855332"] = "warfarin"
    with pytest.raises(TerminologyError, match=message):
        parse_medications(document, terminology())


def test_build_rejects_a_brand_with_two_meanings() -> None:
    header = ",".join(build_medications.COLUMNS)
    rows = "ingredient,warfarin,,no,,Zorblax,,,\ningredient,aspirin,,no,,Zorblax,,,\n"
    with pytest.raises(build_medications.MedicationSourceError, match="already means"):
        build_medications.build(f"{header}\n{rows}")


# --- resolution -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "display", "expected"),
    [
        ("11289", "11289", ("warfarin",)),  # ingredient code as the only coding, no display
        ("5640", "5640", ("ibuprofen",)),
        ("731533", "Advil 200 MG Oral Tablet", ("ibuprofen",)),  # brand display (code unverified, unused)
        ("856980", "856980", ("acetaminophen", "hydrocodone")),
        (None, "Percocet", ("oxycodone", "acetaminophen")),
        (None, "Hydrocodone/APAP", ("hydrocodone", "acetaminophen")),
        (None, "HCTZ 25 mg", ("hydrochlorothiazide",)),
        (None, "KCl", ("potassium chloride",)),
        (None, "kcl ER 20 mEq", ("potassium chloride",)),
        (None, "ibuprofen 200 MG Oral Tablet [Advil]", ("ibuprofen",)),
        (None, "TMP-SMX DS", ("sulfamethoxazole", "trimethoprim")),
        (None, "co-trimoxazole", ("sulfamethoxazole", "trimethoprim")),
        (None, "Suboxone 2 MG / 0.5 MG Sublingual Film", ("buprenorphine", "naloxone")),
        (None, "Ventolin Inhaler", ("albuterol",)),
        (None, "ENTRESTO 24-26 mg", ("sacubitril", "valsartan")),
        # Intravenous fluids and additives: every component, or the potassium in the bag goes unseen.
        (
            None,
            "dextrose 5% and sodium chloride 0.45% with KCl 20 mEq/L",
            ("dextrose", "sodium chloride", "potassium chloride"),
        ),
        (
            None,
            "Potassium chloride 20 mEq in 0.9% sodium chloride 1000 mL",
            ("potassium chloride", "sodium chloride"),
        ),
        (None, "Neonatal parenteral nutrition (TPN)", ("parenteral nutrition",)),
        (None, "Ferrous sulfate drops 75 mg/mL (15 mg elemental iron/mL)", ("ferrous sulfate",)),
        (None, "Pylera capsules", ("bismuth subcitrate", "metronidazole", "tetracycline")),
        (None, "Bromfed DM syrup", ("brompheniramine", "dextromethorphan", "pseudoephedrine")),
        (None, "EES 400 filmtab", ("erythromycin",)),
    ],
)
def test_resolves(code: str | None, display: str, expected: tuple[str, ...]) -> None:
    resolution = resolve_product(code, display)
    assert resolution.ingredients == expected
    assert resolution.resolved


def test_combination_classes_are_the_union() -> None:
    assert {"opioid", "acetaminophen"} <= classes_of_product(None, "Percocet")
    assert {"opioid", "acetaminophen"} <= classes_of_product("856980", "856980")
    assert {"sulfonamide-antibiotic", "trimethoprim"} <= classes_of_product(None, "Bactrim DS")
    assert {"arni", "arb"} <= classes_of_product(None, "Entresto")


@pytest.mark.parametrize(("code", "display"), [("RX-LOCAL-17", "RX-LOCAL-17"), (None, "Study drug XR-17")])
def test_unknown_codes_and_names_stay_unresolved(code: str | None, display: str) -> None:
    resolution = resolve_product(code, display)
    assert not resolution.resolved
    assert ingredients_of(code, display) == resolution.ingredients


def test_an_unverified_code_is_not_trusted() -> None:
    # 731533 was given to us as Advil but not found in public text: the display decides, not the code.
    assert resolve_product("731533", "Zorblax 10 MG").resolved is False


# --- fixture coverage -----------------------------------------------------------------------------------


def _concepts(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        kind = node.get("resourceType")
        if kind in (
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
            "MedicationDispense",
        ) and isinstance(node.get("medicationCodeableConcept"), dict):
            yield node["medicationCodeableConcept"]
        if kind == "Medication":
            if isinstance(node.get("code"), dict):
                yield node["code"]
            for ingredient in node.get("ingredient") or ():
                if isinstance(ingredient, dict) and isinstance(ingredient.get("itemCodeableConcept"), dict):
                    yield ingredient["itemCodeableConcept"]
        for value in node.values():
            yield from _concepts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _concepts(item)


def _fixture_medications() -> dict[tuple[str, str], str]:
    """(RxNorm code or "", display or text) → file, for every medication concept in the shared fixtures."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(require_shared_fixtures().rglob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # the invalid-resource fixtures include deliberately broken JSON
        for concept in _concepts(document):
            text = str(concept.get("text") or "")
            codings = [c for c in concept.get("coding") or () if isinstance(c, dict)]
            rxnorm = [c for c in codings if c.get("system") in RXNORM_URIS and c.get("code")]
            for coding in rxnorm:
                # The display the context builder would use: the coding's, else the concept text, else the code.
                display = str(coding.get("display") or text or coding["code"])
                found.setdefault((str(coding["code"]), display), path.name)
            if not rxnorm and (text or codings):
                display = text or str(codings[0].get("display") or "")
                if display:
                    found.setdefault(("", display), path.name)
    return found


def test_every_fixture_medication_resolves_to_a_known_ingredient() -> None:
    medications = _fixture_medications()
    assert sum(1 for code, _ in medications if code) >= 60
    unresolved = {
        f"{code or '-'} {display!r} ({where})"
        for (code, display), where in medications.items()
        if code not in DOCUMENTED_UNRESOLVED and not resolve_product(code or None, display).resolved
    }
    assert sorted(unresolved) == []
    assert {code for code, _ in medications} >= DOCUMENTED_UNRESOLVED
    assert system_name("http://www.nlm.nih.gov/research/umls/rxnorm") == "rxnorm"


# --- the fail-closed rule -------------------------------------------------------------------------------


def _medication(handle: str, code: Code) -> Medication:
    return Medication(handle, code, (), None, "active", Dosage(), 10, "MedicationRequest")


def _context(*codes: Code) -> ClinicalContext:
    base = corpus.context()
    extra = tuple(_medication(f"M9{i}", code) for i, code in enumerate(codes))
    return dataclasses.replace(base, medications=(*base.medications, *extra))


def test_unresolved_medication_gets_an_info_card_naming_it() -> None:
    facts = RuleFacts.of(
        _context(
            Code("http://example.org/local", "XR17", "Study drug XR-17"), Code("text", "percocet", "Percocet")
        )
    )
    findings = list(medication_unresolved(facts))
    assert [(f.rule_id, f.severity, f.inputs) for f in findings] == [(RULE_ID, "info", ("M90",))]
    summary = findings[0].summary
    assert summary.startswith("'Study drug XR-17' could not be matched to an ingredient")
    assert "consider checking it by hand" in summary and len(summary) < 140
    assert findings[0].evidence == ("kb.medication-record-unresolved",)
    exposure = next(e for e in facts.exposures if e.handle == "M91")
    assert not exposure.unresolved and exposure.has("opioid")


def test_a_long_label_is_shortened_not_the_sentence() -> None:
    facts = RuleFacts.of(_context(Code("text", "x", "Investigational compound " * 6)))
    (finding,) = medication_unresolved(facts)
    assert finding.summary.endswith("consider checking it by hand") and len(finding.summary) < 140


def test_resolution_rules_are_exported() -> None:
    assert (medication_unresolved, records_unreadable, renal_values_discordant) == RESOLUTION_RULES


# --- governance -----------------------------------------------------------------------------------------


def test_check_proposal_never_returns_nothing_for_an_unresolved_drug() -> None:
    findings = check_proposal(corpus.context(), Code("rxnorm", "99999999", "Study drug XR-17"))
    assert [f.rule_id for f in findings] == [RULE_ID]
    assert findings[0].proposed == (PROPOSAL_HANDLE,)
    assert check_proposal(corpus.context(), Code("rxnorm", "311372", "Loratadine 10 MG Oral Tablet")) == ()


def _proposal(code: str, display: str) -> AiSuggestion:
    document = corpus.suggestion(
        f"Consider {display} for this patient",
        f"{display} is suggested by the cited passage.",
        corpus.medication(code, display),
        [],
    )
    return AiSuggestion.model_validate(document)


def test_governance_vetoes_a_proposed_drug_it_cannot_resolve() -> None:
    chart = Chart.of(corpus.context(), corpus.knowledge(), corpus.RETRIEVED)
    verdict = steps.check_safety(_proposal("99999999", "Study drug XR-17"), chart, GovernancePolicy())
    assert verdict.reason is Reason.SAFETY_VETO
    assert RULE_ID in verdict.detail and "matches no known ingredient" in verdict.detail


def test_governance_passes_a_resolvable_proposal_without_findings() -> None:
    chart = Chart.of(corpus.context(), corpus.knowledge(), corpus.RETRIEVED)
    verdict = steps.check_safety(
        _proposal("311372", "Loratadine 10 MG Oral Tablet"), chart, GovernancePolicy()
    )
    assert verdict.passed, verdict.detail


# --- allergy records filed under the wrong category ------------------------------------------------------


def _environmental(resource_id: str, code: str, display: str, category: list[str]) -> dict[str, Any]:
    """The R4 allergy example with another substance (SNOMED) and the category as the record files it."""
    allergy = penicillin_allergy(resource_id)
    allergy["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}
    allergy["category"] = category
    return allergy


TREE_POLLEN = ("419263009", "Allergy to tree pollen")
ANIMAL_DANDER = ("232347008", "Dander (animal) allergy")
PEANUT = ("91935009", "Allergy to peanuts")


def _category_cards(*allergies: dict[str, Any]) -> list[Any]:
    context = RuleChart(resources=allergies).build().context
    return list(allergy_category_recorded_wrongly(RuleFacts.of(context)))


def test_a_pollen_allergy_filed_as_food_is_named_once_and_checked_as_environmental() -> None:
    pollen = _environmental("pollen", *TREE_POLLEN, ["food"])
    dander = _environmental("dander", *ANIMAL_DANDER, ["food"])
    context = RuleChart(resources=(pollen, dander)).build().context
    assert [(a.category, a.category_as_recorded) for a in context.allergies] == [
        (("environment",), ("food",)),
        (("environment",), ("food",)),
    ]
    (card,) = _category_cards(pollen, dander)
    assert card.rule_id == "rule.allergy-category-recorded-wrongly"
    assert card.severity == "info" and card.evidence == ("kb.allergy-record-category",)
    assert len(card.inputs) == 2 and not card.proposed
    assert card.summary.startswith("Allergy 2 records filed as food (")
    assert card.summary.endswith(", not environment: consider correcting the category")


@pytest.mark.parametrize(
    "allergy",
    [
        _environmental("pollen", *TREE_POLLEN, ["environment"]),  # filed right
        _environmental("peanut", *PEANUT, ["food"]),  # a real food allergy
        _environmental("pollen", *TREE_POLLEN, []),  # no category given: nothing to correct
    ],
)
def test_a_record_filed_right_or_without_a_category_raises_nothing(allergy: dict[str, Any]) -> None:
    assert _category_cards(allergy) == []


def test_many_wrongly_filed_records_keep_the_summary_short_and_the_option_whole() -> None:
    records = [
        _environmental(f"pollen-{i}", TREE_POLLEN[0], f"Allergy to tree pollen, variant {i} " * 3, ["food"])
        for i in range(6)
    ]
    (card,) = _category_cards(*records)
    assert len(card.summary) < 140
    assert card.summary.endswith("consider correcting the category")
    assert len(card.inputs) == 6


@pytest.mark.parametrize(
    ("display", "ingredients", "unknown"),
    [
        ("Black cohosh root extract 40 mg", ("black cohosh",), ()),
        ("Children's honey cough syrup", ("honey",), ()),
        ("nitrofurantoin monohydrate/macrocrystals 100 MG Oral Capsule", ("nitrofurantoin",), ()),
        (
            "Fleet Enema for adults (sodium phosphates: monobasic 19 g / dibasic 7 g per 118 mL)",
            ("sodium phosphate",),
            (),
        ),
        ("insulin aspart via Omnipod 5 pump", ("insulin aspart",), ()),
        # Nothing known leads the name: it stays unknown (fail closed), never guessed.
        (
            "Water pill - patient unsure of name",
            ("water pill - patient unsure of name",),
            ("water pill - patient unsure of name",),
        ),
        ("Study drug XR-17", ("study drug xr-17",), ("study drug xr-17",)),
    ],
)
def test_a_name_led_by_a_known_one_resolves_to_it(
    display: str, ingredients: tuple[str, ...], unknown: tuple[str, ...]
) -> None:
    resolved = resolve_product(None, display)
    assert (resolved.ingredients, resolved.unknown) == (ingredients, unknown)


def test_each_part_of_a_mixture_is_led_by_its_own_name() -> None:
    resolved = resolve_product(None, "lidocaine viscous 2% / diphenhydramine 12.5 mg/5 mL")
    assert set(resolved.ingredients) == {"lidocaine", "diphenhydramine"} and resolved.unknown == ()


@pytest.mark.parametrize(
    ("display", "ingredients"),
    [
        # A brand leads, but another ingredient is named beside it: both count (the opioid must not vanish).
        ("Tylenol + codeine #3", ("acetaminophen", "codeine")),
        # The brand's own contents in a note beside it: the brand stands for them.
        (
            "Paxlovid (nirmatrelvir 150 mg tablets; ritonavir 100 mg tablets) dose pack",
            ("nirmatrelvir", "ritonavir"),
        ),
        # "vitamin D3" is a name, not a strength; "+" joins two ingredients in free text.
        ("Calcium 600 mg + vitamin D3 400 IU tablet (OTC)", ("calcium", "cholecalciferol")),
        ("vitamin B12 1000 mcg", ("cyanocobalamin",)),
        # Sold over the counter says nothing about what is in it.
        ("Prenatal multivitamin with 0.8 mg folic acid, OTC", ("folic acid", "iron")),
        ("Aquaphor Healing Ointment (petrolatum emollient, OTC)", ("emollient",)),
    ],
)
def test_free_text_products_name_every_ingredient(display: str, ingredients: tuple[str, ...]) -> None:
    resolved = resolve_product(None, display)
    assert (resolved.ingredients, resolved.unknown) == (ingredients, ())

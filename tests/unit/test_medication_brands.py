"""Brand, OTC and supplement names as charts write them: each resolves to its exact ingredients, none stays unknown."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.context.model import ClinicalContext, Code, Dosage, Medication
from plugin.rules.engine import check_proposal
from plugin.rules.model import RuleFacts
from plugin.rules.resolution import medication_unresolved
from plugin.terminology import (
    classes_of,
    classes_of_product,
    is_known_ingredient,
    lookup_name,
    medication_names,
    resolve_product,
)
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

# (text as a pharmacist or patient wrote it on the medication list, the ingredients it must resolve to)
CHART_TEXTS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (text, frozenset(ingredients))
    for text, ingredients in (
        # the charts that raised "unresolved medication" cards
        ("Brilinta 90 mg tablet", {"ticagrelor"}),
        ("Kerendia 10 mg", {"finerenone"}),
        ("Baqsimi 3 mg nasal powder", {"glucagon"}),
        ("Diclegis 10-10 mg tablet", {"doxylamine", "pyridoxine"}),
        ("Norvasc 5mg tab", {"amlodipine"}),
        ("Norvasc (amlodipine) 5 mg tablet", {"amlodipine"}),
        ("CeraVe moisturizing cream", {"emollient"}),
        ("Cetaphil moisturizing cream", {"emollient"}),
        ("Ensure Plus nutrition shake", {"oral nutrition supplement"}),
        ("sodium bicarbonate 650 mg tablet", {"sodium bicarbonate"}),
        # cardiology
        ("Effient 10 mg", {"prasugrel"}),
        ("Savaysa 60 mg", {"edoxaban"}),
        ("Eliquis 5 mg twice daily", {"apixaban"}),
        ("Xarelto 20 mg with supper", {"rivaroxaban"}),
        ("Pradaxa 150 mg capsule", {"dabigatran"}),
        ("Entresto 24-26 mg", {"sacubitril", "valsartan"}),
        ("Corlanor 5 mg", {"ivabradine"}),
        ("Inspra 25 mg", {"eplerenone"}),
        ("Multaq 400 mg", {"dronedarone"}),
        ("Edarbyclor 40-12.5 mg", {"azilsartan", "chlorthalidone"}),
        ("Repatha SureClick 140 mg/mL", {"evolocumab"}),
        ("Leqvio 284 mg", {"inclisiran"}),
        ("Nexlizet 180-10 mg", {"bempedoic acid", "ezetimibe"}),
        ("Livalo 2 mg", {"pitavastatin"}),
        ("Aggrenox 25-200 mg capsule", {"aspirin", "dipyridamole"}),
        # diabetes
        ("Ozempic 0.5 mg/dose pen", {"semaglutide"}),
        ("Mounjaro 5 mg/0.5 mL pen", {"tirzepatide"}),
        ("Zepbound 2.5 mg", {"tirzepatide"}),
        ("Trulicity 1.5 mg/0.5 mL", {"dulaglutide"}),
        ("Farxiga 10 mg", {"dapagliflozin"}),
        ("Janumet 50-1000 mg", {"sitagliptin", "metformin"}),
        ("Synjardy 12.5-1000", {"empagliflozin", "metformin"}),
        ("Glyxambi 25-5 mg", {"empagliflozin", "linagliptin"}),
        ("Gvoke HypoPen 1 mg", {"glucagon"}),
        ("Tresiba FlexTouch 100 units/mL", {"insulin degludec"}),
        ("Apidra SoloStar", {"insulin glulisine"}),
        ("Xultophy 100/3.6", {"insulin degludec", "liraglutide"}),
        ("Soliqua 100/33", {"insulin glargine", "lixisenatide"}),
        ("Humalog Mix 75/25 KwikPen", {"insulin lispro protamine", "insulin lispro"}),
        ("Byetta 10 mcg", {"exenatide"}),
        # renal
        ("Renvela 800 mg", {"sevelamer"}),
        ("PhosLo 667 mg", {"calcium acetate"}),
        ("Auryxia 210 mg", {"ferric citrate"}),
        ("Sensipar 30 mg", {"cinacalcet"}),
        ("Lokelma 10 g packet", {"sodium zirconium cyclosilicate"}),
        ("Veltassa 8.4 g", {"patiromer"}),
        ("Aranesp 40 mcg", {"darbepoetin alfa"}),
        # psychiatry and neurology
        ("Rexulti 1 mg", {"brexpiprazole"}),
        ("Vraylar 1.5 mg capsule", {"cariprazine"}),
        ("Caplyta 42 mg", {"lumateperone"}),
        ("Invega Sustenna 234 mg", {"paliperidone"}),
        ("Viibryd 20 mg", {"vilazodone"}),
        ("Xcopri 100 mg", {"cenobamate"}),
        ("Nucynta 50 mg", {"tapentadol"}),
        ("Relpax 40 mg", {"eletriptan"}),
        ("Aimovig 70 mg/mL", {"erenumab"}),
        ("Ubrelvy 100 mg", {"ubrogepant"}),
        # respiratory
        ("Incruse Ellipta 62.5 mcg", {"umeclidinium"}),
        ("Stiolto Respimat 2.5-2.5 mcg", {"tiotropium", "olodaterol"}),
        ("Qvar RediHaler 80 mcg", {"beclomethasone"}),
        ("Xopenex HFA 45 mcg", {"levalbuterol"}),
        ("Trelegy Ellipta 100-62.5-25", {"fluticasone", "umeclidinium", "vilanterol"}),
        ("Breo Ellipta 100-25", {"fluticasone", "vilanterol"}),
        ("Wixela Inhub 250/50", {"fluticasone", "salmeterol"}),
        ("Daliresp 500 mcg", {"roflumilast"}),
        ("Nucala 100 mg", {"mepolizumab"}),
        # women's health
        ("Bonjesta 20-20 mg", {"doxylamine", "pyridoxine"}),
        ("Yaz 3-0.02 mg", {"drospirenone", "ethinyl estradiol"}),
        ("Sprintec", {"norgestimate", "ethinyl estradiol"}),
        ("Junel Fe 1/20", {"norethindrone", "ethinyl estradiol", "ferrous fumarate"}),
        ("Lutera", {"levonorgestrel", "ethinyl estradiol"}),
        ("NuvaRing", {"etonogestrel", "ethinyl estradiol"}),
        ("Xulane patch", {"norelgestromin", "ethinyl estradiol"}),
        ("Nexplanon 68 mg implant", {"etonogestrel"}),
        ("Mirena IUD", {"levonorgestrel"}),
        ("Premarin 0.625 mg", {"conjugated estrogens"}),
        ("Prempro 0.3-1.5 mg", {"conjugated estrogens", "medroxyprogesterone"}),
        ("Slynd 4 mg", {"drospirenone"}),
        ("Opill 0.075 mg", {"norgestrel"}),
        # OTC and non-drug products patients list
        ("Cetaphil lotion", {"emollient"}),
        ("Eucerin cream", {"emollient"}),
        ("Aquaphor healing ointment", {"emollient"}),
        ("Ensure Plus 1 bottle twice daily", {"oral nutrition supplement"}),
        ("Boost Plus", {"oral nutrition supplement"}),
        ("Glucerna shake", {"oral nutrition supplement"}),
        ("Systane eye drops", {"artificial tears"}),
        ("Refresh Tears 1 drop both eyes", {"artificial tears"}),
        ("saline nasal spray", {"sodium chloride"}),
        ("Ocean nasal spray", {"sodium chloride"}),
        ("zinc oxide cream", {"zinc oxide"}),
        ("Desitin Maximum Strength", {"zinc oxide"}),
        ("Vaseline", {"petrolatum"}),
        ("petroleum jelly", {"petrolatum"}),
        ("Pepto-Bismol 262 mg", {"bismuth subsalicylate"}),
        ("Linzess 145 mcg capsule", {"linaclotide"}),
    )
)


@pytest.mark.parametrize(("text", "expected"), CHART_TEXTS, ids=[text for text, _ in CHART_TEXTS])
def test_chart_text_resolves_to_exactly_its_ingredients(text: str, expected: frozenset[str]) -> None:
    resolution = resolve_product(None, text)
    assert resolution.unknown == ()
    assert resolution.resolved
    assert frozenset(resolution.ingredients) == expected
    assert len(resolution.ingredients) == len(expected)
    assert all(is_known_ingredient(name) for name in resolution.ingredients)


def test_the_list_covers_many_products() -> None:
    assert len(CHART_TEXTS) >= 60
    assert len({text.lower() for text, _ in CHART_TEXTS}) == len(CHART_TEXTS)


def _medication(handle: str, display: str) -> Medication:
    return Medication(
        handle, Code("text", display.lower(), display), (), None, "active", Dosage(), 10, "MedicationRequest"
    )


def _context(*displays: str) -> ClinicalContext:
    base = corpus.context()
    extra = tuple(_medication(f"M8{i}", display) for i, display in enumerate(displays))
    return dataclasses.replace(base, medications=(*base.medications, *extra))


def test_none_of_the_products_raises_an_unresolved_medication_card() -> None:
    facts = RuleFacts.of(_context(*(text for text, _ in CHART_TEXTS)))
    flagged = {handle for finding in medication_unresolved(facts) for handle in finding.inputs}
    assert not any(handle.startswith("M8") for handle in flagged)


def test_a_truly_unknown_product_still_gets_the_card() -> None:
    facts = RuleFacts.of(_context("Zorblax 10 mg tablet"))
    flagged = {handle for finding in medication_unresolved(facts) for handle in finding.inputs}
    assert "M80" in flagged


# --- classes of the newly named ingredients ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Brilinta 90 mg", "antiplatelet"),
        ("Effient 10 mg", "antiplatelet"),
        ("Kerendia 20 mg", "mineralocorticoid-antagonist"),
        ("Inspra 50 mg", "mineralocorticoid-antagonist"),
        ("Savaysa 30 mg", "doac"),
        ("Mounjaro 7.5 mg", "glp1-agonist"),
        ("Rybelsus 7 mg", "glp1-agonist"),
        ("Soliqua 100/33", "insulin"),
        ("Incruse Ellipta", "lama"),
        ("Qvar 40 mcg", "ics"),
        ("Auryxia 210 mg", "iron-supplement"),
        ("Caplyta 42 mg", "antipsychotic"),
        ("Yaz", "hormonal-contraceptive"),
        ("Diclegis 10-10 mg", "sedating-antihistamine"),
    ],
)
def test_brand_carries_the_class_the_rules_read(text: str, key: str) -> None:
    assert key in classes_of_product(None, text)


@pytest.mark.parametrize(
    "ingredient",
    [
        "glucagon",
        "ivabradine",
        "pyridoxine",
        "sodium bicarbonate",
        "emollient",
        "oral nutrition supplement",
        "artificial tears",
        "sodium chloride",
        "zinc oxide",
        "petrolatum",
    ],
)
def test_products_no_rule_reads_are_reviewed_and_unclassified(ingredient: str) -> None:
    assert ingredient in medication_names().unclassified
    assert classes_of(ingredient) == frozenset()


def test_finerenone_raises_potassium_with_an_ace_inhibitor_and_a_potassium_supplement() -> None:
    context = _context("lisinopril 20 mg tablet", "potassium chloride 20 mEq tablet")
    findings = check_proposal(context, Code("text", "kerendia", "Kerendia 10 mg"))
    assert "rule.raas-potassium" in {finding.rule_id for finding in findings}
    # Added alone beside the ACE inhibitor it is routine combined therapy: its start carries the potassium checks.
    alone = check_proposal(_context("lisinopril 20 mg tablet"), Code("text", "kerendia", "Kerendia 10 mg"))
    assert "rule.raas-potassium" not in {finding.rule_id for finding in alone}


def test_a_phosphate_binder_named_by_brand_binds_a_fluoroquinolone() -> None:
    findings = check_proposal(_context("Renvela 800 mg"), Code("text", "cipro", "Cipro 500 mg"))
    assert "rule.chelation-antibiotic" in {finding.rule_id for finding in findings}


@pytest.mark.parametrize("word", ["ensure", "boost", "refresh", "ocean", "bicarb"])
def test_ordinary_words_in_prose_are_not_read_as_products(word: str) -> None:
    # Governance scans model prose word by word ("ensure adequate hydration"): these must not name a drug.
    assert lookup_name(word) is None

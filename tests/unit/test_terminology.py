"""Terminology data: schema and check digits, fixture coverage, clinical spot checks, value-set membership."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from plugin.context.codes import PREGNANCY_CONDITIONS, normalise_ingredient, parse_product, system_name
from plugin.rules.model import RuleFacts
from plugin.terminology import (
    CLASS_KEYS,
    VALUE_SET_SYSTEMS,
    TerminologyError,
    classes_of,
    classes_of_product,
    in_value_set,
    ingredients_of,
    parse_terminology,
    terminology,
    value_set_names,
    value_sets_named_by,
)
from tests.support.fixtures_paths import synthea_bundle_paths
from tests.support.rule_cases import PROBLEMS, SNOMED, Chart, problem

pytestmark = pytest.mark.unit

DATA_FILE = Path(__file__).resolve().parents[2] / "plugin" / "knowledge" / "terminology.json"
# Fixture ingredients that were reviewed and deliberately left without a class: none of CLASS_KEYS fits a
# sympathomimetic or a urinary analgesic, and labelling them with a near miss would mislead the rules.
REVIEWED_WITHOUT_CLASS = frozenset({"epinephrine", "phenazopyridine"})


def _raw() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return document


# --- check digits ---------------------------------------------------------------------------------------

# Verhoeff tables (SNOMED CT identifiers end in a Verhoeff check digit).
_D = [
    [int(c) for c in row]
    for row in (
        "0123456789",
        "1234067895",
        "2340178956",
        "3401289567",
        "4012395678",
        "5987604321",
        "6598710432",
        "7659821043",
        "8765932104",
        "9876543210",
    )
]
_P = [
    [int(c) for c in row]
    for row in (
        "0123456789",
        "1576283094",
        "5803796142",
        "8916043527",
        "9453126870",
        "4286573901",
        "2793806415",
        "7046913258",
    )
]


def _verhoeff_ok(number: str) -> bool:
    check = 0
    for i, digit in enumerate(reversed(number)):
        check = _D[check][_P[i % 8][int(digit)]]
    return check == 0


def _luhn_ok(number: str) -> bool:
    """LOINC's mod-10 check digit is the Luhn algorithm over the digits without the hyphen."""
    total = 0
    for i, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


_SNOMED = re.compile(r"^[1-9]\d{5,17}$")
_LOINC = re.compile(r"^\d{1,7}-\d$")
# ICD-10-CM: a category (letter, digit, digit-or-letter) at least, optionally a dot and up to 4 more characters.
_ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def _snomed_ok(code: str) -> bool:
    # Partition "00" (short concept id) or "10" (concept id in a namespace extension) before the check digit.
    return bool(_SNOMED.match(code)) and code[-3:-1] in {"00", "10"} and _verhoeff_ok(code)


def _loinc_ok(code: str) -> bool:
    return bool(_LOINC.match(code)) and _luhn_ok(code.replace("-", ""))


def _icd10_ok(code: str) -> bool:
    return bool(_ICD10.match(code))


def test_check_digit_helpers_accept_known_codes_and_reject_typos() -> None:
    assert all(_snomed_ok(code) for code in PREGNANCY_CONDITIONS | {"90781000119102", "431855005"})
    assert not _snomed_ok("431855006")  # last digit changed
    assert not _snomed_ok("413855005")  # adjacent digits swapped
    assert _loinc_ok("2160-0") and _loinc_ok("33914-3") and _loinc_ok("4548-4")
    assert not _loinc_ok("2160-1")


# --- the data file's shape ------------------------------------------------------------------------------


def test_data_file_loads_and_validates() -> None:
    data = terminology()
    assert parse_terminology(_raw()) == data
    assert set(_raw()) == {"about", "classes", "aliases", "unclassified", "rxnorm", "value_sets"}


def test_every_class_key_is_known_and_every_known_key_is_used() -> None:
    used: set[str] = set()
    for ingredient, keys in _raw()["classes"].items():
        assert keys, f"{ingredient} has an empty class list"
        assert len(set(keys)) == len(keys), f"{ingredient} repeats a class"
        assert set(keys) <= CLASS_KEYS, f"{ingredient}: unknown {set(keys) - CLASS_KEYS}"
        used.update(keys)
    # Ingredients classed in the built medication vocabulary (sources/medications.csv) carry keys too.
    medications = json.loads(resources.files("plugin").joinpath("knowledge/medications.json").read_text())
    for keys in medications["classes"].values():
        assert set(keys) <= CLASS_KEYS
        used.update(keys)
    assert used == CLASS_KEYS, f"class keys no ingredient carries: {sorted(CLASS_KEYS - used)}"


def test_covers_at_least_200_ingredients() -> None:
    assert len(terminology().classes) >= 200


def _all_ingredient_names() -> Iterator[tuple[str, str]]:
    raw = _raw()
    for name in raw["classes"]:
        yield "classes", name
    for variant, target in raw["aliases"].items():
        yield "aliases", variant
        yield "aliases", target
    for name in raw["unclassified"]:
        yield "unclassified", name
    for code, names in raw["rxnorm"].items():
        for name in names:
            yield f"rxnorm {code}", name


def test_ingredient_names_are_lower_case_and_normalised() -> None:
    bad = [
        f"{where}: {name!r}"
        for where, name in _all_ingredient_names()
        if name != name.lower() or normalise_ingredient(name) != name
    ]
    assert bad == []


@pytest.mark.parametrize(("variant", "canonical"), sorted(_raw()["aliases"].items()))
def test_an_alias_is_what_the_parser_yields_and_resolves_to_its_ingredient(
    variant: str, canonical: str
) -> None:
    display = f"{variant} 10 MG Oral Tablet"
    assert parse_product(display).ingredients == (variant,)
    assert ingredients_of(None, display) == (canonical,)
    assert classes_of(variant) == classes_of(canonical)


def test_value_set_codes_look_like_codes() -> None:
    bad: list[str] = []
    for name, systems in _raw()["value_sets"].items():
        if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", name):
            bad.append(f"{name}: name is not kebab-case")
        if not systems or not set(systems) <= set(VALUE_SET_SYSTEMS):
            bad.append(f"{name}: systems {sorted(systems)}")
        for system, codes in systems.items():
            if not codes or len(set(codes)) != len(codes):
                bad.append(f"{name}.{system}: empty or repeated codes")
            valid = {"snomed": _snomed_ok, "loinc": _loinc_ok, "icd10": _icd10_ok, "text": _phrase_ok}[system]
            bad.extend(f"{name}.{system}: {code!r}" for code in codes if not valid(code))
    assert bad == []


def _phrase_ok(phrase: str) -> bool:
    return re.fullmatch(r"[a-z0-9' -]+", phrase) is not None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Alzheimer's disease", {"dementia"}),
        ("Vascular dementia, uncomplicated", {"dementia"}),
        ("NSTEMI (non-ST elevation myocardial infarction)", {"myocardial-infarction"}),
        ("Coronary artery disease s/p stent", {"coronary-heart-disease"}),
        ("Heart failure with reduced ejection fraction", {"heart-failure", "hfref"}),
        ("Migraine without aura", {"migraine", "migraine-without-aura"}),
        # "Pre-eclampsia" and "pre-existing" are words of their own, not a "pre-" condition (pre-diabetes).
        ("Severe pre-eclampsia", {"preeclampsia"}),
        ("Preeclampsia with severe features", {"preeclampsia"}),
        ("Pre-existing chronic kidney disease", {"ckd"}),
        ("Pre-hypertension", set()),
        # About something other than the patient having the condition now.
        ("Family history of dementia", set()),
        ("Screening for COPD", set()),
        ("Suspected atrial fibrillation", set()),
        ("Asthma in remission", set()),
        ("At risk of falls", set()),
        ("Dementia ruled out", set()),
        # Words inside other words are not the condition.
        ("Goutweed dermatitis", set()),
        ("", set()),
    ],
)
def test_a_problems_own_words_name_its_value_sets(text: str, named: set[str]) -> None:
    assert value_sets_named_by(text) == named


def _coded(resource_id: str, code: str, display: str) -> dict[str, Any]:
    resource = problem(next(iter(PROBLEMS)), resource_id)
    resource["code"] = {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display}
    return resource


def test_text_is_read_only_when_no_value_set_holds_the_code() -> None:
    # A coded member of one set is not also put in another because its display shares words.
    built = Chart(
        resources=(
            _coded("c1", "127013003", "Diabetic kidney disease with heart failure"),
            _coded("c2", "999999999", "Alzheimer's disease"),
        )
    ).build()
    sets = RuleFacts.of(built.context).value_sets
    assert sets.get("dementia") == ("C2",) and "heart-failure" not in sets  # handles, not resource ids


def test_value_set_phrases_are_lower_case_words() -> None:
    raw = _raw()
    raw["value_sets"]["dementia"]["text"] = ["Dementia"]
    with pytest.raises(TerminologyError):
        parse_terminology(raw)


def test_rxnorm_codes_are_numeric() -> None:
    assert all(code.isdigit() for code in _raw()["rxnorm"])


def test_pregnancy_value_set_agrees_with_the_context_codes() -> None:
    assert set(_raw()["value_sets"]["pregnancy"]["snomed"]) == PREGNANCY_CONDITIONS


# --- the loader rejects bad data ------------------------------------------------------------------------


def _broken(edit: str) -> dict[str, Any]:
    document = copy.deepcopy(_raw())
    if edit == "unknown class":
        document["classes"]["warfarin"] = ["anticoagulant", "blood-thinner"]
    elif edit == "empty classes":
        document["classes"]["warfarin"] = []
    elif edit == "alias to nothing":
        document["aliases"]["warfarin sodium"] = "coumarin"
    elif edit == "alias shadows ingredient":
        document["aliases"]["aspirin"] = "warfarin"
    elif edit == "rxnorm unknown ingredient":
        document["rxnorm"]["855332"] = ["warfarinn"]
    elif edit == "rxnorm bad code":
        document["rxnorm"]["RX1"] = ["warfarin"]
    elif edit == "unknown system":
        document["value_sets"]["ckd"]["icd9"] = ["585"]
    elif edit == "missing section":
        del document["value_sets"]
    elif edit == "extra section":
        document["clases"] = {}
    elif edit == "padded code":
        document["value_sets"]["ckd"]["snomed"] = [" 431855005"]
    return document


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("unknown class", r"unknown class key\(s\) \['blood-thinner'\]"),
        ("empty classes", r"classes\['warfarin'\]: expected a non-empty list"),
        ("alias to nothing", r"target 'coumarin' is not a known ingredient"),
        ("alias shadows ingredient", r"must not also be a canonical ingredient"),
        ("rxnorm unknown ingredient", r"\['warfarinn'\] are neither classed nor unclassified"),
        ("rxnorm bad code", r"'RX1' is not an RxNorm code"),
        ("unknown system", r"value_sets\['ckd'\]: systems must be"),
        ("missing section", r"missing sections \['value_sets'\]"),
        ("extra section", r"unknown sections \['clases'\]"),
        ("padded code", r"without padding"),
    ],
)
def test_loader_rejects_bad_data_with_a_clear_error(edit: str, message: str) -> None:
    with pytest.raises(TerminologyError, match=message):
        parse_terminology(_broken(edit))


def test_terminology_error_is_a_value_error() -> None:
    assert issubclass(TerminologyError, ValueError)


# --- the Synthea sample charts --------------------------------------------------------------------------


def _fixture_products() -> dict[str, str]:
    """RxNorm code → display of every MedicationRequest medication in the Synthea fixtures."""
    products: dict[str, str] = {}
    for path in synthea_bundle_paths():
        for entry in json.loads(path.read_text(encoding="utf-8")).get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") != "MedicationRequest":
                continue
            for coding in resource.get("medicationCodeableConcept", {}).get("coding", []):
                if system_name(coding.get("system")) == "rxnorm":
                    products[coding["code"]] = coding["display"]
    assert products, "no RxNorm MedicationRequest in the fixtures"
    return products


def test_every_fixture_ingredient_has_a_class() -> None:
    ingredients = {name for display in _fixture_products().values() for name in ingredients_of(None, display)}
    unclassed = {name for name in ingredients if not classes_of(name)}
    assert unclassed == REVIEWED_WITHOUT_CLASS
    assert terminology().unclassified >= REVIEWED_WITHOUT_CLASS


def test_every_fixture_rxnorm_code_maps_to_the_parsed_ingredients() -> None:
    rxnorm = terminology().rxnorm
    missing = sorted(code for code in _fixture_products() if code not in rxnorm)
    assert missing == []
    disagree = {
        code: (rxnorm[code], ingredients_of(None, display))
        for code, display in _fixture_products().items()
        if rxnorm[code] != ingredients_of(None, display)
    }
    assert disagree == {}


# --- clinical spot checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ingredient", "expected"),
    [
        ("warfarin", {"anticoagulant", "vitamin-k-antagonist", "teratogen"}),
        ("Warfarin Sodium", {"anticoagulant", "vitamin-k-antagonist"}),
        ("apixaban", {"anticoagulant", "doac"}),
        ("enoxaparin", {"anticoagulant", "heparin"}),
        ("naproxen", {"nsaid"}),
        ("ibuprofen", {"nsaid"}),
        ("celecoxib", {"nsaid", "cox2-inhibitor"}),
        ("aspirin", {"salicylate", "antiplatelet", "nsaid"}),
        ("clopidogrel", {"antiplatelet"}),
        ("verapamil", {"non-dihydropyridine-ccb"}),
        ("amlodipine", {"dihydropyridine-ccb"}),
        ("digoxin", {"cardiac-glycoside"}),
        ("terfenadine", {"antihistamine", "qt-prolonging"}),
        ("clarithromycin", {"macrolide", "qt-prolonging", "strong-cyp3a4-inhibitor"}),
        ("ketoconazole", {"azole-antifungal", "strong-cyp3a4-inhibitor"}),
        ("ritonavir", {"strong-cyp3a4-inhibitor"}),
        ("cobicistat", {"strong-cyp3a4-inhibitor"}),
        ("nefazodone", {"serotonergic", "strong-cyp3a4-inhibitor"}),
        ("fluconazole", {"azole-antifungal", "qt-prolonging"}),
        ("methotrexate", {"methotrexate", "immunosuppressant", "teratogen"}),
        ("cyclosporine", {"immunosuppressant", "calcineurin-inhibitor"}),
        ("albuterol", {"saba"}),
        ("salmeterol", {"laba"}),
        ("fluticasone", {"ics", "corticosteroid"}),
        ("prednisone", {"corticosteroid"}),
        ("amoxicillin", {"penicillin", "beta-lactam"}),
        ("cefuroxime", {"cephalosporin", "beta-lactam"}),
        ("penicillin v", {"penicillin", "beta-lactam"}),
        ("meropenem", {"carbapenem", "beta-lactam"}),
        ("hydrocodone", {"opioid"}),
        ("oxycodone", {"opioid"}),
        ("tramadol", {"opioid", "codeine-like-opioid", "serotonergic"}),
        ("codeine", {"opioid", "codeine-like-opioid"}),
        ("linezolid", {"serotonergic", "maoi"}),
        ("sertraline", {"ssri", "serotonergic"}),
        ("sumatriptan", {"triptan", "serotonergic"}),
        ("dextromethorphan", {"serotonergic"}),
        ("metformin", {"biguanide"}),
        ("insulin isophane", {"insulin"}),
        ("lisinopril", {"ace-inhibitor", "teratogen"}),
        ("losartan", {"arb", "teratogen"}),
        ("sacubitril", {"arni"}),
        ("spironolactone", {"potassium-sparing-diuretic", "mineralocorticoid-antagonist"}),
        ("potassium chloride", {"potassium-supplement"}),
        ("furosemide", {"loop-diuretic"}),
        ("hydrochlorothiazide", {"thiazide"}),
        ("metoprolol", {"beta-blocker"}),
        ("simvastatin", {"statin"}),
        ("diphenhydramine", {"antihistamine", "sedating-antihistamine", "anticholinergic"}),
        ("loratadine", {"antihistamine"}),
        ("methylphenidate", {"stimulant"}),
        ("alendronate", {"bisphosphonate"}),
        ("levothyroxine", {"thyroid-hormone"}),
        ("ethinyl estradiol", {"estrogen", "hormonal-contraceptive"}),
        ("norethindrone", {"progestin", "hormonal-contraceptive"}),
        ("isotretinoin", {"retinoid", "teratogen"}),
        ("valproic acid", {"valproate", "anticonvulsant", "teratogen"}),
        ("lithium carbonate", {"lithium"}),
        ("ferrous sulfate", {"iron-supplement"}),
        ("cyanocobalamin", {"vitamin-b12"}),
        ("acetaminophen", {"acetaminophen"}),
        ("alteplase", {"thrombolytic"}),
        ("allopurinol", {"xanthine-oxidase-inhibitor", "antigout"}),
        ("ondansetron", {"5-ht3-antagonist", "qt-prolonging"}),
        ("nitrofurantoin", {"nitrofurantoin"}),
        ("nitroglycerin", {"nitrate"}),
    ],
)
def test_ingredient_classes(ingredient: str, expected: set[str]) -> None:
    assert expected <= classes_of(ingredient)


@pytest.mark.parametrize("ingredient", ["acetaminophen", "loratadine", "amoxicillin", "metformin"])
def test_no_false_classes_on_common_drugs(ingredient: str) -> None:
    assert not classes_of(ingredient) & {
        "anticoagulant",
        "nsaid",
        "qt-prolonging",
        "teratogen",
        "serotonergic",
    }


@pytest.mark.parametrize(
    "ingredient", ["erythromycin", "fluconazole", "diltiazem", "verapamil", "azithromycin"]
)
def test_moderate_cyp3a4_inhibitors_are_not_called_strong(ingredient: str) -> None:
    # FDA's table calls these moderate (azithromycin barely inhibits): rules that need them name them.
    assert "strong-cyp3a4-inhibitor" not in classes_of(ingredient)


def test_unknown_ingredient_has_no_class() -> None:
    assert classes_of("unobtainium") == frozenset()
    assert classes_of("epinephrine") == frozenset()


def test_product_classes_union_every_ingredient() -> None:
    classes = classes_of_product("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet")
    assert {"penicillin", "beta-lactam"} <= classes
    combo = classes_of_product(None, "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet")
    assert {"acetaminophen", "opioid"} <= combo


def test_the_rxnorm_map_wins_over_an_unreadable_display() -> None:
    display = "Zorblax 2 MG / 0.5 MG Sublingual Film"
    assert ingredients_of(None, display) == ("zorblax",)  # a name no list knows is kept as written
    assert ingredients_of("1010603", display) == ("buprenorphine", "naloxone")
    assert ingredients_of(" 1010603 ", display) == ("buprenorphine", "naloxone")
    assert "opioid" in classes_of_product("1010603", display)


def test_unmapped_code_falls_back_to_the_display() -> None:
    assert ingredients_of("999999999", "Warfarin Sodium 5 MG Oral Tablet") == ("warfarin",)
    assert ingredients_of(None, "olmesartan medoxomil 20 MG Oral Tablet") == ("olmesartan",)


# --- value sets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "system", "code", "expected"),
    [
        ("ckd", "snomed", "431856006", True),
        ("ckd", "snomed", "127013003", True),
        ("diabetic-kidney-disease", "snomed", "127013003", True),
        ("diabetes", "snomed", "127013003", True),
        ("diabetes", "snomed", "44054006", True),
        ("atrial-fibrillation", "snomed", "49436004", True),
        ("heart-failure", "snomed", "88805009", True),
        ("asthma", "snomed", "233678006", True),
        ("coronary-heart-disease", "snomed", "53741008", True),
        ("pregnancy", "snomed", "72892002", True),
        ("long-qt", "snomed", "9651007", True),
        ("tonsillectomy-recent", "snomed", "173422009", True),
        ("ckd", "icd10", "N18.3", True),
        ("ckd", "icd10", "N183", True),  # some exports drop the dot
        ("ckd", "icd10", " n18.30 ", True),
        ("ckd", "http://hl7.org/fhir/sid/icd-10-cm", "N18.4", True),
        ("ckd", "http://snomed.info/sct", "431855005", True),
        ("diabetes", "icd10", "E11.9", True),
        ("diabetic-kidney-disease", "icd10", "E11.22", True),
        ("hyperkalaemia", "icd10", "E87.5", True),
        ("long-qt", "icd10", "I45.81", True),
        ("hcg-pregnancy-test", "loinc", "2106-3", True),
        # Unrelated codes and near misses.
        ("ckd", "snomed", "44054006", False),  # diabetes without kidney disease
        ("ckd", "snomed", "90781000119102", False),  # microalbuminuria alone is not staged CKD here
        ("diabetes", "snomed", "15777000", False),  # prediabetes
        ("atrial-fibrillation", "snomed", "38341003", False),
        ("ckd", "icd10", "N17.9", False),  # acute kidney injury
        ("ckd", "icd10", "N1", False),  # shorter than any prefix
        ("ckd", "icd10", "", False),
        ("hyperkalaemia", "icd10", "E87.6", False),  # hypokalaemia
        ("long-qt", "icd10", "I45.8", False),  # the parent category is wider than long QT
        ("ckd", "loinc", "431856006", False),  # right code, wrong system
        ("ckd", "rxnorm", "431856006", False),
        ("ckd", "http://example.org/codes", "N18.3", False),
    ],
)
def test_value_set_membership(name: str, system: str, code: str, expected: bool) -> None:
    assert in_value_set(name, system, code) is expected


def test_unknown_value_set_name_fails_loudly() -> None:
    with pytest.raises(KeyError, match="unknown value set 'kidney'"):
        in_value_set("kidney", "snomed", "431856006")


def test_value_set_names_include_what_the_rules_need() -> None:
    needed = {
        "ckd",
        "diabetes",
        "diabetic-kidney-disease",
        "heart-failure",
        "asthma",
        "atrial-fibrillation",
        "hypertension",
        "coronary-heart-disease",
        "pregnancy",
        "hyperkalaemia",
        "liver-disease",
        "peptic-ulcer",
        "gi-bleed",
        "long-qt",
        "rheumatoid-arthritis",
        "osteoporosis",
        "hypothyroidism",
        "copd",
        "stroke",
        "tonsillectomy-recent",
    }
    assert needed <= value_set_names()


def test_every_fixture_condition_of_a_listed_code_is_found() -> None:
    """Synthea condition codes the value sets name must match the way the rules will look them up."""
    seen: set[tuple[str, str]] = set()
    for path in synthea_bundle_paths():
        for entry in json.loads(path.read_text(encoding="utf-8")).get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Condition":
                for coding in resource.get("code", {}).get("coding", []):
                    seen.add((coding.get("system", ""), coding.get("code", "")))
    listed = {code for vs in terminology().value_sets.values() for code in vs.snomed}
    matched = {code for system, code in seen if code in listed}
    assert {"431856006", "127013003", "49436004", "88805009", "233678006"} <= matched
    for system, code in seen:
        if code in listed:
            assert any(in_value_set(name, system, code) for name in value_set_names())

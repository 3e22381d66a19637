"""Allergy records resolve to drug classes by code, word and abbreviation; what does not resolve is shown."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from plugin import allergens, terminology
from plugin.allergens import AllergenError, parse_allergens, resolve, words_of
from plugin.context.model import Code
from plugin.rules import catalog
from plugin.rules.model import RuleFacts
from tests.support.charts import JsonDict, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, draft, drug_allergy, penicillin_allergy
from tests.unit.test_terminology import _snomed_ok

pytestmark = pytest.mark.unit

DATA_FILE = Path(__file__).resolve().parents[2] / "plugin" / "knowledge" / "allergens.json"
CHECKED = frozenset({"penicillin", "cephalosporin", "sulfonamide-antibiotic", "salicylate", "nsaid"})


def text(display: str) -> Code:
    return Code("text", display.lower(), display)


def text_allergy(resource_id: str, display: str, category: str | None = "medication") -> JsonDict:
    """An allergy recorded as free text only, the way a clinician types 'PCN'."""
    allergy = penicillin_allergy(resource_id)
    allergy["code"] = {"text": display}
    if category is None:
        allergy.pop("category", None)
    else:
        allergy["category"] = [category]
    return allergy


def coded_allergy(resource_id: str, code: str, display: str, category: str) -> JsonDict:
    """A SNOMED-coded allergy with the category as recorded (Synthea files pollen under 'food')."""
    allergy = penicillin_allergy(resource_id)
    allergy["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}
    allergy["category"] = [category]
    return allergy


def findings(chart: Chart, rule: catalog.Rule) -> list[tuple[str, str, str]]:
    built = chart.build()
    assert built.context.skipped == ()
    return [(f.rule_id, f.severity, f.summary) for f in rule(RuleFacts.of(built.context))]


# --- words and abbreviations, whole tokens only ---------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("PCN", {"penicillin"}),
        ("pcn", {"penicillin"}),
        ("PCN - anaphylaxis", {"penicillin"}),
        ("PCNA", set()),
        ("PCNs", set()),
        ("ASA", {"salicylate"}),
        ("ASAP", set()),
        ("sulfa", {"sulfonamide-antibiotic"}),
        ("Sulpha drugs", {"sulfonamide-antibiotic"}),
        ("sulfa-drugs", {"sulfonamide-antibiotic"}),
        ("sulfate", set()),
        ("Ferrous sulfate", set()),
        ("Magnesium sulfate", set()),
        ("sulfasalazine", set()),
        ("NSAID", {"nsaid"}),
        ("NSAIDs", {"nsaid"}),
        ("amox", {"penicillin"}),
        ("amoxapine", set()),
        ("Augmentin", {"penicillin"}),
        ("TMP-SMX", {"sulfonamide-antibiotic"}),
        ("TMP/SMX", {"sulfonamide-antibiotic"}),
        ("Bactrim DS", {"sulfonamide-antibiotic"}),
        ("septra", {"sulfonamide-antibiotic"}),
        ("co-trimoxazole", {"sulfonamide-antibiotic"}),
        ("Aspirin", {"salicylate"}),
        ("Amoxicillin", {"penicillin"}),
        ("Cefuroxime", {"cephalosporin"}),
        ("Ibuprofen", {"nsaid"}),
        ("Trimethoprim", set()),
        ("Doxycycline", set()),
    ],
)
def test_text_resolves_to_checked_classes(display: str, expected: set[str]) -> None:
    assert catalog.allergy_classes(text(display)) == frozenset(expected)


def test_a_class_word_decides_alone() -> None:
    # Aspirin is also classed an NSAID, but an aspirin allergy is a salicylate allergy: NSAIDs cross-react.
    assert "nsaid" in terminology.classes_of("aspirin")
    assert catalog.allergy_classes(text("aspirin")) == {"salicylate"}


def test_words_keep_hyphenated_tokens_and_their_parts() -> None:
    assert words_of("TMP-SMX (rash)") == ("tmp-smx", "tmp", "smx", "rash")
    assert words_of("  --  ") == ()


# --- codes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "7980", {"penicillin"}),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "723", {"penicillin"}),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "1191", {"salicylate"}),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "10180", {"sulfonamide-antibiotic"}),
        ("http://snomed.info/sct", "764146007", {"penicillin"}),
        ("http://snomed.info/sct", "91936005", {"penicillin"}),
        ("http://snomed.info/sct", "294505008", {"penicillin"}),
        # A code of the other system, or a near miss, is not a match.
        ("http://snomed.info/sct", "7980", set()),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "7981", set()),
    ],
)
def test_codes_resolve_whatever_the_display_says(system: str, code: str, expected: set[str]) -> None:
    assert catalog.allergy_classes(Code(system, code, "Drug allergy")) == frozenset(expected)


def test_an_rxnorm_coded_allergy_is_a_drug_even_when_unmapped() -> None:
    match = resolve(Code("rxnorm", "999999", "Something new"))
    assert match.drug and not match.classes


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("716186003", "No Known Allergy (situation)"),
        ("409137002", "No Known Drug Allergy (situation)"),
        ("text", "NKDA"),
        ("text", "No known allergies"),
    ],
)
def test_no_known_allergy_is_not_an_allergy(code: str, display: str) -> None:
    substance = text(display) if code == "text" else Code("snomed", code, display)
    assert resolve(substance).none_known


# --- categories -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "recorded", "expected"),
    [
        ("419263009", ("food",), ("environment",)),  # tree pollen, as Synthea files it
        ("232350006", ("food",), ("environment",)),  # house dust mite
        ("419263009", ("environment",), ("environment",)),
        ("419263009", ("food", "medication"), ("environment", "medication")),  # a drug flag is never dropped
        ("91935009", ("food",), ("food",)),  # peanuts stay food
        ("91935009", ("environment",), ("food",)),
        ("12345001", ("food",), ("food",)),  # unknown code: as recorded
    ],
)
def test_known_allergens_get_their_category(
    code: str, recorded: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert allergens.categories(Code("snomed", code, "x"), recorded) == expected


def test_environmental_allergy_is_built_as_environment() -> None:
    pollen = coded_allergy("pollen", "419263009", "Allergy to tree pollen", "food")
    environment = coded_allergy("mite", "232350006", "House dust mite allergy", "environment")
    (first, second) = sorted(
        Chart(resources=(pollen, environment)).build().context.allergies, key=lambda a: a.substance.code
    )
    assert (first.substance.code, first.category) == ("232350006", ("environment",))
    assert (second.substance.code, second.category) == ("419263009", ("environment",))


# --- unresolved drug allergies are shown ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allergy", "shown"),
    [
        # A known drug outside the cross-reactivity groups is resolved: rule.allergy-same-drug checks it.
        (drug_allergy("doxy", "3640", "Doxycycline"), False),
        (text_allergy("codeine-ish", "Tylenol #3"), False),  # a brand of acetaminophen with codeine
        (text_allergy("unknown-brand", "Zorblax #3"), True),  # medication category, unknown text
        (text_allergy("unknown", "Zorblax", category=None), True),  # no category: cannot tell, shown
        (text_allergy("pcn", "PCN"), False),  # resolved
        (text_allergy("nkda", "NKDA", category=None), False),
        (text_allergy("strawberry", "Strawberries", category="food"), False),
        (coded_allergy("pollen", "419263009", "Allergy to tree pollen", "food"), False),
        (coded_allergy("latex", "300916003", "Latex allergy", "food"), False),
        (
            text_allergy("iron", "Ferrous sulfate", category="food"),
            False,
        ),  # a known drug, whatever the category
        (text_allergy("iron-brand", "Feosolix", category="medication"), True),  # filed as a drug, unknown
    ],
)
def test_unresolved_drug_allergy_card(allergy: JsonDict, shown: bool) -> None:
    found = findings(Chart(resources=(allergy,)), catalog.allergy_unresolved)
    if not shown:
        assert found == []
        return
    ((rule_id, severity, summary),) = found
    assert (rule_id, severity) == ("rule.allergy-unresolved", "info")
    assert "could not be matched to a drug class" in summary and "consider" in summary
    assert len(summary) < 140


def test_unresolved_card_keeps_its_option_with_a_long_name() -> None:
    long_name = "Investigational compound " + "x" * 120
    ((_, _, summary),) = findings(
        Chart(resources=(text_allergy("long", long_name),)), catalog.allergy_unresolved
    )
    assert len(summary) < 140 and summary.endswith("consider checking by hand")
    assert "Investigational compound" in summary


# --- the cases from the issue ---------------------------------------------------------------------------


def amoxicillin_clavulanate_draft() -> JsonDict:
    return medication_request(
        "draft-augmentin",
        PATIENT_ID,
        "617296",
        "Amoxicillin 875 MG / Clavulanate Potassium 125 MG Oral Tablet",
        status="draft",
    )


def test_pcn_anaphylaxis_with_amoxicillin_clavulanate_at_order_sign_is_critical() -> None:
    pcn = text_allergy("pcn", "PCN")
    pcn["criticality"] = "high"
    found = findings(
        Chart(resources=(pcn,), drafts=(amoxicillin_clavulanate_draft(),)), catalog.allergy_conflict
    )
    assert [(rule_id, severity) for rule_id, severity, _ in found] == [
        ("rule.allergy-same-class", "critical")
    ]
    assert "PCN" in found[0][2] and "amoxicillin" in found[0][2]


@pytest.mark.parametrize(
    ("display", "expected"),
    [("HIT", {"heparin"}), ("HIT 2024, PF4 positive", {"heparin"}), ("Whitening strips", set())],
)
def test_hit_is_a_heparin_allergy(display: str, expected: set[str]) -> None:
    # Heparin-induced thrombocytopenia bars every heparin, the low-molecular-weight ones included.
    assert resolve(text(display)).classes == frozenset(expected)


def test_hit_bars_enoxaparin_at_order_sign() -> None:
    chart = Chart(resources=(text_allergy("hit", "HIT"),), drafts=(draft("enoxaparin"),))
    assert [(rule_id, severity) for rule_id, severity, _ in findings(chart, catalog.allergy_same_drug)] == [
        ("rule.allergy-same-drug", "critical")
    ]


def test_pcna_with_amoxicillin_clavulanate_is_silent() -> None:
    chart = Chart(
        resources=(text_allergy("pcna", "PCNA", category=None),), drafts=(amoxicillin_clavulanate_draft(),)
    )
    assert findings(chart, catalog.allergy_conflict) == []


def test_amoxicillin_clavulanate_product_is_mapped() -> None:
    assert terminology.ingredients_of("617296", "") == ("amoxicillin", "clavulanate")


@pytest.mark.parametrize(
    ("allergy", "expected"),
    [
        (text_allergy("asa", "ASA"), [("rule.allergy-cross-reactivity", "critical")]),
        (drug_allergy("aspirin", "1191", "Aspirin"), [("rule.allergy-cross-reactivity", "critical")]),
        (text_allergy("asap", "ASAP"), []),
    ],
)
def test_asa_allergy_with_ibuprofen_is_a_critical_cross_reaction(
    allergy: JsonDict, expected: list[Any]
) -> None:
    found = findings(Chart(resources=(allergy,), drafts=(draft("ibuprofen"),)), catalog.allergy_conflict)
    assert [(rule_id, severity) for rule_id, severity, _ in found] == expected


def test_sulfa_allergy_with_co_trimoxazole_but_not_ferrous_sulfate() -> None:
    sulfa = text_allergy("sulfa", "Sulfa")
    found = findings(Chart(resources=(sulfa,), drafts=(draft("co-trimoxazole"),)), catalog.allergy_conflict)
    assert [(rule_id, severity) for rule_id, severity, _ in found] == [
        ("rule.allergy-same-class", "critical")
    ]
    iron = medication_request(
        "draft-iron", PATIENT_ID, "310325", "Ferrous sulfate 325 MG Oral Tablet", status="draft"
    )
    assert findings(Chart(resources=(sulfa,), drafts=(iron,)), catalog.allergy_conflict) == []


# --- the data file --------------------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return loaded


def test_data_file_loads_names_sources_and_only_checked_classes() -> None:
    data = allergens.allergens()
    assert parse_allergens(_raw()) == data
    assert _raw()["sources"]
    targets = {*data.words.values(), *(c for codes in data.codes.values() for c in codes.values())}
    # Heparin (HIT) and ACE inhibitors (ACEI) are checked by the same-class allergy rule, not by the
    # cross-reactivity groups.
    assert targets == CHECKED | {"heparin", "ace-inhibitor"}


def test_snomed_codes_carry_valid_check_digits() -> None:
    data = allergens.allergens()
    listed = (
        set(data.codes["snomed"])
        | set(data.non_drug["snomed"])
        | data.drug_unspecified["snomed"]
        | data.none_known_codes["snomed"]
    )
    assert listed and all(_snomed_ok(code) for code in listed)


def _edit(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(_raw())
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**_raw(), "extra": {}}, "unknown sections ['extra']"),
        ({k: v for k, v in _raw().items() if k != "words"}, "missing sections ['words']"),
        (_edit(("words", "pcn"), "penicilin"), "is not a class key"),
        (_edit(("words", "PCN"), "penicillin"), "one lower-case token"),
        (_edit(("codes", "rxnorm", "7980"), "penicilin"), "not one of the known keys"),
        (_edit(("codes", "rxnorm", "79-80"), "penicillin"), "not a numeric code"),
        (_edit(("codes", "icd10"), {}), "unknown code systems"),
        (_edit(("non_drug", "snomed", "419263009"), "pollen"), "not one of the known keys"),
        (_edit(("non_drug", "snomed", "91936005"), "food"), "both as drugs and as non-drug"),
        (_edit(("sources",), []), "name at least one source"),
        (_edit(("none_known", "snomed"), ["NKA"]), "not numeric codes"),
    ],
)
def test_loader_rejects_bad_data(document: dict[str, Any], message: str) -> None:
    with pytest.raises(AllergenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_allergens(document)

"""Machine-readable assertions on knowledge entries: schema, coverage of every drug entry, precision checks."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from plugin.knowledge import (
    ASSERTED_INTENTS,
    Assertion,
    KnowledgeBase,
    KnowledgeBaseError,
    KnowledgeEntry,
    load_from,
    load_knowledge_base,
)
from plugin.terminology import CLASS_KEYS, classes_of, is_known_ingredient, value_set_names

pytestmark = pytest.mark.unit

PACKAGE = resources.files("plugin.knowledge")

# Entries that name a drug or class yet carry no assertion, each with the reason no assertion can say what
# the statement says without claiming more. A new drug entry must carry an assertion or join this list.
ALLOW_LIST: dict[str, str] = {
    # Conditions assertions cannot express: scores, durations, gestation, indications, computed clearances.
    "kb.bisphosphonate-duration": "a drug holiday after 5 years depends on fracture risk, which the chart does not grade",
    "kb.aztreonam-ceftazidime-side-chain": "the condition is an allergy to one named drug (ceftazidime or "
    "aztreonam); an assertion's allergies name classes, and the cephalosporin class would bar aztreonam for all",
    "kb.clopidogrel-cyp2c19": "the condition is a CYP2C19 genotype result, which no value set or lab holds; a "
    "bare 'supports start of prasugrel when coronary disease' would claim far more",
    "kb.apixaban-dose-criteria": "dose reduction hinges on age, weight and creatinine together",
    "kb.bictegravir-renal-dose": "applies below creatinine clearance 30 only, and not on haemodialysis; the ckd "
    "value set holds milder impairment, where the tablet is given",
    "kb.phenytoin-azole-antifungals": "the label asks for phenytoin levels, not avoidance; an 'opposes start' "
    "would claim more",
    "kb.methadone-enzyme-inducers": "the label adjusts the methadone dose under an inducer rather than avoiding it",
    "kb.vka-fibrate": "the combination is usable with a lower warfarin dose and closer INRs; an 'opposes start' "
    "would claim more than the label's caution",
    "kb.duplicate-systemic-corticosteroids": "the corticosteroid class holds inhaled, nasal and skin steroids, "
    "which are no duplicate of an oral one; assertions cannot say 'systemic only'",
    "kb.fluoroquinolone-dysglycaemia": "the labels ask for close glucose monitoring, not avoidance; an 'opposes "
    "start' of a fluoroquinolone with a sulfonylurea would claim more",
    "kb.fentanyl-patch-opioid-tolerant": "the contraindication turns on opioid tolerance (60 MME a day for a "
    "week), which no condition or lab expresses",
    "kb.beers-amiodarone-first-line-af": "the advice turns on amiodarone being first-line and on heart "
    "failure being absent; assertions have no 'unless' and the chart does not say which line it is",
    "kb.beers-nitrofurantoin-crcl-30": "applies below creatinine clearance 30 and to long-term suppression",
    "kb.oxaliplatin-renal-dose": "applies below creatinine clearance 30 only; the ckd value set holds mild "
    "and moderate impairment, where the label says no adjustment",
    "kb.doac-mechanical-heart-valve": "prosthetic-heart-valve (Z95.2) does not tell mechanical from "
    "bioprosthetic valves, where DOACs are acceptable",
    "kb.valproate-pregnancy-prevention-programme": "conditions are age, specialist sign-off and a prevention "
    "programme",
    "kb.tetracycline-children-under-8": "avoidance has named exceptions (rickettsial disease, anthrax)",
    "kb.fluoroquinolone-children": "limited to named indications (complicated UTI, anthrax, plague)",
    "kb.fluoroquinolone-disabling-adverse-effects": "restriction depends on the indication (sinusitis, "
    "bronchitis, uncomplicated UTI)",
    "kb.beers-aspirin-primary-prevention": "primary prevention is the absence of ASCVD, which `when` cannot "
    "say; a supported stop would also let protected post-stroke aspirin go",
    "kb.uspstf-aspirin-primary-prevention": "primary prevention and a 10-year risk estimate",
    "kb.uspstf-statin-primary-prevention-40-75": "needs a 10-year cardiovascular risk estimate",
    "kb.ldl-190-high-intensity-statin": "condition is an LDL cholesterol value",
    "kb.ada-2025-hypoglycaemia-levels": "condition is a hypoglycaemia event, which no value set holds",
    "kb.ada-2025-glycaemic-goals": "condition is an HbA1c below goal",
    "kb.ada-2025-older-adults-deintensify": "condition is an HbA1c below the individual goal",
    "kb.ada-hypoglycaemia-ask-each-visit": "asks about symptoms; a glucose only when a low reading is on record",
    "kb.hypertension-follow-up-until-controlled": "condition is a blood pressure above goal",
    "kb.bisphosphonate-treatment-duration": "holiday depends on treatment duration and fracture risk",
    "kb.cdc-opioid-mme-2022": "precautions start at a computed 50 MME a day",
    # Combinations `with` cannot express: it is any-of, and it also matches the drug acted on.
    "kb.nsaid-acei-arb-diuretic-triple-whammy": "needs an ACE inhibitor or ARB and a diuretic together",
    "kb.beers-cns-active-combination": "needs three or more CNS-active drugs",
    "kb.qt-prolonging-drug-combination": "needs a second QT-prolonging drug besides the one acted on",
    "kb.duplicate-nsaids": "needs a second NSAID besides the one acted on",
    "kb.duplicate-proton-pump-inhibitors": "needs a second PPI besides the one acted on",
    "kb.duplicate-same-ingredient": "needs a second product of the same ingredient",
    # Allergy records are not value sets; the allergy rules check these.
    "kb.penicillin-allergy-cephalosporin": "condition is an allergy record and its reaction type",
    "kb.penicillin-allergy-delabelling": "condition is a low-risk allergy history",
    "kb.sulfonamide-antibiotic-allergy": "condition is an allergy record",
    "kb.sulfonamide-non-antibiotic-cross-reactivity": "condition is an allergy record",
    "kb.nsaid-aspirin-hypersensitivity": "condition is an allergy record",
    "kb.asthma-nsaid-history": "condition is a past reaction to NSAIDs",
    # Information, counselling or timing only: no start, stop, dose change or test is recommended.
    "kb.tramadol-serotonergic": "describes the risk without recommending an action",
    "kb.triptan-ssri-snri": "not contraindicated; counselling only",
    "kb.ssri-bleeding-with-nsaid-anticoagulant": "gastroprotection is advised without a drug; counselling",
    "kb.opioid-cns-depressants": "advises caution and weighing benefit, names no action",
    "kb.ibuprofen-low-dose-aspirin": "dose timing",
    "kb.chelation-fluoroquinolone-tetracycline": "dose timing",
    "kb.integrase-inhibitor-polyvalent-cations": "dose timing",
    "kb.bisphosphonate-oral-administration": "administration instructions",
    "kb.asthma-saba-overuse": "prompts a review of treatment, names no action",
}

# Products whose own ingredients meet an assertion's `with`, where that is the clinical point.
SELF_MET: dict[tuple[str, tuple[str, ...]], str] = {
    ("kb.misoprostol-pregnancy", ("diclofenac", "misoprostol")): "misoprostol given with an NSAID",
}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


def _asserted(kb: KnowledgeBase) -> Iterator[tuple[KnowledgeEntry, Assertion]]:
    for entry in kb:
        for assertion in entry.assertions:
            yield entry, assertion


def _json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PACKAGE.joinpath(name).read_text(encoding="utf-8"))
    return loaded


# --- the schema ---------------------------------------------------------------------------------------------

ENTRY: dict[str, Any] = {
    "id": "kb.test-assertions",
    "title": "A test entry",
    "statement": "A statement about gabapentin dosing in kidney disease.",
    "kind": "drug-safety",
    "source": {
        "organisation": "FDA",
        "document": "Example label",
        "version": "2024",
        "url": "https://x.org/a",
    },
    "applies_to": {"ingredients": ["gabapentin"], "value_sets": ["ckd"]},
}


def _load(tmp_path: Path, *assertions: object) -> KnowledgeEntry:
    path = tmp_path / "entries_test.json"
    path.write_text(json.dumps({"entries": [{**ENTRY, "assertions": list(assertions)}]}), encoding="utf-8")
    entry = load_from([path]).get(ENTRY["id"])
    assert entry is not None
    return entry


def test_the_new_intents_are_asserted() -> None:
    assert ASSERTED_INTENTS == ("start", "stop", "change-dose", "order-test")


def test_change_dose_carries_a_direction(tmp_path: Path) -> None:
    reduce = {"stance": "supports", "intent": "change-dose", "drugs": ["gabapentin"], "direction": "reduce"}
    either = {"stance": "supports", "intent": "change-dose", "drugs": ["gabapentin"], "when": ["ckd"]}
    first, second = _load(tmp_path, reduce, either).assertions
    assert (first.intent, first.drugs, first.direction, first.tests) == (
        "change-dose",
        ("gabapentin",),
        "reduce",
        (),
    )
    assert second.direction == "any"
    assert first.describe() == "supports change-dose (reduce) of gabapentin"
    assert second.describe() == "supports change-dose of gabapentin when ckd"


def test_order_test_names_loinc_codes_and_optionally_drugs(tmp_path: Path) -> None:
    monitored = {
        "stance": "supports",
        "intent": "order-test",
        "drugs": ["spironolactone"],
        "tests": ["2823-3"],
    }
    standing = {"stance": "supports", "intent": "order-test", "tests": ["4548-4"], "when": ["diabetes"]}
    first, second = _load(tmp_path, monitored, standing).assertions
    assert (first.tests, first.drugs, first.direction) == (("2823-3",), ("spironolactone",), "any")
    assert (second.tests, second.drugs, second.when) == (("4548-4",), (), ("diabetes",))
    assert first.describe() == "supports order-test of 2823-3 for spironolactone"
    assert second.describe() == "supports order-test of 4548-4 when diabetes"


def test_the_dataclass_keeps_its_old_shape() -> None:
    # Positional construction and describe() of start/stop are what governance and its tests already use.
    old = Assertion("opposes", "stop", ("ics",), ("asthma",), ("laba",))
    assert (old.direction, old.tests) == ("any", ())
    assert old.describe() == "opposes stop of ics when asthma with laba"


def _assertion(**fields: object) -> dict[str, object]:
    return {"stance": "supports", "intent": "change-dose", "drugs": ["gabapentin"], **fields}


REFUSED: list[tuple[str, list[object], str]] = [
    ("unknown intent", [_assertion(intent="taper")], "intent one of ('start', 'stop', 'change-dose', 'order-test')"),
    ("direction on stop", [_assertion(intent="stop", direction="reduce")], "direction is only for change-dose, not stop"),
    ("direction on order-test", [_assertion(intent="order-test", tests=["2823-3"], direction="any")], "direction is only for change-dose, not order-test"),
    ("unknown direction", [_assertion(direction="halve")], "direction is one of ('reduce', 'increase', 'any')"),
    ("direction not a string", [_assertion(direction=["reduce"])], "direction is one of"),
    ("tests on change-dose", [_assertion(tests=["2823-3"])], "tests is only for order-test, not change-dose"),
    ("tests on start", [_assertion(intent="start", tests=[])], "tests is only for order-test, not start"),
    ("order-test without tests", [_assertion(intent="order-test")], "tests must name a LOINC code for order-test"),
    ("order-test with no tests", [_assertion(intent="order-test", tests=[])], "tests must name a LOINC code"),
    ("tests not a list", [_assertion(intent="order-test", tests="2823-3")], "tests must be a list of names"),
    ("tests not names", [_assertion(intent="order-test", tests=[2823])], "tests must be a list of names"),
    ("test malformed", [_assertion(intent="order-test", tests=["2823"])], "tests: malformed LOINC codes ['2823']"),
    ("test check digit", [_assertion(intent="order-test", tests=["2823-4"])], "malformed LOINC codes ['2823-4']"),
    ("tests repeat", [_assertion(intent="order-test", tests=["2823-3", "2823-3"])], "tests repeats a value"),
    ("change-dose lacks drugs", [{"stance": "supports", "intent": "change-dose"}], "assertions[0] lacks drugs"),
    ("change-dose names nothing", [_assertion(drugs=[])], "drugs names nothing"),
    ("order-test unknown drug", [_assertion(intent="order-test", tests=["2823-3"], drugs=["zz"])], "drugs: unknown drug keys ['zz']"),
    ("order-test unknown value set", [_assertion(intent="order-test", tests=["2823-3"], when=["kidney"])], "when: unknown value sets ['kidney']"),
    ("drugs repeat", [_assertion(drugs=["gabapentin", "gabapentin"])], "drugs repeats a value"),
    ("assertion repeated", [_assertion(), _assertion()], "assertions repeat an assertion"),
    ("second assertion broken", [_assertion(), _assertion(direction="up")], "assertions[1].direction is one of"),
    ("labs not a list", [_assertion(labs={"analyte": "egfr", "below": 30})], "labs must be a list"),
    ("lab without a bound", [_assertion(labs=[{"analyte": "egfr"}])], "labs[0] is {'analyte'"),
    ("lab with two bounds", [_assertion(labs=[{"analyte": "egfr", "below": 30, "at_or_above": 15}])], "labs[0] is"),
    ("lab with an extra key", [_assertion(labs=[{"analyte": "egfr", "below": 30, "unit": "mL/min"}])], "labs[0] is"),
    ("lab not an object", [_assertion(labs=["egfr<30"])], "labs[0] is"),
    ("lab unknown analyte", [_assertion(labs=[{"analyte": "kidney", "below": 30}])], "unknown analyte 'kidney'"),
    ("lab bound not a number", [_assertion(labs=[{"analyte": "egfr", "below": "30"}])], "the bound must be a positive number"),
    ("lab bound true", [_assertion(labs=[{"analyte": "egfr", "below": True}])], "the bound must be a positive number"),
    ("lab bound zero", [_assertion(labs=[{"analyte": "egfr", "below": 0}])], "the bound must be a positive number"),
    ("allergies unknown class", [_assertion(allergies=["pcn"])], "allergies: unknown drug classes ['pcn']"),
    ("allergies not a list", [_assertion(allergies="penicillin")], "allergies must be a list of names"),
]  # fmt: skip


def test_lab_and_allergy_conditions_load_and_describe_themselves(tmp_path: Path) -> None:
    path = tmp_path / "entries_conditions.json"
    raw = _assertion(labs=[{"analyte": "egfr", "below": 30}, {"analyte": "potassium", "at_or_above": 5.5}])
    allergic = _assertion(intent="stop", drugs=["penicillin"], allergies=["penicillin"])
    path.write_text(json.dumps({"entries": [{**ENTRY, "assertions": [raw, allergic]}]}), encoding="utf-8")
    entry = load_from([path]).get(ENTRY["id"])
    assert entry is not None
    first, second = entry.assertions
    assert first.labs == (("egfr", "below", 30.0), ("potassium", "at_or_above", 5.5))
    assert "when egfr < 30, potassium >= 5.5" in first.describe()
    assert second.allergies == ("penicillin",)
    assert second.describe() == "supports stop of penicillin when penicillin allergy"


@pytest.mark.parametrize(("case", "assertions", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_loader_refuses_a_broken_assertion(
    tmp_path: Path, case: str, assertions: list[object], message: str
) -> None:
    path = tmp_path / "entries_bad.json"
    path.write_text(json.dumps({"entries": [{**ENTRY, "assertions": assertions}]}), encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=re.escape(message)) as caught:
        load_from([path])
    assert (caught.value.file, caught.value.entry_id) == ("entries_bad.json", ENTRY["id"])


# --- the packaged entries -----------------------------------------------------------------------------------


def test_packaged_assertions_load_and_name_known_terms(kb: KnowledgeBase) -> None:
    value_sets = value_set_names()
    found = list(_asserted(kb))
    assert len(found) >= 250
    for entry, assertion in found:
        for key in (*assertion.drugs, *assertion.with_drugs):
            assert key in CLASS_KEYS or is_known_ingredient(key), (entry.id, key)
        assert set(assertion.when) <= value_sets, entry.id


def test_every_drug_entry_asserts_or_is_allow_listed(kb: KnowledgeBase) -> None:
    silent = {e.id for e in kb if (e.applies_to.ingredients or e.applies_to.classes) and not e.assertions}
    assert not silent - ALLOW_LIST.keys(), (
        f"drug entries without assertions: {sorted(silent - ALLOW_LIST.keys())}"
    )


def test_the_allow_list_is_current(kb: KnowledgeBase) -> None:
    for entry_id, reason in ALLOW_LIST.items():
        entry = kb.get(entry_id)
        assert entry is not None, entry_id
        assert entry.applies_to.ingredients or entry.applies_to.classes, entry_id
        assert not entry.assertions, f"{entry_id} now asserts: take it off the allow-list"
        assert reason.strip(), entry_id


def test_tests_are_loinc_codes_the_knowledge_base_knows(kb: KnowledgeBase) -> None:
    value_set_loinc = {
        name: frozenset(members.get("loinc", ()))
        for name, members in _json("terminology.json")["value_sets"].items()
    }
    known = {c for e in kb for c in e.applies_to.loinc} | {
        c for codes in value_set_loinc.values() for c in codes
    }
    for entry, assertion in _asserted(kb):
        assert set(assertion.tests) <= known, (entry.id, assertion.tests)
        if entry.kind == "monitoring":
            # A monitoring entry orders what it monitors, nothing else.
            own = set(entry.applies_to.loinc).union(
                *(value_set_loinc[v] for v in entry.applies_to.value_sets)
            )
            assert set(assertion.tests) <= own, (entry.id, assertion.tests)


def _products() -> set[tuple[str, ...]]:
    """Every ingredient alone and every multi-ingredient product the terminology and medication names know."""
    terms, names = _json("terminology.json"), _json("medications.json")
    products: set[tuple[str, ...]] = {(name,) for name in terms["classes"]}
    for table in (terms["rxnorm"], names["product_rxcui"], names["unverified_rxcui"], names["brands"]):
        products |= {tuple(sorted(ingredients)) for ingredients in table.values()}
    return products


def test_no_assertion_is_met_by_the_product_it_acts_on(kb: KnowledgeBase) -> None:
    # Governance reads `with` among the drugs taken, the stopped or changed product included: a product
    # whose own keys meet both `drugs` and `with` would support itself ("stop ARNI with ARNI").
    products = [(p, set(p) | {c for i in p for c in classes_of(i)}) for p in _products()]
    met = {
        (entry.id, product)
        for entry, assertion in _asserted(kb)
        if assertion.intent != "start" and assertion.with_drugs
        for product, keys in products
        if keys & set(assertion.drugs) and keys & set(assertion.with_drugs)
    }
    assert met == set(SELF_MET)


def test_a_supported_stop_of_a_protected_therapy_is_conditional(kb: KnowledgeBase) -> None:
    # A supporting stop lets a protected therapy go (governance check_safety): never without a condition.
    protected = {
        key
        for therapy in _json("protected_therapies.json")["therapies"]
        for key in (*therapy["classes"], *therapy["ingredients"])
    }
    for entry, assertion in _asserted(kb):
        if assertion.stance == "supports" and assertion.intent == "stop":
            keys = set(assertion.drugs) | {c for d in assertion.drugs for c in classes_of(d)}
            if keys & protected:
                assert assertion.when or assertion.with_drugs, (entry.id, assertion.describe())


def test_no_veto_or_stop_catches_low_dose_aspirin_by_the_nsaid_class(kb: KnowledgeBase) -> None:
    # Aspirin is in the nsaid class; only entries about anticoagulant or methotrexate bleeding name the class
    # in a stop, and no condition entry (kidney, heart failure, ulcer, pregnancy) vetoes or stops it.
    naming_the_class = {
        entry.id
        for entry, assertion in _asserted(kb)
        if "nsaid" in assertion.drugs and assertion.intent in ("start", "stop")
    }
    assert naming_the_class == {"kb.warfarin-nsaid-bleeding", "kb.methotrexate-nsaid"}


# --- clinical spot checks -----------------------------------------------------------------------------------


def _has(kb: KnowledgeBase, entry_id: str, **fields: object) -> bool:
    entry = kb.get(entry_id)
    assert entry is not None, entry_id
    return any(all(getattr(a, k) == v for k, v in fields.items()) for a in entry.assertions)


@pytest.mark.parametrize(
    ("entry_id", "fields"),
    [
        # Methotrexate and NSAIDs: the NSAID goes (a substitute stops it), and blood counts and kidney follow.
        ("kb.methotrexate-nsaid", {"stance": "supports", "intent": "stop", "drugs": ("nsaid",), "with_drugs": ("methotrexate",)}),
        ("kb.methotrexate-nsaid", {"intent": "order-test", "tests": ("6690-2", "2160-0"), "drugs": ("methotrexate",)}),
        ("kb.af-anticoagulation-cha2ds2-vasc", {"stance": "opposes", "intent": "stop", "drugs": ("anticoagulant",), "when": ("atrial-fibrillation",)}),
        ("kb.potassium-monitoring-raas", {"stance": "supports", "intent": "order-test", "tests": ("2823-3", "2160-0")}),
        ("kb.acei-arb-potassium-sparing-diuretic", {"intent": "order-test", "tests": ("2823-3", "2160-0")}),
        ("kb.gabapentin-renal-dose", {"intent": "change-dose", "drugs": ("gabapentin",), "direction": "reduce", "when": ("ckd",)}),
        ("kb.warfarin-amiodarone", {"intent": "change-dose", "drugs": ("warfarin",), "direction": "reduce", "with_drugs": ("amiodarone",)}),
        ("kb.warfarin-inr-monitoring", {"intent": "order-test", "drugs": ("warfarin",), "tests": ("6301-6",)}),
        ("kb.acei-arb-pregnancy", {"stance": "opposes", "intent": "start", "drugs": ("ace-inhibitor", "arb"), "when": ("pregnancy",)}),
        ("kb.ssri-snri-maoi-contraindicated", {"stance": "opposes", "intent": "start", "drugs": ("maoi",), "with_drugs": ("ssri", "snri")}),
        ("kb.protected-insulin-type-1-diabetes", {"stance": "opposes", "intent": "stop", "drugs": ("insulin",), "when": ("type-1-diabetes",)}),
        ("kb.heart-failure-sglt2-inhibitor", {"stance": "supports", "intent": "start", "when": ("heart-failure",)}),
        ("kb.ascvd-high-intensity-statin", {"intent": "change-dose", "direction": "increase", "when": ("coronary-heart-disease",)}),
        ("kb.ada-hba1c-testing-frequency", {"intent": "order-test", "drugs": (), "tests": ("4548-4",), "when": ("diabetes",)}),
        ("kb.isotretinoin-pregnancy", {"intent": "order-test", "drugs": ("isotretinoin",), "tests": ("2106-3", "2118-8")}),
    ],
)  # fmt: skip
def test_spot_check(kb: KnowledgeBase, entry_id: str, fields: dict[str, object]) -> None:
    assert _has(kb, entry_id, **fields), (entry_id, [a.describe() for a in kb.get(entry_id).assertions])  # type: ignore[union-attr]


def test_protected_therapy_entries_oppose_their_stop(kb: KnowledgeBase) -> None:
    for therapy in _json("protected_therapies.json")["therapies"]:
        entry = kb.get(therapy["knowledge"])
        assert entry is not None
        opposed = {
            (d, w)
            for a in entry.assertions
            if a.stance == "opposes" and a.intent == "stop"
            for d in a.drugs
            for w in a.when
        }
        for key in (*therapy["classes"], *therapy["ingredients"]):
            assert any((d, w) in opposed for d in {key, *classes_of(key)} for w in therapy["conditions"]), (
                entry.id,
                key,
            )


def test_an_opposing_condition_entry_spares_aspirin_and_vetoes_naproxen(kb: KnowledgeBase) -> None:
    entry = kb.get("kb.nsaid-heart-failure")
    assert entry is not None
    vetoes = [a for a in entry.assertions if a.stance == "opposes" and a.intent == "start"]
    assert vetoes and all(a.when == ("heart-failure",) for a in vetoes)
    assert any("naproxen" in a.drugs for a in vetoes)
    assert not any({"aspirin", "nsaid", "salicylate"} & set(a.drugs) for a in vetoes)


def test_an_entry_without_an_action_carries_no_assertion(kb: KnowledgeBase) -> None:
    # The statement only counsels: an assertion here would be support the passage does not give.
    entry = kb.get("kb.triptan-ssri-snri")
    assert entry is not None and entry.assertions == ()


def test_assertions_change_the_knowledge_base_version(tmp_path: Path, kb: KnowledgeBase) -> None:
    names = _json("manifest.json")["files"]
    name = next(n for n in names if '"assertions"' in PACKAGE.joinpath(n).read_text(encoding="utf-8"))
    document = json.loads(PACKAGE.joinpath(name).read_text(encoding="utf-8"))
    changed = copy.deepcopy(document)
    target = next(e for e in changed["entries"] if e.get("assertions"))
    target["assertions"] = target["assertions"][:-1] if len(target["assertions"]) > 1 else []
    (tmp_path / name).write_text(json.dumps(changed), encoding="utf-8")
    paths = [tmp_path / n if n == name else PACKAGE.joinpath(n) for n in names]
    assert load_from(paths, release=kb.version.split("+")[0]).version != kb.version

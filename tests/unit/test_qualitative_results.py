"""Qualitative lab answers (HLA alleles, hepatitis B serology) in the context, and the rules that read them:
a positive result, a negative one, an indeterminate one and none at all each lead somewhere different."""

from __future__ import annotations

import pytest

from plugin.context import codes
from plugin.context.render import render
from plugin.rules import label_checks
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import JsonDict
from tests.support.rule_cases import Chart, draft, med, qualitative

pytestmark = pytest.mark.unit

HLA_B5701 = "HLA-B*57:01 [Presence]"
HBSAG = "Hepatitis B virus surface Ag [Presence] in Serum or Plasma by Immunoassay"
ANTI_HBC = "Hepatitis B virus core Ab [Presence] in Serum"


def run(rule: object, *resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> list[Finding]:
    built = Chart(age=40, resources=resources, drafts=drafts).build()
    return list(rule(RuleFacts.of(built.context)))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("codes_", "texts", "answer"),
    [
        (["10828004"], [], "positive"),
        (["260385009"], [], "negative"),
        (["POS"], [], "positive"),
        ([], ["Not detected"], "negative"),
        ([], ["Positive (HLA-B*57:01 detected)"], "positive"),
        ([], ["Reactive"], "positive"),
        ([], ["Non-reactive"], "negative"),
        ([], ["Equivocal, repeat in 2 weeks"], None),
        (["10828004", "260385009"], [], None),
    ],
)
def test_an_answer_is_positive_negative_or_neither(
    codes_: list[str], texts: list[str], answer: str | None
) -> None:
    assert codes.qualitative_answer(codes_, texts) == answer


def test_results_are_read_by_loinc_or_by_name_newest_first_and_shown_to_the_model() -> None:
    built = Chart(
        resources=(
            qualitative(HBSAG, "negative", 40, "hbsag", loinc="5196-1"),
            qualitative(ANTI_HBC, "Reactive", 40, "anti-hbc"),  # no LOINC: found by its name
            qualitative(HLA_B5701, "negative", 400, "hla-old"),
            qualitative(HLA_B5701, "positive", 20, "hla-new"),
            qualitative("Ferritin interpretation", "positive", 20, "other"),  # not a test the rules read
        )
    ).build()
    results = built.context.results
    assert [(r.test, r.result) for r in results] == [
        ("hla-b5701", "positive"),
        ("anti-hbc", "positive"),
        ("hbsag", "negative"),
        ("hla-b5701", "negative"),
    ]
    assert (built.handles.resolve(results[0].handle) or "").endswith("Observation/hla-new")
    summary = render(built.context).text
    assert f"{results[0].handle} HLA-B*57:01: positive" in summary and "TEST RESULTS" in summary


@pytest.mark.parametrize(
    ("resources", "severity"),
    [
        ((qualitative(HLA_B5701, "positive"),), "critical"),
        ((qualitative(HLA_B5701, "negative"),), None),
        # An indeterminate result is not a negative one: a new order still asks for a conclusive test.
        ((qualitative(HLA_B5701, "Inconclusive"),), "warning"),
        ((), "warning"),  # a new abacavir order with no result on record: test first
    ],
)
def test_abacavir_is_contraindicated_by_a_positive_hla_b5701(
    resources: tuple[JsonDict, ...], severity: str | None
) -> None:
    found = run(label_checks.ABACAVIR_HLA_B5701, *resources, drafts=(draft("triumeq"),))
    assert (found[0].severity if found else None) == severity


def test_abacavir_already_taken_without_a_result_on_record_is_not_asked_about() -> None:
    assert not run(label_checks.ABACAVIR_HLA_B5701, med("triumeq"))
    assert not run(label_checks.ABACAVIR_HLA_B5701, qualitative(HLA_B5701, "positive"), med("biktarvy"))


@pytest.mark.parametrize(
    ("rule", "drug", "allele"),
    [
        (label_checks.CARBAMAZEPINE_HLA_B1502, "carbamazepine", "HLA-B*15:02 genotype"),
        (label_checks.ALLOPURINOL_HLA_B5801, "allopurinol", "HLA-B 58:01"),
    ],
)
def test_carbamazepine_and_allopurinol_with_their_alleles(rule: object, drug: str, allele: str) -> None:
    (finding,) = run(rule, qualitative(allele, "positive"), drafts=(draft(drug),))
    assert finding.severity == "critical"
    assert not run(rule, qualitative(allele, "negative"), drafts=(draft(drug),))
    assert not run(rule, drafts=(draft(drug),))  # testing is by ancestry: no result is not asked about here


@pytest.mark.parametrize(
    ("resources", "asked"),
    [
        (
            (
                qualitative(ANTI_HBC, "positive", loinc="16933-4"),
                qualitative(HBSAG, "negative", loinc="5196-1"),
            ),
            "prophylaxis",
        ),
        ((qualitative(HBSAG, "positive", loinc="5196-1"),), "prophylaxis"),
        ((qualitative(ANTI_HBC, "negative"), qualitative(HBSAG, "negative")), None),
        ((qualitative(ANTI_HBC, "positive"), med("entecavir")), None),
    ],
)
def test_an_anti_cd20_antibody_with_hepatitis_b_markers_needs_prophylaxis(
    resources: tuple[JsonDict, ...], asked: str | None
) -> None:
    found = run(label_checks.anti_cd20_hepatitis_b, med("rituximab"), *resources)
    assert (asked in found[0].summary if found else None) == (True if asked else None)


def test_a_new_anti_cd20_order_without_serology_asks_for_screening() -> None:
    (finding,) = run(
        label_checks.anti_cd20_hepatitis_b, qualitative(HBSAG, "negative"), drafts=(draft("rituximab"),)
    )
    assert "anti-HBc" in finding.summary and "HBsAg" not in finding.summary.split(" on record")[0].replace(
        "No anti-HBc", ""
    )
    assert finding.order_lab is not None and finding.order_lab.loinc == "5196-1"
    assert not run(label_checks.anti_cd20_hepatitis_b, med("rituximab"))  # an established course is not asked


def test_an_indeterminate_core_antibody_is_no_screening() -> None:
    chart = (qualitative(HBSAG, "negative"), qualitative(ANTI_HBC, "Indeterminate, repeat advised"))
    (finding,) = run(label_checks.anti_cd20_hepatitis_b, *chart, drafts=(draft("rituximab"),))
    assert finding.summary.startswith("No anti-HBc on record before rituximab")


QUANTIFERON = "QuantiFERON-TB Gold Plus"


@pytest.mark.parametrize(
    ("resources", "drafted", "said"),
    [
        ((), True, "No TB screen on record"),  # a first dose with no screen: test first
        ((qualitative(QUANTIFERON, "Indeterminate"),), True, "No conclusive TB screen"),
        ((qualitative(QUANTIFERON, "negative"),), True, None),
        ((), False, None),  # already taken: the screen was the starting prescriber's
        ((qualitative(QUANTIFERON, "positive"),), False, "Positive TB screen"),
        ((qualitative("T-SPOT.TB", "Positive"), med("isoniazid")), False, None),  # latent TB being treated
    ],
)
def test_a_tnf_inhibitor_needs_a_tuberculosis_screen_and_a_positive_one_treated(
    resources: tuple[JsonDict, ...], drafted: bool, said: str | None
) -> None:
    rule = label_checks.tuberculosis_screen_before_immunosuppression
    found = (
        run(rule, *resources, drafts=(draft("adalimumab"),))
        if drafted
        else run(rule, *resources, med("adalimumab"))
    )
    assert bool(found) is (said is not None)
    if said is not None:
        assert found[0].summary.startswith(said) and found[0].severity == "warning"

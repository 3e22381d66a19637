"""An NSAID on the skin or in the eye is not a systemic NSAID: the kidney, stomach, heart-failure and bleeding rules
leave it out (its blood levels are a few percent of an oral dose), while the same drug swallowed still counts."""

from __future__ import annotations

import pytest

from plugin.rules.dosing import SKIN_EYE_EAR
from tests.support.rule_cases import lab, med, problem
from tests.unit.test_rules_depth_v3 import ids, rx

pytestmark = pytest.mark.unit

TOPICAL = (
    "diclofenac sodium 10 MG/G Topical Gel",
    "Voltaren Arthritis Pain 1% gel (diclofenac sodium topical, OTC)",
    "ketorolac tromethamine 0.5 % Ophthalmic Solution",
)
SWALLOWED = (
    "diclofenac sodium 75 MG Delayed Release Oral Tablet",
    "Advil Liqui-Gel 200 mg (ibuprofen)",
)


@pytest.mark.parametrize(
    ("label", "local"),
    [
        *((t, True) for t in TOPICAL),
        *((s, False) for s in SWALLOWED),
        ("Metronidazole 7.5 MG/ML Vaginal Gel", False),
        ("miconazole nitrate 2 % Vaginal Cream", False),
        ("indomethacin 50 MG Rectal Suppository", False),
    ],
)
def test_the_skin_eye_and_ear_forms_are_told_from_the_swallowed_and_absorbed(label: str, local: bool) -> None:
    assert bool(SKIN_EYE_EAR.search(label)) is local


CHARTS = {
    "rule.nsaid-ckd": lambda nsaid: (nsaid, problem("ckd-3"), lab("egfr", 48)),
    "rule.triple-whammy": lambda nsaid: (
        nsaid,
        med("lisinopril"),
        med("hydrochlorothiazide"),
        lab("egfr", 65),
    ),
    "rule.heart-failure-harmful-drug": lambda nsaid: (nsaid, problem("heart-failure")),
    "rule.beers-nsaid-without-gastroprotection": lambda nsaid: (nsaid, lab("egfr", 80)),
    "rule.vka-nsaid": lambda nsaid: (nsaid, med("warfarin"), lab("inr", 2.4, days_ago=5)),
    "rule.ssri-snri-bleeding": lambda nsaid: (nsaid, med("sertraline")),
}


@pytest.mark.parametrize("rule_id", sorted(CHARTS))
@pytest.mark.parametrize("label", TOPICAL)
def test_a_skin_or_eye_nsaid_raises_none_of_the_systemic_nsaid_rules(rule_id: str, label: str) -> None:
    assert rule_id not in ids(*CHARTS[rule_id](rx("nsaid", label, per_day=2)), age=72)


@pytest.mark.parametrize("rule_id", sorted(CHARTS))
@pytest.mark.parametrize("label", SWALLOWED)
def test_the_same_nsaid_swallowed_still_raises_them(rule_id: str, label: str) -> None:
    assert rule_id in ids(*CHARTS[rule_id](rx("nsaid", label, per_day=2)), age=72)

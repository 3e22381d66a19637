"""`r1cds rules-report` over the 20 Synthea charts, pinned card by card after clinical review."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter

import pytest

from cds_hooks.rules_report import ReportRow, report
from plugin.catalog import RuleService, shipped_registry
from plugin.services import ServiceRegistry
from tests.support.charts import NOW
from tests.support.fixtures_paths import REPO_ROOT, SYNTHEA_FIXTURES, synthea_bundle_paths

pytestmark = pytest.mark.unit

CHART, ORDERS, DISCHARGE = "r1-chart-review", "r1-order-review", "r1-discharge-review"

# Reviewed against ../shared/fixtures/SOURCES.md with the clock at tests.support.charts.NOW (2026-11-25):
# the fixture records end in 2020-2021, so nobody has had a flu shot in the past year; the deceased patient
# (Parker Casper) gets no cards at all, no HbA1c is recent, and no INR exists at all. Order hooks give no rows without draft orders.
# Re-pinned with the rule modules of #17 after reading each new card against its chart: the old high blood
# pressures, digoxin without a level in reach of kidney function, statin and antiplatelet gaps after
# atherosclerotic events, folic acid in pregnancy, methotrexate monitoring, terfenadine (withdrawn) and
# NSAIDs at 65+ without gastroprotection or a kidney function, statin intensity after coronary disease and heart
# failure without RAAS blockade (digoxin levels are asked for by the verapamil interaction cards instead);
# every lab in these records is stale at NOW. Pneumococcal vaccine from 50 (ACIP 2024, the entry's own age)
# adds the two patients aged 55 and 62. The adult vaccine rules add recombinant zoster from 50 (none of these
# records holds one), RSV from 75 or from 60 with heart, lung or kidney disease, a Td booster where the last
# recorded dose is over 10 years old at NOW, and pneumococcal for the diabetic adult under 50. A B12 level is asked
# for the three patients on metformin with neuropathy or anaemia on record. Seven charts file pollen, dander,
# dust mite or mould allergies under "food": one card each asks for the category to be corrected. Three patients
# on simvastatin last had an LDL in 2019-2020: a lipid panel is asked for (ACC/AHA, every 3-12 months). Warfarin
# with clopidogrel or naproxen and no blood count for years asks for one (a warning where anaemia is recorded).
# Two adolescents with no MenACWY, HPV or adolescent Tdap on record; two on a combined pill whose last blood pressure is
# years old; one levothyroxine order written as one tablet every 60 days.
PINNED_TOTAL = 371
PINNED: dict[tuple[str, str, str], int] = {
    (CHART, "encounter-start", "rule.allergy-category-recorded-wrongly"): 7,
    (CHART, "patient-view", "rule.allergy-category-recorded-wrongly"): 7,
    (CHART, "encounter-start", "rule.bleeding-combination-blood-count"): 3,
    (CHART, "patient-view", "rule.bleeding-combination-blood-count"): 3,
    (DISCHARGE, "encounter-discharge", "rule.bleeding-combination-blood-count"): 3,
    (CHART, "encounter-start", "rule.bisphosphonate-long-term"): 1,
    (CHART, "patient-view", "rule.bisphosphonate-long-term"): 1,
    (DISCHARGE, "encounter-discharge", "rule.bisphosphonate-long-term"): 1,
    (CHART, "encounter-start", "rule.chc-blood-pressure-unknown"): 2,
    # Two children whose charts stop at their first MMR and varicella doses, read years later: dose 2 is asked for.
    (CHART, "encounter-start", "rule.childhood-mmr-varicella-due"): 4,
    (CHART, "patient-view", "rule.childhood-mmr-varicella-due"): 4,
    # One of them also stops after the first hepatitis A dose, given at about one year: dose 2 is asked for.
    (CHART, "encounter-start", "rule.childhood-hepatitis-a-due"): 1,
    (CHART, "patient-view", "rule.childhood-hepatitis-a-due"): 1,
    (CHART, "encounter-start", "rule.levothyroxine-interval"): 1,
    (CHART, "encounter-start", "rule.menacwy-due"): 2,
    (CHART, "encounter-start", "rule.hpv-vaccine-due"): 2,
    (CHART, "patient-view", "rule.chc-blood-pressure-unknown"): 2,
    (CHART, "patient-view", "rule.levothyroxine-interval"): 1,
    (CHART, "patient-view", "rule.menacwy-due"): 2,
    (CHART, "patient-view", "rule.hpv-vaccine-due"): 2,
    (CHART, "encounter-start", "rule.tdap-adolescent-due"): 2,
    (CHART, "patient-view", "rule.tdap-adolescent-due"): 2,
    (DISCHARGE, "encounter-discharge", "rule.chc-blood-pressure-unknown"): 2,
    (DISCHARGE, "encounter-discharge", "rule.levothyroxine-interval"): 1,
    (CHART, "encounter-start", "rule.antiplatelet-absent"): 2,
    (CHART, "encounter-start", "rule.drug-monitoring-labs"): 3,
    (CHART, "patient-view", "rule.drug-monitoring-labs"): 3,
    (DISCHARGE, "encounter-discharge", "rule.drug-monitoring-labs"): 3,
    (CHART, "encounter-start", "rule.beers-nsaid-without-gastroprotection"): 2,
    (CHART, "encounter-start", "rule.beers-sedatives"): 1,
    (CHART, "encounter-start", "rule.blood-pressure-recheck"): 4,
    (CHART, "encounter-start", "rule.chc-migraine"): 1,
    (CHART, "encounter-start", "rule.diabetes-hba1c-due"): 4,
    (CHART, "encounter-start", "rule.diabetic-kidney-disease-raas"): 2,
    (CHART, "encounter-start", "rule.digoxin-interacting"): 5,
    (CHART, "encounter-start", "rule.duplicate-therapy"): 3,
    (CHART, "encounter-start", "rule.egfr-recheck"): 7,
    (CHART, "encounter-start", "rule.epinephrine-autoinjector-weight"): 4,
    (CHART, "encounter-start", "rule.heart-failure-therapy-gap"): 1,
    (CHART, "encounter-start", "rule.hepatitis-b-vaccine-due"): 2,
    (CHART, "encounter-start", "rule.influenza-vaccine-due"): 19,
    (CHART, "encounter-start", "rule.inr-monitoring"): 5,
    (CHART, "encounter-start", "rule.levothyroxine-tsh-recheck"): 1,
    (CHART, "encounter-start", "rule.metformin-vitamin-b12"): 3,
    (CHART, "encounter-start", "rule.methotrexate-monitoring"): 1,
    (CHART, "encounter-start", "rule.methotrexate-nsaid"): 1,
    (CHART, "encounter-start", "rule.methotrexate-without-folate"): 1,
    (CHART, "encounter-start", "rule.nsaid-ckd"): 1,
    (CHART, "encounter-start", "rule.nsaid-renal-unknown"): 2,
    (CHART, "encounter-start", "rule.pneumococcal-risk-vaccine-due"): 1,
    (CHART, "encounter-start", "rule.pneumococcal-vaccine-due"): 5,
    (CHART, "encounter-start", "rule.potassium-recheck"): 5,
    (CHART, "encounter-start", "rule.prenatal-folic-acid-absent"): 2,
    (CHART, "encounter-start", "rule.renal-function-unknown"): 2,
    (CHART, "encounter-start", "rule.rsv-vaccine-due"): 9,
    (CHART, "encounter-start", "rule.simvastatin-dose-limit"): 2,
    (CHART, "encounter-start", "rule.statin-indicated-absent"): 4,
    (CHART, "encounter-start", "rule.statin-intensity-low"): 1,
    (CHART, "encounter-start", "rule.td-booster-due"): 9,
    (CHART, "encounter-start", "rule.vka-antiplatelet"): 2,
    (CHART, "encounter-start", "rule.vka-nsaid"): 1,
    (CHART, "encounter-start", "rule.withdrawn-drug"): 1,
    (CHART, "encounter-start", "rule.zoster-vaccine-due"): 11,
    (CHART, "patient-view", "rule.antiplatelet-absent"): 2,
    (CHART, "patient-view", "rule.beers-nsaid-without-gastroprotection"): 2,
    (CHART, "patient-view", "rule.beers-sedatives"): 1,
    (CHART, "patient-view", "rule.blood-pressure-recheck"): 4,
    (CHART, "patient-view", "rule.chc-migraine"): 1,
    (CHART, "patient-view", "rule.diabetes-hba1c-due"): 4,
    (CHART, "patient-view", "rule.diabetic-kidney-disease-raas"): 2,
    (CHART, "patient-view", "rule.digoxin-interacting"): 5,
    (CHART, "patient-view", "rule.duplicate-therapy"): 3,
    (CHART, "patient-view", "rule.egfr-recheck"): 7,
    (CHART, "patient-view", "rule.epinephrine-autoinjector-weight"): 4,
    (CHART, "patient-view", "rule.heart-failure-therapy-gap"): 1,
    (CHART, "patient-view", "rule.hepatitis-b-vaccine-due"): 2,
    (CHART, "patient-view", "rule.influenza-vaccine-due"): 19,
    (CHART, "patient-view", "rule.inr-monitoring"): 5,
    (CHART, "patient-view", "rule.levothyroxine-tsh-recheck"): 1,
    (CHART, "patient-view", "rule.metformin-vitamin-b12"): 3,
    (CHART, "patient-view", "rule.methotrexate-monitoring"): 1,
    (CHART, "patient-view", "rule.methotrexate-nsaid"): 1,
    (CHART, "patient-view", "rule.methotrexate-without-folate"): 1,
    (CHART, "patient-view", "rule.nsaid-ckd"): 1,
    (CHART, "patient-view", "rule.nsaid-renal-unknown"): 2,
    (CHART, "patient-view", "rule.pneumococcal-risk-vaccine-due"): 1,
    (CHART, "patient-view", "rule.pneumococcal-vaccine-due"): 5,
    (CHART, "patient-view", "rule.potassium-recheck"): 5,
    (CHART, "patient-view", "rule.prenatal-folic-acid-absent"): 2,
    (CHART, "patient-view", "rule.renal-function-unknown"): 2,
    (CHART, "patient-view", "rule.rsv-vaccine-due"): 9,
    (CHART, "patient-view", "rule.simvastatin-dose-limit"): 2,
    (CHART, "patient-view", "rule.statin-indicated-absent"): 4,
    (CHART, "patient-view", "rule.statin-intensity-low"): 1,
    (CHART, "patient-view", "rule.td-booster-due"): 9,
    (CHART, "patient-view", "rule.vka-antiplatelet"): 2,
    (CHART, "patient-view", "rule.vka-nsaid"): 1,
    (CHART, "patient-view", "rule.withdrawn-drug"): 1,
    (CHART, "patient-view", "rule.zoster-vaccine-due"): 11,
    (DISCHARGE, "encounter-discharge", "rule.beers-nsaid-without-gastroprotection"): 2,
    (DISCHARGE, "encounter-discharge", "rule.beers-sedatives"): 1,
    (DISCHARGE, "encounter-discharge", "rule.chc-migraine"): 1,
    (DISCHARGE, "encounter-discharge", "rule.digoxin-interacting"): 5,
    (DISCHARGE, "encounter-discharge", "rule.duplicate-therapy"): 3,
    (DISCHARGE, "encounter-discharge", "rule.egfr-recheck"): 7,
    (DISCHARGE, "encounter-discharge", "rule.epinephrine-autoinjector-weight"): 4,
    (DISCHARGE, "encounter-discharge", "rule.inr-monitoring"): 5,
    (DISCHARGE, "encounter-discharge", "rule.levothyroxine-tsh-recheck"): 1,
    (DISCHARGE, "encounter-discharge", "rule.metformin-vitamin-b12"): 3,
    (DISCHARGE, "encounter-discharge", "rule.methotrexate-monitoring"): 1,
    (DISCHARGE, "encounter-discharge", "rule.methotrexate-nsaid"): 1,
    (DISCHARGE, "encounter-discharge", "rule.methotrexate-without-folate"): 1,
    (DISCHARGE, "encounter-discharge", "rule.nsaid-ckd"): 1,
    (DISCHARGE, "encounter-discharge", "rule.nsaid-renal-unknown"): 2,
    (DISCHARGE, "encounter-discharge", "rule.potassium-recheck"): 5,
    (DISCHARGE, "encounter-discharge", "rule.renal-function-unknown"): 2,
    (DISCHARGE, "encounter-discharge", "rule.simvastatin-dose-limit"): 2,
    (DISCHARGE, "encounter-discharge", "rule.vka-antiplatelet"): 2,
    (DISCHARGE, "encounter-discharge", "rule.vka-nsaid"): 1,
    (DISCHARGE, "encounter-discharge", "rule.withdrawn-drug"): 1,
}
# Who gets which patient-view card (rule:indicator), the clinical reading of the counts above.
PATIENT_VIEW: dict[str, list[str]] = {
    "Asa_Hermiston": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.duplicate-therapy:warning",
        "rule.hepatitis-b-vaccine-due:info",
        "rule.influenza-vaccine-due:info",
        "rule.methotrexate-monitoring:warning",
        "rule.methotrexate-nsaid:warning",
        "rule.methotrexate-without-folate:info",
        "rule.pneumococcal-vaccine-due:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Christin_Stiedemann": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.pneumococcal-vaccine-due:info",
        "rule.potassium-recheck:info",
        "rule.rsv-vaccine-due:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Clarine_O'Keefe": [
        "rule.diabetes-hba1c-due:info",
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:warning",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.metformin-vitamin-b12:info",
        "rule.potassium-recheck:info",
        "rule.rsv-vaccine-due:info",
        "rule.statin-indicated-absent:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Claudie_Walsh": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.childhood-hepatitis-a-due:info",
        "rule.childhood-mmr-varicella-due:info",
        "rule.childhood-mmr-varicella-due:info",
        "rule.epinephrine-autoinjector-weight:info",
        "rule.influenza-vaccine-due:info",
    ],
    "Cruz_Halvorson": [
        "rule.bleeding-combination-blood-count:info",
        "rule.digoxin-interacting:warning",
        "rule.drug-monitoring-labs:info",
        "rule.duplicate-therapy:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.potassium-recheck:info",
        "rule.rsv-vaccine-due:info",
        "rule.simvastatin-dose-limit:warning",
        "rule.statin-intensity-low:info",
        "rule.td-booster-due:info",
        "rule.vka-antiplatelet:warning",
        "rule.zoster-vaccine-due:info",
    ],
    "Daisey_Johns": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.epinephrine-autoinjector-weight:info",
        "rule.hpv-vaccine-due:info",
        "rule.influenza-vaccine-due:info",
        "rule.menacwy-due:info",
        "rule.tdap-adolescent-due:info",
    ],
    "Derek_Becker": [
        "rule.bleeding-combination-blood-count:warning",
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.pneumococcal-vaccine-due:info",
        "rule.potassium-recheck:info",
        "rule.td-booster-due:info",
        "rule.vka-nsaid:warning",
        "rule.zoster-vaccine-due:info",
    ],
    "Gerardo_Botello": [
        "rule.epinephrine-autoinjector-weight:info",
        "rule.hpv-vaccine-due:info",
        "rule.influenza-vaccine-due:info",
        "rule.menacwy-due:info",
        "rule.tdap-adolescent-due:info",
    ],
    "Ima_Reinger": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.chc-blood-pressure-unknown:info",
        "rule.chc-migraine:warning",
        "rule.influenza-vaccine-due:info",
        "rule.td-booster-due:info",
        "rule.withdrawn-drug:critical",
    ],
    "Isaiah_Schaden": [
        "rule.blood-pressure-recheck:info",
        "rule.diabetes-hba1c-due:info",
        "rule.diabetic-kidney-disease-raas:info",
        "rule.egfr-recheck:warning",
        "rule.influenza-vaccine-due:info",
        "rule.metformin-vitamin-b12:info",
        "rule.rsv-vaccine-due:info",
        "rule.statin-indicated-absent:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Lonnie_Von": [
        "rule.beers-nsaid-without-gastroprotection:warning",
        "rule.bisphosphonate-long-term:info",
        "rule.influenza-vaccine-due:info",
        "rule.nsaid-renal-unknown:info",
        "rule.renal-function-unknown:info",
        "rule.rsv-vaccine-due:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Margery_Gibson": [
        "rule.antiplatelet-absent:info",
        "rule.blood-pressure-recheck:info",
        "rule.diabetes-hba1c-due:info",
        "rule.drug-monitoring-labs:info",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.metformin-vitamin-b12:info",
        "rule.renal-function-unknown:info",
        "rule.rsv-vaccine-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Martina_Murazik": [
        "rule.antiplatelet-absent:info",
        "rule.heart-failure-therapy-gap:info",
        "rule.influenza-vaccine-due:info",
        "rule.rsv-vaccine-due:info",
        "rule.statin-indicated-absent:info",
        "rule.td-booster-due:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Mathilda_O'Keefe": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.chc-blood-pressure-unknown:info",
        "rule.hepatitis-b-vaccine-due:info",
        "rule.influenza-vaccine-due:info",
        "rule.pneumococcal-risk-vaccine-due:info",
    ],
    "Nereida_Rogahn": [
        "rule.influenza-vaccine-due:info",
        "rule.prenatal-folic-acid-absent:info",
    ],
    "Renea_Quigley": [
        "rule.beers-nsaid-without-gastroprotection:warning",
        "rule.beers-sedatives:warning",
        "rule.blood-pressure-recheck:info",
        "rule.diabetes-hba1c-due:info",
        "rule.diabetic-kidney-disease-raas:info",
        "rule.influenza-vaccine-due:info",
        "rule.nsaid-ckd:warning",
        "rule.nsaid-renal-unknown:info",
        "rule.pneumococcal-vaccine-due:info",
        "rule.rsv-vaccine-due:info",
        "rule.statin-indicated-absent:info",
        "rule.zoster-vaccine-due:info",
    ],
    "Shameka_Marvin": [
        "rule.influenza-vaccine-due:info",
        "rule.prenatal-folic-acid-absent:info",
    ],
    "Trey_Berge": [
        "rule.bleeding-combination-blood-count:warning",
        "rule.blood-pressure-recheck:info",
        "rule.digoxin-interacting:warning",
        "rule.drug-monitoring-labs:info",
        "rule.duplicate-therapy:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.levothyroxine-interval:warning",
        "rule.levothyroxine-tsh-recheck:info",
        "rule.pneumococcal-vaccine-due:info",
        "rule.potassium-recheck:info",
        "rule.rsv-vaccine-due:info",
        "rule.simvastatin-dose-limit:warning",
        "rule.vka-antiplatelet:warning",
        "rule.zoster-vaccine-due:info",
    ],
    "Versie_Botsford": [
        "rule.allergy-category-recorded-wrongly:info",
        "rule.childhood-mmr-varicella-due:info",
        "rule.childhood-mmr-varicella-due:info",
        "rule.epinephrine-autoinjector-weight:info",
        "rule.influenza-vaccine-due:info",
    ],
}


def fixed_clock_registry() -> ServiceRegistry:
    services = []
    for service in shipped_registry():
        assert isinstance(service, RuleService)
        services.append(dataclasses.replace(service, clock=lambda: NOW))
    return ServiceRegistry(services)


def counts(rows: list[ReportRow]) -> Counter[tuple[str, str, str]]:
    return Counter((r.service, r.hook, r.rule) for r in rows)


def test_rules_report_is_pinned() -> None:
    rows = report(synthea_bundle_paths(), fixed_clock_registry())
    assert len(rows) == PINNED_TOTAL == sum(PINNED.values())
    assert counts(rows) == PINNED
    patient_view: dict[str, list[str]] = {}
    for row in rows:
        if row.hook == "patient-view":
            patient_view.setdefault(row.patient.rsplit("_", 1)[0], []).append(f"{row.rule}:{row.indicator}")
    assert {k: sorted(v) for k, v in patient_view.items()} == PATIENT_VIEW
    assert all(len(r.summary) < 140 and "consider" in r.summary.lower() for r in rows)
    # patient-view and encounter-start review the same chart, so they say the same.
    by_hook = {
        hook: sorted((r.patient, r.rule, r.summary) for r in rows if r.hook == hook)
        for hook in ("patient-view", "encounter-start")
    }
    assert by_hook["patient-view"] == by_hook["encounter-start"]


def test_the_real_command_prints_the_same_cards() -> None:
    """The CLI runs on the wall clock, so it is compared with the in-process report on the same clock."""
    paths = synthea_bundle_paths()
    completed = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "rules-report", str(SYNTHEA_FIXTURES)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.rstrip("\n").split("\n")
    expected = report(paths, shipped_registry())
    assert lines[-1] == f"{len(expected)} cards"
    # Columns: patient, service, hook, indicator, rule, summary (file stems hold no spaces).
    printed = [line.split(maxsplit=5) for line in lines[1:-1]]
    assert Counter((c[1], c[2], c[4]) for c in printed) == counts(expected)
    assert {c[0] for c in printed} == {r.patient[:24] for r in expected}

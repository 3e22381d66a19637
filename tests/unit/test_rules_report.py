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
PINNED_TOTAL = 167
PINNED: dict[tuple[str, str, str], int] = {
    (CHART, "encounter-start", "rule.beers-sedatives"): 1,
    (CHART, "encounter-start", "rule.diabetes-hba1c-due"): 4,
    (CHART, "encounter-start", "rule.diabetic-kidney-disease-raas"): 2,
    (CHART, "encounter-start", "rule.digoxin-interacting"): 5,
    (CHART, "encounter-start", "rule.duplicate-therapy"): 3,
    (CHART, "encounter-start", "rule.epinephrine-autoinjector-weight"): 4,
    (CHART, "encounter-start", "rule.influenza-vaccine-due"): 19,
    (CHART, "encounter-start", "rule.inr-monitoring"): 5,
    (CHART, "encounter-start", "rule.egfr-recheck"): 7,
    (CHART, "encounter-start", "rule.potassium-recheck"): 5,
    (CHART, "encounter-start", "rule.methotrexate-nsaid"): 1,
    (CHART, "encounter-start", "rule.nsaid-ckd"): 1,
    (CHART, "encounter-start", "rule.pneumococcal-vaccine-due"): 3,
    (CHART, "encounter-start", "rule.simvastatin-dose-limit"): 2,
    (CHART, "encounter-start", "rule.vka-antiplatelet"): 2,
    (CHART, "encounter-start", "rule.vka-nsaid"): 1,
    (CHART, "patient-view", "rule.beers-sedatives"): 1,
    (CHART, "patient-view", "rule.diabetes-hba1c-due"): 4,
    (CHART, "patient-view", "rule.diabetic-kidney-disease-raas"): 2,
    (CHART, "patient-view", "rule.digoxin-interacting"): 5,
    (CHART, "patient-view", "rule.duplicate-therapy"): 3,
    (CHART, "patient-view", "rule.epinephrine-autoinjector-weight"): 4,
    (CHART, "patient-view", "rule.influenza-vaccine-due"): 19,
    (CHART, "patient-view", "rule.inr-monitoring"): 5,
    (CHART, "patient-view", "rule.egfr-recheck"): 7,
    (CHART, "patient-view", "rule.potassium-recheck"): 5,
    (CHART, "patient-view", "rule.methotrexate-nsaid"): 1,
    (CHART, "patient-view", "rule.nsaid-ckd"): 1,
    (CHART, "patient-view", "rule.pneumococcal-vaccine-due"): 3,
    (CHART, "patient-view", "rule.simvastatin-dose-limit"): 2,
    (CHART, "patient-view", "rule.vka-antiplatelet"): 2,
    (CHART, "patient-view", "rule.vka-nsaid"): 1,
    (DISCHARGE, "encounter-discharge", "rule.beers-sedatives"): 1,
    (DISCHARGE, "encounter-discharge", "rule.digoxin-interacting"): 5,
    (DISCHARGE, "encounter-discharge", "rule.duplicate-therapy"): 3,
    (DISCHARGE, "encounter-discharge", "rule.epinephrine-autoinjector-weight"): 4,
    (DISCHARGE, "encounter-discharge", "rule.inr-monitoring"): 5,
    (DISCHARGE, "encounter-discharge", "rule.egfr-recheck"): 7,
    (DISCHARGE, "encounter-discharge", "rule.potassium-recheck"): 5,
    (DISCHARGE, "encounter-discharge", "rule.methotrexate-nsaid"): 1,
    (DISCHARGE, "encounter-discharge", "rule.nsaid-ckd"): 1,
    (DISCHARGE, "encounter-discharge", "rule.simvastatin-dose-limit"): 2,
    (DISCHARGE, "encounter-discharge", "rule.vka-antiplatelet"): 2,
    (DISCHARGE, "encounter-discharge", "rule.vka-nsaid"): 1,
}
# Who gets which patient-view card (rule:indicator), the clinical reading of the counts above.
PATIENT_VIEW: dict[str, list[str]] = {
    "Asa_Hermiston": [  # methotrexate + naproxen 500 mg + naproxen sodium 220 mg
        "rule.duplicate-therapy:warning",
        "rule.influenza-vaccine-due:info",
        "rule.methotrexate-nsaid:warning",
    ],
    "Christin_Stiedemann": [  # 84F warfarin, digoxin + verapamil
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.pneumococcal-vaccine-due:info",
        "rule.potassium-recheck:info",
    ],
    "Clarine_O'Keefe": [  # warfarin + digoxin + verapamil + metformin; eGFR 40.89, but 2068 days old
        "rule.diabetes-hba1c-due:info",
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:warning",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.potassium-recheck:info",
    ],
    # Children on a 0.3 mg epinephrine auto-injector whose last weight is from 2020 (stale): weigh first.
    # 7, last weight 10.3 kg
    "Claudie_Walsh": ["rule.epinephrine-autoinjector-weight:info", "rule.influenza-vaccine-due:info"],
    # warfarin + clopidogrel, digoxin + verapamil; simvastatin 20 mg + verapamil (cap 10 mg) + amlodipine
    # (cap 20 mg: at it, so only verapamil is named); amlodipine + verapamil are two calcium-channel blockers
    "Cruz_Halvorson": [
        "rule.digoxin-interacting:warning",
        "rule.duplicate-therapy:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.potassium-recheck:info",
        "rule.simvastatin-dose-limit:warning",
        "rule.vka-antiplatelet:warning",
    ],
    # albuterol with fluticasone: no SABA-only card; 11, last weight 18.9 kg
    "Daisey_Johns": ["rule.epinephrine-autoinjector-weight:info", "rule.influenza-vaccine-due:info"],
    "Derek_Becker": [  # warfarin + naproxen, digoxin + verapamil
        "rule.digoxin-interacting:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.potassium-recheck:info",
        "rule.vka-nsaid:warning",
    ],
    # 16, last weight 37 kg
    "Gerardo_Botello": ["rule.epinephrine-autoinjector-weight:info", "rule.influenza-vaccine-due:info"],
    "Ima_Reinger": ["rule.influenza-vaccine-due:info"],  # terfenadine without an interacting drug
    "Isaiah_Schaden": [  # diabetic renal disease, metformin (eGFR 41.59, 2260 days old), no ACE inhibitor/ARB
        "rule.diabetes-hba1c-due:info",
        "rule.diabetic-kidney-disease-raas:info",
        "rule.egfr-recheck:warning",
        "rule.influenza-vaccine-due:info",
    ],
    "Lonnie_Von": ["rule.influenza-vaccine-due:info"],
    "Margery_Gibson": [  # metformin, last eGFR 72.85 from 2144 days ago
        "rule.diabetes-hba1c-due:info",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
    ],
    "Martina_Murazik": ["rule.influenza-vaccine-due:info"],  # heart failure on furosemide + metoprolol only
    "Mathilda_O'Keefe": ["rule.influenza-vaccine-due:info"],
    "Nereida_Rogahn": ["rule.influenza-vaccine-due:info"],  # pregnant, no teratogen
    "Renea_Quigley": [  # 68F CKD + diabetic renal disease, naproxen, diphenhydramine
        "rule.beers-sedatives:warning",
        "rule.diabetes-hba1c-due:info",
        "rule.diabetic-kidney-disease-raas:info",
        "rule.influenza-vaccine-due:info",
        "rule.nsaid-ckd:warning",
        "rule.pneumococcal-vaccine-due:info",
    ],
    "Shameka_Marvin": ["rule.influenza-vaccine-due:info"],  # pregnant, no teratogen
    "Trey_Berge": [  # 90+ warfarin + clopidogrel, digoxin + verapamil; the same statin and CCBs as Cruz Halvorson
        "rule.digoxin-interacting:warning",
        "rule.duplicate-therapy:warning",
        "rule.egfr-recheck:info",
        "rule.influenza-vaccine-due:info",
        "rule.inr-monitoring:warning",
        "rule.pneumococcal-vaccine-due:info",
        "rule.potassium-recheck:info",
        "rule.simvastatin-dose-limit:warning",
        "rule.vka-antiplatelet:warning",
    ],
    # 8, last weight 12.9 kg
    "Versie_Botsford": ["rule.epinephrine-autoinjector-weight:info", "rule.influenza-vaccine-due:info"],
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

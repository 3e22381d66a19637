"""Every rule the services run, assembled from the rule modules: the one list services, governance and benches share."""

# The modules are split by clinical area (catalog: the interaction table's pairs, allergies, pregnancy, older
# adults; high_harm: the high-harm combinations and the opioid bundle; kidney/renal_rules: renal function and
# dosing; monitoring: monitoring, drug-disease and care gaps; label_checks: label and Beers checks of pairs,
# conditions, ages and doses; label_limits: limits by age, weight, duration and interval, and care gaps that
# need them; dose_range: doses; dose_bands: children's doses by age or weight band; drug_monitoring: the labs a drug or a combination needs; depth: electrolytes on
# diuretics, acetaminophen totals, amiodarone monitoring, anticholinergics with dementia drugs, Tdap in
# pregnancy; gaps: AF without anticoagulation, amiodarone first-line at 65+ and more; resolution: what could not
# be resolved or does not agree; vaccines: zoster, Td/Tdap, RSV, at-risk pneumococcal and MenACWY). Only this
# module imports them all, so none of them depends on another's place in the list.

from __future__ import annotations

from typing import Final

from plugin.rules.catalog import BASE_CARE_GAP_RULES, BASE_MEDICATION_RULES, Rule
from plugin.rules.depth import DEPTH_CARE_GAP_RULES, DEPTH_MEDICATION_RULES
from plugin.rules.dose_bands import DOSE_BAND_RULES
from plugin.rules.dose_range import DOSE_RULES
from plugin.rules.drug_monitoring import DRUG_MONITORING_RULES
from plugin.rules.gaps import GAP_CARE_RULES, GAP_MEDICATION_RULES
from plugin.rules.high_harm import HIGH_HARM_RULES
from plugin.rules.label_checks import LABEL_CHECK_RULES
from plugin.rules.label_limits import LABEL_LIMIT_CARE_GAP_RULES, LABEL_LIMIT_RULES
from plugin.rules.monitoring import CARE_GAP_EXTRA_RULES, DRUG_DISEASE_RULES, MONITORING_RULES
from plugin.rules.renal_rules import KIDNEY_RULES
from plugin.rules.resolution import RESOLUTION_CARE_GAP_RULES, RESOLUTION_RULES
from plugin.rules.vaccines import VACCINE_CARE_GAP_RULES

__all__ = ["CARE_GAP_RULES", "MEDICATION_RULES", "Rule"]

# Rules about drugs: run on every hook, and on an AI proposal (governance) with the proposal as an exposure.
MEDICATION_RULES: Final[tuple[Rule, ...]] = (
    *BASE_MEDICATION_RULES,
    *HIGH_HARM_RULES,
    *LABEL_CHECK_RULES,
    *LABEL_LIMIT_RULES,
    *KIDNEY_RULES,
    *MONITORING_RULES,
    *DRUG_DISEASE_RULES,
    *DOSE_RULES,
    *DOSE_BAND_RULES,
    *DEPTH_MEDICATION_RULES,
    *GAP_MEDICATION_RULES,
    *DRUG_MONITORING_RULES,
    *RESOLUTION_RULES,
)
# Care gaps: what the chart lacks; patient-view only.
CARE_GAP_RULES: Final[tuple[Rule, ...]] = (
    *BASE_CARE_GAP_RULES,
    *CARE_GAP_EXTRA_RULES,
    *DEPTH_CARE_GAP_RULES,
    *GAP_CARE_RULES,
    *VACCINE_CARE_GAP_RULES,
    *RESOLUTION_CARE_GAP_RULES,
    *LABEL_LIMIT_CARE_GAP_RULES,
)

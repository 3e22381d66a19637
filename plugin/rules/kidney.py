"""Kidney function from the chart: CKD-EPI 2021 eGFR, Cockcroft-Gault CrCl and KDIGO AKI staging (pure)."""

# Fail closed throughout: a stale value (plugin.rules.freshness) is never read as current, and an input that
# is missing, stale or outside what an equation was built for (a child, a sex other than female or male)
# makes the result None, never a guess. Rules then ask for the missing value instead of deciding.
#
# Two limits of the de-identified context (plugin.context.model) shape what can be computed:
# - Age is whole years capped at 90 (Safe Harbor). For a patient of 90 or more both equations are computed
#   at 90, which slightly overstates eGFR and CrCl (both fall with age): `age_capped` says so, and the
#   rules print it, so the number reads as an upper bound.
# - Times are whole days before the hook fired, so KDIGO's "within 48 hours" is read as "within 2 calendar
#   days" (up to about 72 h apart in the worst case) and "within 7 days" as 7 calendar days. The context
#   keeps only the newest few values per analyte (ContextOptions.measurements_per_analyte), so an older
#   baseline inside the 7 days can be out of reach and a rise against it goes unseen.

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from plugin.context.model import LabSeries, Measurement
from plugin.rules.model import RuleFacts

__all__ = [
    "AKI_RECENT_DAYS",
    "AKI_REFERENCE_DAYS",
    "AkiStage",
    "RenalFunction",
    "aki_against_reference",
    "aki_stage",
    "ckd_epi_2021",
    "cockcroft_gault",
    "renal_function",
]

ADULT_AGE: Final = 18  # both equations were derived in adults
AGE_CAP: Final = 90  # plugin.context.model.Demographics caps age here
# KDIGO 2012 AKI definition and staging.
AKI_RISE_MG_DL: Final = 0.3
AKI_RISE_DAYS: Final = 2  # "within 48 hours", read in whole days (see above)
AKI_RATIO: Final = 1.5
AKI_BASELINE_DAYS: Final = 7
AKI_STAGE_2_RATIO: Final = 2.0
AKI_STAGE_3_RATIO: Final = 3.0
AKI_STAGE_3_MG_DL: Final = 4.0
# An AKI is something to act on now only if the creatinine showing it is recent: an older rise is history,
# and the chart may since have recovered. 7 days is this project's choice pending clinical review (KDIGO's
# own window for the baseline).
AKI_RECENT_DAYS: Final = 7
# Outpatients rarely have a creatinine from the 7 days before a new one. NHS England's AKI algorithm (Patient
# Safety Alert NHS/PSA/D/2014/010) then compares it with the median of the values from 8 to 365 days before.
AKI_REFERENCE_DAYS: Final = 365


def ckd_epi_2021(creatinine_mg_dl: float, age: int | None, sex: str) -> float | None:
    """eGFR in mL/min/1.73 m² by the race-free 2021 CKD-EPI creatinine equation (Inker et al., NEJM 2021);
    None under 18, for an unknown age, or a sex other than female or male (the equation has no other)."""
    if age is None or age < ADULT_AGE or sex not in ("female", "male") or creatinine_mg_dl <= 0:
        return None
    female = sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    # math.pow keeps the result a float for the type checker (float ** float may be complex).
    egfr = (
        142.0 * math.pow(min(ratio, 1.0), alpha) * math.pow(max(ratio, 1.0), -1.200) * math.pow(0.9938, age)
    )
    return egfr * 1.012 if female else egfr


def cockcroft_gault(creatinine_mg_dl: float, age: int | None, weight_kg: float, sex: str) -> float | None:
    """Creatinine clearance in mL/min by Cockcroft-Gault with actual body weight, as most US labels dose by;
    None under 18, for an unknown age, or a sex other than female or male."""
    if age is None or age < ADULT_AGE or sex not in ("female", "male") or creatinine_mg_dl <= 0:
        return None
    if weight_kg <= 0:
        return None
    crcl = (140 - age) * weight_kg / (72 * creatinine_mg_dl)
    return crcl * 0.85 if sex == "female" else crcl


@dataclass(frozen=True, slots=True)
class AkiStage:
    """KDIGO AKI read from the creatinine series: the stage, the value showing it, and what it was compared to."""

    stage: Literal[1, 2, 3]
    latest: Measurement
    baseline: Measurement  # the lowest value it was measured against
    ratio: float
    rise: float

    @property
    def handles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.latest.handle, self.baseline.handle)))


def aki_stage(series: LabSeries | None) -> AkiStage | None:
    """KDIGO AKI at the newest creatinine, or None: a rise of at least 0.3 mg/dL over a value from the 2 days
    before it, or at least 1.5 times the lowest value from the 7 days before it. Stage 1/2/3 by ratio
    1.5-1.9 / 2.0-2.9 / 3.0 or more, or a creatinine of 4.0 mg/dL or more; a 0.3 rise alone is stage 1."""
    if series is None or series.analyte != "creatinine":
        return None
    latest = series.latest
    if latest.days_ago is None or not 0 <= latest.days_ago <= AKI_RECENT_DAYS:
        return None
    earlier = [
        m
        for m in series.measurements[1:]
        if m.days_ago is not None and 0 <= m.days_ago - latest.days_ago <= AKI_BASELINE_DAYS
    ]
    if not earlier:
        return None
    baseline = min(earlier, key=lambda m: (m.value, m.days_ago))
    recent = [m for m in earlier if m.days_ago is not None and m.days_ago - latest.days_ago <= AKI_RISE_DAYS]
    rise_from = min(recent, key=lambda m: (m.value, m.days_ago)) if recent else None
    # Rounded: creatinine is reported to 0.01 mg/dL, and 1.2 / 0.8 is 1.4999... in floating point.
    ratio = round(latest.value / baseline.value, 6) if baseline.value > 0 else 0.0
    # A tiny tolerance so that 0.3 written as 1.3 - 1.0 counts: creatinine is reported to 0.01 mg/dL.
    risen = rise_from is not None and latest.value - rise_from.value >= AKI_RISE_MG_DL - 1e-9
    if ratio < AKI_RATIO and not risen:
        return None
    if ratio < AKI_RATIO and rise_from is not None:
        baseline = rise_from  # the 48-hour rise is the criterion met: name that value
    rise = latest.value - baseline.value
    stage: Literal[1, 2, 3]
    if ratio >= AKI_STAGE_3_RATIO or latest.value >= AKI_STAGE_3_MG_DL:
        stage = 3
    elif ratio >= AKI_STAGE_2_RATIO:
        stage = 2
    else:
        stage = 1
    return AkiStage(stage, latest, baseline, latest.value / baseline.value, rise)


def _stage_of(ratio: float, latest: Measurement) -> Literal[1, 2, 3]:
    if ratio >= AKI_STAGE_3_RATIO or latest.value >= AKI_STAGE_3_MG_DL:
        return 3
    return 2 if ratio >= AKI_STAGE_2_RATIO else 1


def aki_against_reference(series: LabSeries | None) -> AkiStage | None:
    """`aki_stage`, or, when no creatinine from the 7 days before the newest exists, a ratio of at least 1.5 to
    the median of the values from 8 to 365 days before it (NHS England's reference value). Only the values
    the context keeps (the newest few) enter the median. The baseline named is the kept value nearest below
    the median."""
    found = aki_stage(series)
    if found is not None or series is None or series.analyte != "creatinine":
        return found
    latest = series.latest
    if latest.days_ago is None or not 0 <= latest.days_ago <= AKI_RECENT_DAYS:
        return None
    gaps = [(m.days_ago - latest.days_ago, m) for m in series.measurements[1:] if m.days_ago is not None]
    if any(0 <= gap <= AKI_BASELINE_DAYS for gap, _ in gaps):
        return None  # KDIGO's own 7-day baseline exists, and aki_stage found no AKI against it
    older = sorted(
        (m for gap, m in gaps if AKI_BASELINE_DAYS < gap <= AKI_REFERENCE_DAYS), key=lambda m: m.value
    )
    if not older:
        return None
    middle = len(older) // 2
    median = older[middle].value if len(older) % 2 else (older[middle - 1].value + older[middle].value) / 2
    if median <= 0:
        return None
    ratio = round(latest.value / median, 6)  # rounded as in aki_stage (reported to 0.01 mg/dL)
    if ratio < AKI_RATIO:
        return None
    baseline = older[(len(older) - 1) // 2]
    return AkiStage(_stage_of(ratio, latest), latest, baseline, latest.value / median, latest.value - median)


EgfrSource = Literal["recorded", "ckd-epi-2021"]


@dataclass(frozen=True, slots=True)
class RenalFunction:
    """The kidney function a dosing rule may act on; `unknown` when nothing current supports a number."""

    egfr: float | None
    egfr_source: EgfrSource | None
    egfr_inputs: tuple[str, ...]  # the recorded eGFR's handle, or the creatinine it was computed from
    crcl: float | None
    crcl_inputs: tuple[str, ...]  # creatinine and weight handles
    creatinine: Measurement | None  # current values only
    weight: Measurement | None
    age: int | None
    age_capped: bool  # 90 or more, computed at 90: the numbers are upper bounds
    # Values older than their window: shown on a card asking for a new one, never used.
    stale: tuple[Measurement, ...] = ()

    @property
    def unknown(self) -> bool:
        return self.egfr is None and self.crcl is None


def renal_function(facts: RuleFacts) -> RenalFunction:
    """eGFR (recorded if current, else CKD-EPI 2021 from a current creatinine) and Cockcroft-Gault CrCl
    (current creatinine and weight) of one context."""
    demographics = facts.context.demographics
    age, sex = demographics.age_years, demographics.sex
    recorded = facts.current("egfr")
    creatinine = facts.current("creatinine")
    weight = facts.current("weight")
    egfr: float | None = None
    source: EgfrSource | None = None
    egfr_inputs: tuple[str, ...] = ()
    if recorded is not None:
        egfr, source, egfr_inputs = recorded.value, "recorded", (recorded.handle,)
    elif creatinine is not None and (computed := ckd_epi_2021(creatinine.value, age, sex)) is not None:
        egfr, source, egfr_inputs = computed, "ckd-epi-2021", (creatinine.handle,)
    crcl: float | None = None
    crcl_inputs: tuple[str, ...] = ()
    if creatinine is not None and weight is not None:
        crcl = cockcroft_gault(creatinine.value, age, weight.value, sex)
        crcl_inputs = (creatinine.handle, weight.handle) if crcl is not None else ()
    stale = tuple(
        m for analyte in ("egfr", "creatinine", "weight") if (m := facts.stale(analyte)) is not None
    )
    return RenalFunction(
        egfr=egfr,
        egfr_source=source,
        egfr_inputs=egfr_inputs,
        crcl=crcl,
        crcl_inputs=crcl_inputs,
        creatinine=creatinine,
        weight=weight,
        age=age,
        age_capped=age is not None and age >= AGE_CAP,
        stale=stale,
    )


def shown(value: float) -> str:
    """A clearance for a card, cut (not rounded) to one decimal so it never reads as over a limit it is under."""
    text = f"{math.floor(value * 10) / 10:.1f}"
    return text.removesuffix(".0")

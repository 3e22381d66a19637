"""Labs a drug needs on established therapy (knowledge/drug_monitoring.json): ask when one is missing or old."""

# Each drug names its labs with how old the latest value may be; the drug's own interval decides, not the
# analyte's general validity window (a yearly sodium on carbamazepine, a six-monthly lithium level). A value
# that is undated counts as missing: unknown is not absent. One card per drug names every lab it lacks, with
# the first as the order the card offers.

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin.context.codes import ANALYTES
from plugin.context.model import Measurement
from plugin.errors import PluginError
from plugin.ids import KB_ID
from plugin.packaged import read_knowledge_json
from plugin.rules.dose_range import analgesic_nsaids
from plugin.rules.dosing import PARENTERAL, route_text
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import short as _short

__all__ = [
    "DRUG_MONITORING_RULES",
    "DrugMonitoring",
    "DrugMonitoringError",
    "drug_monitoring",
    "parse_drug_monitoring",
]

_DATA: Final = "knowledge/drug_monitoring.json"
_LOINC: Final = re.compile(r"^\d{1,7}-\d$")


class DrugMonitoringError(PluginError):
    """knowledge/drug_monitoring.json is malformed."""


@dataclass(frozen=True, slots=True)
class MonitoredLab:
    analyte: str
    max_age_days: int
    order: LabOrder


@dataclass(frozen=True, slots=True)
class DrugMonitoring:
    ingredients: tuple[str, ...]  # a product matches when it contains one of them
    labs: tuple[MonitoredLab, ...]
    why: str
    evidence: tuple[str, ...]
    severity: Severity  # the first entry's hint: a lithium level matters more than a yearly sodium
    # Days of therapy before the labs are due: a statin's first lipid panel comes 4-12 weeks after the start.
    established_after_days: int = 0
    # Where set, a lab with no value on record at all is asked for only this long after the start (the
    # follow-up panel); later, an absent routine lab is more often outside the record sent than never done,
    # and reviewers ask about a lapsed value (a dated one past its interval), which is always asked for.
    missing_asked_within_days: int | None = None
    # Only injected or infused products need these labs (IV vancomycin's kidney tests, not oral vancomycin's).
    parenteral_only: bool = False


def _fail(problem: str) -> DrugMonitoringError:
    return DrugMonitoringError(f"{_DATA}: {problem}")


def _lab(raw: object, where: str) -> MonitoredLab:
    if not isinstance(raw, dict) or set(raw) != {"analyte", "max_age_days", "loinc", "display"}:
        raise _fail(f"{where}: a lab has exactly analyte, max_age_days, loinc and display")
    analyte, days, loinc, display = raw["analyte"], raw["max_age_days"], raw["loinc"], raw["display"]
    if analyte not in ANALYTES:
        raise _fail(f"{where}: unknown analyte {analyte!r}")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
        raise _fail(f"{where}: max_age_days is a whole number of days from 1 to 3650")
    if not isinstance(loinc, str) or not _LOINC.match(loinc) or not isinstance(display, str) or not display:
        raise _fail(f"{where}: a LOINC code and its display")
    return MonitoredLab(analyte, days, LabOrder(loinc, display))


def parse_drug_monitoring(raw: object) -> tuple[DrugMonitoring, ...]:
    """The table in drug_monitoring.json's content; DrugMonitoringError names the first problem."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("version"), str)
        or not isinstance(raw.get("drugs"), list)
    ):
        raise _fail("needs a version and a list of drugs")
    table: list[DrugMonitoring] = []
    seen: set[str] = set()
    for position, drug in enumerate(raw["drugs"]):
        where = f"drugs[{position}]"
        if not isinstance(drug, dict) or not (
            {"ingredients", "labs", "why", "evidence", "severity"}
            <= set(drug)
            <= {
                "ingredients",
                "labs",
                "why",
                "evidence",
                "severity",
                "established_after_days",
                "missing_asked_within_days",
                "parenteral_only",
            }
        ):
            raise _fail(
                f"{where}: a drug has exactly ingredients, labs, why, evidence and severity, and may have "
                "established_after_days, missing_asked_within_days and parenteral_only"
            )
        after = drug.get("established_after_days", 0)
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= 365:
            raise _fail(f"{where}: established_after_days is a whole number of days from 0 to 365")
        missing = drug.get("missing_asked_within_days")
        if missing is not None and (
            not isinstance(missing, int) or isinstance(missing, bool) or not after < missing <= 3650
        ):
            raise _fail(
                f"{where}: missing_asked_within_days is a whole number of days after established_after_days, "
                "up to 3650"
            )
        parenteral = drug.get("parenteral_only", False)
        if not isinstance(parenteral, bool):
            raise _fail(f"{where}: parenteral_only is true or false")
        severity = drug["severity"]
        if severity not in ("info", "warning"):
            raise _fail(f"{where}: severity is info or warning")
        ingredients, labs, why, evidence = drug["ingredients"], drug["labs"], drug["why"], drug["evidence"]
        if (
            not isinstance(ingredients, list)
            or not ingredients
            or not all(isinstance(i, str) for i in ingredients)
        ):
            raise _fail(f"{where}: ingredients is a non-empty list of names")
        if seen & set(ingredients):
            raise _fail(f"{where}: an ingredient is listed once")
        seen |= set(ingredients)
        if not isinstance(labs, list) or not labs:
            raise _fail(f"{where}: at least one lab")
        if not isinstance(why, str) or not why.endswith("."):
            raise _fail(f"{where}: why is one sentence")
        if (
            not isinstance(evidence, list)
            or not evidence
            or not all(isinstance(e, str) and KB_ID.match(e) for e in evidence)
        ):
            raise _fail(f"{where}: evidence lists knowledge-base ids")
        parsed = tuple(_lab(lab, f"{where}.labs[{n}]") for n, lab in enumerate(labs))
        if len({lab.analyte for lab in parsed}) != len(parsed):
            raise _fail(f"{where}: an analyte is listed once per drug")
        table.append(
            DrugMonitoring(
                tuple(ingredients), parsed, why, tuple(evidence), severity, after, missing, parenteral
            )
        )
    return tuple(table)


@functools.cache
def drug_monitoring() -> tuple[DrugMonitoring, ...]:
    """The packaged table, read and validated on first use."""
    return parse_drug_monitoring(read_knowledge_json("drug_monitoring.json", DrugMonitoringError))


def _in_sentence(label: str) -> str:
    """A lab's label inside a sentence: "Lithium level" becomes "lithium level", "LDL cholesterol" stays."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


CBC_PANEL: Final = "58410-2"
# Any count of a CBC shows the panel was drawn: an EHR feed may carry the white count and not the platelets.
_BLOOD_COUNT: Final = ("platelets", "hemoglobin", "leukocytes")


def _latest(facts: RuleFacts, lab: MonitoredLab) -> Measurement | None:
    if lab.order.loinc != CBC_PANEL:
        return facts.latest(lab.analyte)
    counts = [m for m in (facts.latest(a) for a in _BLOOD_COUNT) if m is not None]
    return min(counts, key=lambda m: (m.days_ago is None, m.days_ago or 0), default=None)


def _gap(facts: RuleFacts, lab: MonitoredLab) -> tuple[str, Measurement | None] | None:
    """None when the latest value is within the drug's interval; else how the card says it, and the old value."""
    latest = _latest(facts, lab)
    label = _in_sentence(ANALYTES[lab.analyte].label)
    if latest is None:
        return f"no {label} on record", None
    if latest.days_ago is None:
        return f"an undated {label}", latest
    if latest.days_ago > lab.max_age_days:
        return f"{label} {latest.days_ago} days old", latest
    return None


def _monitored(facts: RuleFacts) -> Iterator[tuple[Exposure, DrugMonitoring]]:
    table = drug_monitoring()
    for exposure in facts.exposures:
        row = next((d for d in table if not set(d.ingredients).isdisjoint(exposure.ingredients)), None)
        if row is None:
            continue
        if row.parenteral_only and not PARENTERAL.search(route_text(facts, exposure)):
            continue
        yield exposure, row


def drug_monitoring_labs(facts: RuleFacts) -> Iterator[Finding]:
    """An established drug without its monitoring labs within their intervals. A drug being started gets its
    baseline from the prescriber's own plan: the card is for therapy already running."""
    done: set[tuple[str, ...]] = set()
    for exposure, row in _monitored(facts):
        if exposure.proposed or row.ingredients in done:
            continue
        # Not yet due; an undated record is not known to be new, so it is asked about.
        if exposure.started_days_ago is not None and exposure.started_days_ago < row.established_after_days:
            continue
        gaps = [(lab, gap) for lab in row.labs if (gap := _gap(facts, lab)) is not None]
        if row.missing_asked_within_days is not None and not exposure.new(row.missing_asked_within_days):
            gaps = [(lab, gap) for lab, gap in gaps if gap[1] is not None]
        if not gaps:
            continue
        done.add(row.ingredients)
        name = next(i for i in exposure.ingredients if i in row.ingredients)
        said = ", ".join(text for _, (text, _) in gaps)
        wanted = " and ".join(_in_sentence(ANALYTES[lab.analyte].label) for lab, _ in gaps)
        yield Finding(
            "rule.drug-monitoring-labs",
            row.severity,
            _short(f"On {name} with {said}: consider checking {wanted}"),
            row.why,
            row.evidence,
            (exposure.handle, *(m.handle for _, (_, m) in gaps if m is not None)),
            (),
            gaps[0][0].order,
        )


# --- a blood count on an anticoagulant taken with an antiplatelet or an NSAID ------------------------------

BLOOD_COUNT_MAX_AGE_DAYS: Final = 365
BLOOD_COUNT: Final = LabOrder("58410-2", "CBC panel - Blood by Automated count")


def bleeding_combination_blood_count(facts: RuleFacts) -> Iterator[Finding]:
    """An anticoagulant with an antiplatelet or a systemic NSAID and no haemoglobin (or haematocrit) within a
    year: occult bleeding shows first as a falling haemoglobin. A warning with anaemia on record."""
    anticoagulants = facts.with_class("vitamin-k-antagonist", "doac")
    partners = tuple(
        e
        for e in (*facts.with_class("antiplatelet"), *analgesic_nsaids(facts))
        if e not in anticoagulants and not e.proposed
    )
    if not anticoagulants or not partners:
        return
    readings = [m for m in (facts.latest("hemoglobin"), facts.latest("hematocrit")) if m is not None]
    if any(m.days_ago is not None and m.days_ago <= BLOOD_COUNT_MAX_AGE_DAYS for m in readings):
        return
    anaemia = facts.value_sets.get("anaemia", ())
    dated = [m for m in readings if m.days_ago is not None]
    last = min(dated, key=lambda m: m.days_ago or 0) if dated else next(iter(readings), None)
    if last is None:
        when = "no blood count on record"
    elif last.days_ago is None:
        when = "an undated blood count"
    else:
        years = max(last.days_ago // 365, 1)
        when = f"the last blood count {years} year{'s' if years > 1 else ''} ago"
    partners = tuple(dict.fromkeys(partners))
    yield Finding(
        "rule.bleeding-combination-blood-count",
        "warning" if anaemia else "info",
        _short(
            f"{_names(anticoagulants).capitalize()} with {_names(partners)}"
            f"{' and anaemia' if anaemia else ''}, {when}: consider a blood count"
        ),
        "An anticoagulant taken with an antiplatelet or an NSAID bleeds more, often slowly; a yearly "
        "haemoglobin is the usual check (EHRA 2021).",
        ("kb.anticoagulant-combination-blood-count",),
        tuple(sorted({*_handles(anticoagulants, partners), *anaemia, *(m.handle for m in readings)})),
        (),
        BLOOD_COUNT,
    )


DRUG_MONITORING_RULES: Final = (drug_monitoring_labs, bleeding_combination_blood_count)

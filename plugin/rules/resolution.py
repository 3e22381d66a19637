"""The fail-closed rules: a medication no ingredient list covers is named on a card, never silently skipped;
so are the records that could not be read at all (issue 19)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from plugin.rules.kidney import ckd_epi_2021
from plugin.rules.model import Finding, RuleFacts

RULE_ID: Final = "rule.medication-unresolved"
EVIDENCE: Final = "kb.medication-record-unresolved"
_LABEL_LIMIT: Final = 30  # the fixed text is 108 characters; the whole summary stays under 140


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def medication_unresolved(facts: RuleFacts) -> Iterator[Finding]:
    # One finding per medication, so a proposed drug's finding carries its handle and vetoes only that one.
    for exposure in facts.exposures:
        if not exposure.unresolved:
            continue
        yield Finding(
            RULE_ID,
            "info",
            # The label is shortened, not the sentence, so the option always survives the 140-character limit.
            f"'{_short(exposure.label, _LABEL_LIMIT)}' could not be matched to an ingredient, "
            "so interaction checks are incomplete: consider checking it by hand",
            "Drug checks only cover medications they can match to a known ingredient; this one was not matched.",
            (EVIDENCE,),
            (exposure.handle,),
            (exposure.handle,) if exposure.proposed else (),
        )


UNREADABLE_RULE_ID: Final = "rule.records-unreadable"
UNREADABLE_EVIDENCE: Final = "kb.records-unreadable"
# How a card names each kind of record, singular and plural.
_RECORD_KINDS: Final[dict[str, tuple[str, str]]] = {
    "MedicationRequest": ("medication record", "medication records"),
    "MedicationStatement": ("medication record", "medication records"),
    "Medication": ("medication record", "medication records"),
    "Observation": ("lab or vital sign", "labs or vital signs"),
    "Condition": ("problem-list entry", "problem-list entries"),
    "AllergyIntolerance": ("allergy record", "allergy records"),
    "Immunization": ("immunization record", "immunization records"),
    "Procedure": ("procedure record", "procedure records"),
    "Encounter": ("encounter record", "encounter records"),
    "Patient": ("patient record", "patient records"),
    "ServiceRequest": ("draft order", "draft orders"),
}
_SUFFIX: Final = " could not be read: safety checks may be incomplete"


def _counted(count: int, kind: tuple[str, str]) -> str:
    return f"{count} {kind[0] if count == 1 else kind[1]}"


def records_unreadable(facts: RuleFacts) -> Iterator[Finding]:
    """One info finding counting the records the context left out as unreadable (invalid, uncoded).

    What the service deliberately ignores (types it does not use, an order type it does not review, readings
    older than the ones it needs) is never validated or never counted (SkippedResource.unreadable).
    """
    counts: dict[tuple[str, str], int] = {}
    for skipped in facts.context.skipped:
        if skipped.unreadable:
            kind = _RECORD_KINDS.get(skipped.resource_type, ("record", "records"))
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return
    total = sum(counts.values())
    named = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    summary = " and ".join(_counted(n, kind) for kind, n in named) + _SUFFIX
    if len(named) > 2 or len(summary) >= 140:
        summary = _counted(total, ("record", "records")) + _SUFFIX
    yield Finding(
        UNREADABLE_RULE_ID,
        "info",
        summary,
        "Records that fail validation are left out rather than guessed at, so a drug, allergy or result they "
        "hold is not checked: review the chart by hand.",
        (UNREADABLE_EVIDENCE,),
        (),
    )


UNAVAILABLE_RULE_ID: Final = "rule.records-unavailable"
_UNAVAILABLE_SUFFIX: Final = " could not be obtained from the EHR: safety checks may be incomplete"


def records_unavailable(resource_types: Iterable[str]) -> Finding | None:
    """One info finding naming the kinds of record a prefetch key ended without (not sent and not fetched,
    or fetched and refused), so a missing medication list is never read as an empty one. A key the EHR
    sent as null (it had nothing to send) is not one of them."""
    kinds = sorted({_RECORD_KINDS.get(t, ("record", "records"))[1] for t in resource_types})
    if not kinds:
        return None
    named = " and ".join(kinds) if len(kinds) <= 2 else "some records"
    summary = f"{named[:1].upper()}{named[1:]}{_UNAVAILABLE_SUFFIX}"
    return Finding(
        UNAVAILABLE_RULE_ID,
        "info",
        summary,
        "The EHR did not send these records and they could not be fetched, so a drug, allergy or result "
        "among them is not checked: review the chart by hand.",
        (UNREADABLE_EVIDENCE,),
        (),
    )


CATEGORY_RULE_ID: Final = "rule.allergy-category-recorded-wrongly"
SUMMARY_LIMIT: Final = 139  # a CDS card summary is under 140 characters
CATEGORY_EVIDENCE: Final = "kb.allergy-record-category"
DISCORDANT_EVIDENCE: Final = "kb.renal-results-discordant"


def allergy_category_recorded_wrongly(facts: RuleFacts) -> Iterator[Finding]:
    """Allergy records whose category their substance's code contradicts (tree pollen filed as "food"). The
    checks already use the right category; the card asks for the record to be put right where it is kept,
    since other systems read it as written. One card names every such record."""
    wrong = [a for a in facts.context.allergies if a.category_as_recorded]
    if not wrong:
        return
    filed = sorted({c for a in wrong for c in a.category_as_recorded if c not in a.category})
    actual = sorted({c for a in wrong for c in a.category if c not in a.category_as_recorded})
    count = "record" if len(wrong) == 1 else f"{len(wrong)} records"
    head = f"Allergy {count} filed as {'/'.join(filed) or 'another category'}"
    tail = f", not {'/'.join(actual) or 'that'}: consider correcting the category"
    # The names are shortened, not the sentence, so the option always survives the 140-character limit.
    names = _short(
        ", ".join(a.substance.display for a in wrong), max(SUMMARY_LIMIT - len(head) - len(tail) - 3, 8)
    )
    yield Finding(
        CATEGORY_RULE_ID,
        "info",
        f"{head} ({names}){tail}",
        "Food, drug and environmental allergies are screened differently; a pollen or dander allergy filed as "
        "food misleads food-allergy and diet checks elsewhere.",
        (CATEGORY_EVIDENCE,),
        tuple(a.handle for a in wrong),
    )


DISCORDANT_RULE_ID: Final = "rule.renal-values-discordant"
# A recorded eGFR this many times above or below the CKD-EPI 2021 value of a creatinine drawn within a day of it
# cannot both be right; dosing on either would be a guess.
DISCORDANT_RATIO: Final = 2.0
DISCORDANT_WITHIN_DAYS: Final = 1


def renal_values_discordant(facts: RuleFacts) -> Iterator[Finding]:
    egfr, creatinine = facts.current("egfr"), facts.current("creatinine")
    if egfr is None or creatinine is None or egfr.days_ago is None or creatinine.days_ago is None:
        return
    if abs(egfr.days_ago - creatinine.days_ago) > DISCORDANT_WITHIN_DAYS or egfr.value <= 0:
        return
    demographics = facts.context.demographics
    computed = ckd_epi_2021(creatinine.value, demographics.age_years, demographics.sex)
    if computed is None or max(computed, egfr.value) / min(computed, egfr.value) < DISCORDANT_RATIO:
        return
    yield Finding(
        DISCORDANT_RULE_ID,
        "info",
        f"Recorded eGFR {egfr.value:g} but creatinine {creatinine.value:g} mg/dL gives about {computed:.0f}: "
        "consider repeating before dosing on either",
        "Kidney function from the same day disagrees by more than half; one of the results is wrong, and doses "
        "set by it may be too.",
        (DISCORDANT_EVIDENCE,),
        (egfr.handle, creatinine.handle),
    )


RESOLUTION_RULES: Final = (medication_unresolved, records_unreadable, renal_values_discordant)
# Patient-view only: a record to tidy, not a reason to stop an order.
RESOLUTION_CARE_GAP_RULES: Final = (allergy_category_recorded_wrongly,)

"""Builds the de-identified `ClinicalContext` of one hook call from its resolved prefetch and draft orders.

Cheap pre-selection happens on raw JSON (status, codes, dates) so that only resources we will use are
validated; each validated resource becomes a fact, facts are put in a content order (never input order or
ids, so the same chart always yields the same handles), and handles are assigned in that order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Final

from plugin import allergens, terminology
from plugin.context import codes, deid
from plugin.context.dated import not_in_force
from plugin.context.fhir_parse import USED_TYPES, ResourceRejected, validated
from plugin.context.model import (
    CHILD_DAYS_UNTIL_YEARS,
    Allergy,
    BuiltContext,
    ClinicalContext,
    Code,
    Demographics,
    Dosage,
    DraftOrder,
    Encounter,
    HandleMap,
    Immunization,
    LabSeries,
    Measurement,
    Medication,
    Pregnancy,
    Problem,
    Procedure,
    QualitativeResult,
    Sex,
    SkippedResource,
    Trend,
    UntrustedNote,
)
from plugin.context.patient import belongs, bundle_entries, patients_by_url
from plugin.context.sig import read_sig

ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})
# A condition that is over still counts for the rules where a history of it is the contraindication (a past clot
# for estrogen or raloxifene); it is kept apart from the problem list and never rendered for the model.
PAST_CONDITION = frozenset({"inactive", "remission", "resolved"})
CURRENT_MEDICATION_REQUEST = frozenset({"active", "on-hold"})
CURRENT_MEDICATION_STATEMENT = frozenset({"active", "intended"})
REFUTED = frozenset({"refuted", "entered-in-error"})
DONE = frozenset({"completed"})
NOT_DONE = "not-done"
OBSERVATION_USABLE = frozenset({"final", "amended", "corrected", "preliminary"})
ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})
SEX: dict[str, Sex] = {"female": "female", "male": "male", "other": "other"}


@dataclass(frozen=True, slots=True)
class ContextOptions:
    include_free_text: bool = False
    measurements_per_analyte: int = 4
    recent_encounters: int = 5
    recent_procedures: int = 10
    note_chars: int = 400


@dataclass(slots=True)
class _Facts:
    """Facts with their source references, before handles exist."""

    problems: list[tuple[Problem, str]] = field(default_factory=list)
    past_problems: list[tuple[Problem, str]] = field(default_factory=list)
    medications: list[tuple[Medication, str]] = field(default_factory=list)
    allergies: list[tuple[Allergy, str]] = field(default_factory=list)
    # (measurement, reference, instant): the instant orders readings taken on the same day.
    measurements: dict[str, list[tuple[Measurement, str, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    encounters: list[tuple[Encounter, str]] = field(default_factory=list)
    immunizations: list[tuple[Immunization, str]] = field(default_factory=list)
    declined_immunizations: list[Immunization] = field(default_factory=list)
    procedures: list[tuple[Procedure, str]] = field(default_factory=list)
    drafts: list[tuple[DraftOrder, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (text, source reference)
    skipped: list[SkippedResource] = field(default_factory=list)
    pregnancy_signals: list[tuple[str, str, int | None]] = field(default_factory=list)  # (status, ref, days)
    # (result, reference, instant) for the qualitative tests of codes.QUALITATIVE_TESTS.
    results: list[tuple[QualitativeResult, str, float]] = field(default_factory=list)


# --- small readers over validated models ------------------------------------------------------


def _loincs_of(raw: Mapping[str, Any]) -> list[str]:
    code = raw.get("code")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    return [
        str(c.get("code"))
        for c in (codings if isinstance(codings, list) else ())
        if isinstance(c, Mapping) and c.get("system") == "http://loinc.org"
    ]


def _names_of(raw: Mapping[str, Any]) -> list[str]:
    """The code's text and its codings' displays: where a locally coded test says what it is."""
    code = raw.get("code")
    if not isinstance(code, Mapping):
        return []
    codings = code.get("coding")
    names = [
        c.get("display") for c in (codings if isinstance(codings, list) else ()) if isinstance(c, Mapping)
    ]
    return [str(n) for n in (code.get("text"), *names) if isinstance(n, str) and n]


def _to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", value)
        if match:
            year, month, day = match.groups()
            try:
                return date(int(year), int(month or 1), int(day or 1))
            except ValueError:
                return None
    return None


def _days_ago(now: date, *values: Any) -> int | None:
    for value in values:
        when = _to_date(value)
        if when is not None:
            return (now - when).days
    return None


def _clean(text: str | None) -> str:
    # Synthea displays carry zero-width spaces; they would split tokens and defeat matching.
    return " ".join((text or "").replace("\u200b", "").split())


def _code(concept: Any) -> Code | None:
    if concept is None:
        return None
    for coding in concept.coding or ():
        if coding.code:
            display = _clean(coding.display) or _clean(concept.text) or str(coding.code)
            text = _clean(concept.text)
            if text and _adds_strength(display, text):
                # An ingredient-level code ("azithromycin") beside the prescriber's text that names the strength
                # ("azithromycin 200 mg/5 mL oral suspension"): the text is the same drug, said more fully.
                display = text
            return Code(codes.system_name(coding.system), str(coding.code), display)
    text = _clean(concept.text)
    return Code("text", text.lower(), text) if text else None


def _adds_strength(display: str, text: str) -> bool:
    return (
        not any(c.isdigit() for c in display)
        and any(c.isdigit() for c in text)
        and display.lower() in text.lower()
    )


def _status(concept: Any) -> str | None:
    if concept is None:
        return None
    for coding in concept.coding or ():
        if coding.code:
            return str(coding.code)
    return None


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _vaccine_key(immunization: Immunization) -> tuple[str, str]:
    """One vaccine: its code, or for a record named only in text, its name (two text-only vaccines are two)."""
    code = immunization.vaccine
    return (code.system, code.code) if code.code else (code.system, " ".join(code.display.lower().split()))


def _one_dosage(instruction: Any) -> tuple[Dosage, float | None]:
    """One dosage instruction, and its amount a day in its own dose unit when both are given (for choosing)."""
    dose = None
    amount: float | None = None
    for dose_and_rate in instruction.doseAndRate or ():
        quantity = dose_and_rate.doseQuantity
        # A dose range ("1-2 tablets") is read at its high end: the most the order allows is what dose limits,
        # opioid MME and acetaminophen totals are held to (CDC 2022 counts as-needed orders at their most).
        if quantity is None and dose_and_rate.doseRange is not None:
            quantity = dose_and_rate.doseRange.high or dose_and_rate.doseRange.low
        if quantity is not None and quantity.value is not None:
            dose = " ".join(p for p in (_number(quantity.value), _clean(quantity.unit)) if p)
            amount = float(quantity.value)
            break
    frequency = None
    repeat = instruction.timing.repeat if instruction.timing is not None else None
    if repeat is not None and repeat.frequency is not None and repeat.period is not None:
        frequency = f"{repeat.frequency} per {_number(repeat.period)} {repeat.periodUnit or ''}".strip()
        if amount is not None and float(repeat.period) > 0:
            amount *= float(repeat.frequency) / float(repeat.period)
    else:
        amount = None
    as_needed = bool(instruction.asNeededBoolean) or instruction.asNeededCodeableConcept is not None
    # What the structured fields leave out, the sig text may say (a patient-reported medicine, a text cap).
    sig = read_sig(_clean(instruction.text))
    dose, frequency = dose or sig.dose, frequency or sig.frequency
    route = _code(instruction.route)
    dosage = Dosage(
        dose=dose,
        route=route.display if route else None,
        frequency=frequency,
        as_needed=as_needed or sig.as_needed,
        max_daily_mg=_daily_cap_mg(instruction.maxDosePerPeriod) or sig.max_daily_mg,
        max_daily_units=_daily_cap_units(instruction.maxDosePerPeriod),
    )
    return dosage, amount


_CAP_MASS_MG: Final = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001}
_CAP_PERIOD_DAYS: Final = {"d": 1.0, "day": 1.0, "days": 1.0, "h": 1 / 24, "hour": 1 / 24, "hours": 1 / 24}


# Dose units a maxDosePerPeriod counts in: UCUM annotations ({tbl}) and the words EHRs send.
_CAP_COUNT_UNITS: Final = frozenset(
    {
        "{tbl}",
        "{tab}",
        "{capsule}",
        "{cap}",
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "capsule",
        "capsules",
        "cap",
        "caps",
    }
)


def _daily_cap(ratio: Any) -> tuple[str, float] | None:
    """maxDosePerPeriod as (its unit, amount a day) when it is over one day (or 24 hours); else None."""
    numerator = ratio.numerator if ratio is not None else None
    denominator = ratio.denominator if ratio is not None else None
    if numerator is None or denominator is None or numerator.value is None or denominator.value is None:
        return None
    period = (denominator.code or denominator.unit or "").lower()
    days = float(denominator.value) * _CAP_PERIOD_DAYS.get(period, 0.0)
    if abs(days - 1.0) > 1e-9:
        return None
    return (numerator.code or numerator.unit or "").lower(), float(numerator.value)


def _daily_cap_mg(ratio: Any) -> float | None:
    """maxDosePerPeriod as milligrams a day when it is a mass over one day (or 24 hours); else None."""
    cap = _daily_cap(ratio)
    return cap[1] * _CAP_MASS_MG[cap[0]] if cap is not None and cap[0] in _CAP_MASS_MG else None


def _daily_cap_units(ratio: Any) -> float | None:
    """maxDosePerPeriod as tablets or capsules a day; else None."""
    cap = _daily_cap(ratio)
    return cap[1] if cap is not None and cap[0] in _CAP_COUNT_UNITS else None


def _dosage(instructions: Iterable[Any]) -> Dosage:
    """The dosage the checks read. With several steps (a starter pack, a taper), the step with the largest
    amount per period when every step gives one in the same dose unit and period unit, since limits are about
    the most taken; otherwise the first, as before."""
    steps = [_one_dosage(instruction) for instruction in instructions]
    if not steps:
        return Dosage()
    comparable = (
        len(steps) > 1
        and all(amount is not None for _, amount in steps)
        and len({(d.dose or "").split(" ", 1)[-1] for d, _ in steps}) == 1
        and len({(d.frequency or "").rsplit(" ", 1)[-1] for d, _ in steps}) == 1
    )
    if comparable:
        return max(steps, key=lambda step: step[1] or 0.0)[0]
    return steps[0][0]


MAX_GESTATION_WEEKS = 44  # past this a "pregnant" problem is a record left open, not a gestational age


def _ingredients(code: Code, parsed: tuple[str, ...]) -> tuple[str, ...]:
    """The product's ingredients as the rules resolve them (codes, brands, abbreviations), else as parsed."""
    rxnorm = code.code if code.system == "rxnorm" else None
    return terminology.ingredients_of(rxnorm, code.display) or parsed


def _str(value: Any) -> str | None:
    """A JSON member that must be a string; anything else reads as absent (client data is untyped)."""
    return value if isinstance(value, str) else None


def _instant(value: Any) -> float | None:
    """Seconds since the epoch (UTC) of a FHIR date or dateTime, for ordering readings within a day."""
    text = _str(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        day = _to_date(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() if day else None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# --- collection -------------------------------------------------------------------------------


def _code_of_raw(raw: Mapping[str, Any]) -> str | None:
    code = raw.get("code")
    if not isinstance(code, Mapping):
        return None
    codings = code.get("coding")
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, Mapping) and _str(coding.get("code")):
            return str(coding["code"])
    return _str(code.get("text"))


def _raw_instant(raw: Mapping[str, Any]) -> float:
    period = raw.get("effectivePeriod")
    start = period.get("start") if isinstance(period, Mapping) else None
    for value in (raw.get("effectiveDateTime"), start, raw.get("effectiveInstant"), raw.get("issued")):
        instant = _instant(value)
        if instant is not None:
            return instant
    return float("-inf")


class _References:
    """The reference each resource is known by: Type/id, else its fullUrl, else a unique local name."""

    def __init__(self) -> None:
        self._by_object: dict[int, str] = {}
        self._anonymous = 0

    def note(self, resource: Mapping[str, Any], full_url: str | None) -> str:
        resource_id = _str(resource.get("id"))
        if resource_id is not None:
            reference = f"{resource.get('resourceType')}/{resource_id}"
        elif full_url is not None:
            reference = full_url
        else:
            self._anonymous += 1
            reference = f"{resource.get('resourceType')}/#anonymous-{self._anonymous}"
        self._by_object[id(resource)] = reference
        return reference

    def of(self, resource: Mapping[str, Any]) -> str:
        return self._by_object.get(id(resource)) or self.note(resource, None)


def _collect(
    prefetch: Mapping[str, Mapping[str, Any] | None], references: _References
) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    """Resources by type, each once (the same resource often arrives under several prefetch keys)."""
    by_type: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    seen: set[str] = set()
    for key in sorted(prefetch):
        for full_url, resource in bundle_entries(prefetch[key]):
            resource_type = _str(resource.get("resourceType"))
            if resource_type is None:
                continue
            identity = references.note(resource, full_url)
            if identity in seen:
                continue
            seen.add(identity)
            by_type[resource_type].append((key, resource))
    return by_type


class _Builder:
    def __init__(self, now: datetime, options: ContextOptions) -> None:
        self.today = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).date()
        self.options = options
        self.facts = _Facts()
        self.medications_by_ref: dict[str, Any] = {}
        self.identifying: frozenset[str] = frozenset()
        self.references = _References()

    def model(self, source: str, resource: Mapping[str, Any]) -> Any | None:
        try:
            return validated(resource)
        except ResourceRejected as exc:
            self.facts.skipped.append(SkippedResource(str(resource.get("resourceType")), source, exc.reason))
            return None

    def guarded(
        self, read: Callable[[str, Mapping[str, Any]], object], source: str, raw: Mapping[str, Any]
    ) -> Any:
        """One resource read so that a malformed one costs that resource, never the hook call (issue 19)."""
        try:
            return read(source, raw)
        except Exception as exc:  # any failure on client data is that resource's, and reported
            resource_type = str(raw.get("resourceType"))
            self.facts.skipped.append(
                SkippedResource(resource_type, source, f"invalid {resource_type} ({type(exc).__name__})")
            )
            return None

    def status(self, source: str, raw: Mapping[str, Any]) -> str | None:
        """The raw status code, checked before validation so unwanted resources cost nothing to skip."""
        value = raw.get("status")
        if value is not None and not isinstance(value, str):
            self.facts.skipped.append(
                SkippedResource(str(raw.get("resourceType")), source, "status is not a code")
            )
            return None
        return value

    def note(self, model: Any, reference: str) -> None:
        if not self.options.include_free_text:
            return
        for annotation in getattr(model, "note", None) or ():
            if annotation.text:
                self.facts.notes.append((deid.scrub(str(annotation.text), self.identifying), reference))

    # Each reader takes the raw resource, decides cheaply whether it is wanted, then validates it.

    def patient(self, candidates: list[tuple[str, Mapping[str, Any]]]) -> Demographics:
        for source, raw in candidates:
            patient = self.model(source, raw)
            if patient is None:
                continue
            birth = _to_date(patient.birthDate)
            age = None
            if birth is not None:
                age = (
                    self.today.year
                    - birth.year
                    - ((self.today.month, self.today.day) < (birth.month, birth.day))
                )
                age = min(max(age, 0), 90)
            # A death recorded after the hook's day (a chart replayed as of an earlier visit) is not yet a
            # death; an unreadable date still counts (fail closed: no cards for someone who may have died).
            died = _to_date(patient.deceasedDateTime) if patient.deceasedDateTime is not None else None
            deceased = bool(patient.deceasedBoolean) or (
                patient.deceasedDateTime is not None and (died is None or died <= self.today)
            )
            days = (self.today - birth).days if birth is not None else None
            return Demographics(
                age_years=age,
                sex=SEX.get(str(patient.gender), "unknown"),
                deceased=deceased,
                age_days=days
                if age is not None and age < CHILD_DAYS_UNTIL_YEARS and days is not None and days >= 0
                else None,
            )
        return Demographics(age_years=None, sex="unknown")

    def condition(self, source: str, raw: Mapping[str, Any]) -> None:
        model = self.model(source, raw)
        if model is None:
            return
        status = _status(model.clinicalStatus) or "active"
        code = _code(model.code)
        if code is None:
            self.facts.skipped.append(SkippedResource("Condition", source, "not coded"))
            return
        if _status(model.verificationStatus) in REFUTED or status not in ACTIVE_CONDITION | PAST_CONDITION:
            return
        reference = self.references.of(raw)
        onset = _days_ago(
            self.today,
            model.onsetDateTime,
            model.onsetPeriod.start if model.onsetPeriod else None,
            model.recordedDate,
        )
        if status in PAST_CONDITION:
            self.facts.past_problems.append((Problem("", code, status, onset), reference))
            return
        self.facts.problems.append((Problem("", code, status, onset), reference))
        if codes.is_pregnancy_condition(code.system, code.code, code.display):
            self.facts.pregnancy_signals.append(("pregnant", reference, onset))
        self.note(model, reference)

    def medication_code(self, model: Any, raw: Mapping[str, Any]) -> Code | None:
        if model.medicationCodeableConcept is not None:
            return _code(model.medicationCodeableConcept)
        reference = str(model.medicationReference.reference or "") if model.medicationReference else ""
        if reference.startswith("#"):
            # A contained Medication: read it from this resource, validated like any other.
            contained = raw.get("contained")
            for candidate in contained if isinstance(contained, list) else ():
                if isinstance(candidate, Mapping) and candidate.get("id") == reference[1:]:
                    try:
                        return _code(validated(candidate).code)
                    except ResourceRejected:
                        return None
            return None
        medication = self.medications_by_ref.get(reference)
        return _code(medication.code) if medication is not None else None

    def medication(self, source: str, raw: Mapping[str, Any]) -> None:
        resource_type = raw.get("resourceType")
        current = (
            CURRENT_MEDICATION_REQUEST
            if resource_type == "MedicationRequest"
            else CURRENT_MEDICATION_STATEMENT
        )
        if self.status(source, raw) not in current:
            return
        model = self.model(source, raw)
        if model is None:
            return
        code = self.medication_code(model, raw)
        if code is None:
            self.facts.skipped.append(SkippedResource(str(resource_type), source, "medication not coded"))
            return
        product = codes.parse_product(code.display)
        if resource_type == "MedicationRequest":
            dosage, authored = _dosage(model.dosageInstruction or ()), _days_ago(self.today, model.authoredOn)
        else:
            period_start = model.effectivePeriod.start if model.effectivePeriod else None
            dosage = _dosage(model.dosage or ())
            authored = _days_ago(self.today, model.effectiveDateTime, period_start, model.dateAsserted)
        reference = self.references.of(raw)
        medication = Medication(
            "",
            code,
            _ingredients(code, product.ingredients),
            product.strength,
            str(model.status),
            dosage,
            authored,
            resource_type,  # type: ignore[arg-type]
        )
        self.facts.medications.append((medication, reference))
        self.note(model, reference)

    def allergy(self, source: str, raw: Mapping[str, Any]) -> None:
        model = self.model(source, raw)
        if model is None:
            return
        status = _status(model.clinicalStatus) or "active"
        substance = _code(model.code)
        if substance is None:
            self.facts.skipped.append(SkippedResource("AllergyIntolerance", source, "substance not coded"))
            return
        if status != "active" or _status(model.verificationStatus) in REFUTED:
            return
        reactions = sorted(
            {
                manifestation.display
                for reaction in model.reaction or ()
                for concept in reaction.manifestation or ()
                if (manifestation := _code(concept)) is not None
            }
        )
        reference = self.references.of(raw)
        recorded = tuple(sorted({str(c) for c in model.category or ()}))
        category = allergens.categories(substance, recorded)
        allergy = Allergy(
            "",
            substance,
            category,
            str(model.criticality) if model.criticality else None,
            status,
            tuple(reactions),
            str(model.type) if model.type else None,
            recorded if recorded and category != recorded else (),
        )
        self.facts.allergies.append((allergy, reference))
        self.note(model, reference)

    def observation_key(self, raw: Mapping[str, Any]) -> str | None:
        """Which series a raw Observation could feed (an analyte, `bp-panel` or `pregnancy`), cheaply."""
        if _str(raw.get("status")) not in OBSERVATION_USABLE:
            return None
        code = raw.get("code")
        codings = code.get("coding") if isinstance(code, Mapping) else None
        for coding in codings if isinstance(codings, list) else ():
            if not isinstance(coding, Mapping) or coding.get("system") != "http://loinc.org":
                continue
            loinc = str(coding.get("code"))
            if loinc == codes.PREGNANCY_STATUS_LOINC:
                return "pregnancy"
            if loinc in codes.BP_PANELS:
                return "bp-panel"
            analyte = codes.analyte_for_loinc(loinc)
            if analyte is not None:
                return analyte.key
        test = codes.qualitative_test_for(_loincs_of(raw), _names_of(raw))
        return f"result:{test.key}" if test is not None else None

    def observations(self, items: list[tuple[str, Mapping[str, Any]]]) -> None:
        """Validate only the newest few of each series: the rest would be read and thrown away."""
        by_key: dict[str, list[tuple[float, str, str, Mapping[str, Any]]]] = defaultdict(list)
        for source, raw in items:
            if self.status(source, raw) is None and "status" in raw:
                continue
            key = self.observation_key(raw)
            if key is None:
                if _code_of_raw(raw) is None:
                    self.facts.skipped.append(SkippedResource("Observation", source, "not coded"))
                continue
            by_key[key].append((-_raw_instant(raw), self.references.of(raw), source, raw))
        wanted = self.options.measurements_per_analyte
        for key, candidates in by_key.items():
            counted = "systolic_bp" if key == "bp-panel" else key
            # Newest first by the full timestamp. Readings sharing the boundary instant are all read,
            # so which of them is kept is decided on content later, never on ids or input order.
            last_read: float | None = None
            for negative_instant, _, source, raw in sorted(candidates, key=lambda c: (c[0], c[1])):
                if key.startswith("result:"):
                    self.guarded(self.qualitative, source, raw)
                    continue
                if key == "pregnancy":
                    if self.guarded(self.observation, source, raw):
                        break  # the newest readable pregnancy status decides
                    continue
                enough = len(self.facts.measurements.get(counted, ())) >= wanted
                if enough and negative_instant != last_read:
                    break
                self.guarded(self.observation, source, raw)
                last_read = negative_instant

    def observation(self, source: str, raw: Mapping[str, Any]) -> bool:
        loincs = [
            c.get("code")
            for c in (raw.get("code") or {}).get("coding") or ()
            if isinstance(c, Mapping) and c.get("system") == "http://loinc.org"
        ]
        is_pregnancy = codes.PREGNANCY_STATUS_LOINC in loincs
        is_panel = any(code in codes.BP_PANELS for code in loincs)
        analyte = next((a for code in loincs if (a := codes.analyte_for_loinc(str(code))) is not None), None)
        model = self.model(source, raw)
        if model is None:
            return False
        if any(component.code is None for component in model.component or ()):
            # component.code is required (1..1); a component without one cannot say what it measured.
            self.facts.skipped.append(
                SkippedResource("Observation", source, "invalid component.code (missing)")
            )
            return False
        reference = self.references.of(raw)
        period_start = model.effectivePeriod.start if model.effectivePeriod else None
        days = _days_ago(
            self.today, model.effectiveDateTime, period_start, model.effectiveInstant, model.issued
        )
        interpretation = _status(model.interpretation[0]) if model.interpretation else None
        if is_pregnancy:
            value = _status(model.valueCodeableConcept)
            if value in codes.PREGNANT_VALUES:
                self.facts.pregnancy_signals.append(("pregnant", reference, days))
            elif value in codes.NOT_PREGNANT_VALUES:
                self.facts.pregnancy_signals.append(("not-pregnant", reference, days))
            else:
                return False
            return True
        parts: list[tuple[Any, Any]] = []
        if analyte is not None:
            parts.append((analyte, model.valueQuantity))
        for component in model.component or () if is_panel or analyte is None else ():
            component_code = next(
                (c.code for c in component.code.coding or () if c.system == "http://loinc.org"), None
            )
            component_analyte = codes.analyte_for_loinc(str(component_code)) if component_code else None
            if component_analyte is not None:
                parts.append((component_analyte, component.valueQuantity))
        for part_analyte, quantity in parts:
            if quantity is None or quantity.value is None:
                continue
            normalised = codes.normalise_value(
                part_analyte, float(quantity.value), quantity.unit, quantity.code
            )
            if normalised is None:
                self.facts.skipped.append(
                    SkippedResource("Observation", source, f"{part_analyte.key}: unit or value not usable")
                )
                continue
            measurement = Measurement(
                "", part_analyte.key, round(normalised, 2), part_analyte.unit, days, interpretation
            )
            self.facts.measurements[part_analyte.key].append((measurement, reference, _raw_instant(raw)))
        self.note(model, reference)
        return True

    def qualitative(self, source: str, raw: Mapping[str, Any]) -> bool:
        """A qualitative answer (positive, negative, or indeterminate when it says neither) to a known test."""
        test = codes.qualitative_test_for(_loincs_of(raw), _names_of(raw))
        model = self.model(source, raw)
        if test is None or model is None:
            return False
        answers = [model.valueCodeableConcept, *(model.interpretation or ())]
        coded = [
            str(c.code) for concept in answers if concept is not None for c in concept.coding or () if c.code
        ]
        texts = [str(concept.text) for concept in answers if concept is not None and concept.text]
        if model.valueString:
            texts.append(str(model.valueString))
        answer = codes.qualitative_answer(coded, texts)
        if test.positive_text is not None and any(test.positive_text.search(t) for t in texts):
            answer = "positive"
        elif test.negative_text is not None and any(test.negative_text.search(t) for t in texts):
            answer = "negative"
        quantity = model.valueQuantity
        if (
            answer is None
            and test.positive_from is not None
            and quantity is not None
            and quantity.value is not None
        ):
            answer = "positive" if float(quantity.value) >= test.positive_from else "negative"
        period_start = model.effectivePeriod.start if model.effectivePeriod else None
        days = _days_ago(
            self.today, model.effectiveDateTime, period_start, model.effectiveInstant, model.issued
        )
        result = QualitativeResult("", test.key, test.label, answer or "indeterminate", days)
        self.facts.results.append((result, self.references.of(raw), _raw_instant(raw)))
        return True

    def encounter(self, source: str, raw: Mapping[str, Any]) -> None:
        model = self.model(source, raw)
        if model is None or str(model.status) in REFUTED:
            return
        kind = model.class_fhir.display or model.class_fhir.code if model.class_fhir is not None else None
        reason = next((c.display for concept in model.reasonCode or () if (c := _code(concept))), None)
        if reason is None:
            reason = next((c.display for concept in model.type or () if (c := _code(concept))), None)
        days = _days_ago(self.today, model.period.start if model.period else None)
        self.facts.encounters.append(
            (Encounter("", _encounter_kind(kind), reason, days), self.references.of(raw))
        )

    def immunization(self, source: str, raw: Mapping[str, Any]) -> None:
        status = self.status(source, raw)
        if status not in DONE and status != NOT_DONE:
            return
        model = self.model(source, raw)
        vaccine = _code(model.vaccineCode) if model is not None else None
        if model is None or vaccine is None:
            return
        days = _days_ago(self.today, model.occurrenceDateTime, model.occurrenceString)
        if status == NOT_DONE:
            self.facts.declined_immunizations.append(Immunization("", vaccine, days))
            return
        self.facts.immunizations.append((Immunization("", vaccine, days), self.references.of(raw)))

    def procedure(self, source: str, raw: Mapping[str, Any]) -> None:
        if self.status(source, raw) not in DONE:
            return
        model = self.model(source, raw)
        code = _code(model.code) if model is not None else None
        if model is None or code is None or (code.system, code.code) in codes.ADMINISTRATIVE_PROCEDURES:
            return
        start = model.performedPeriod.start if model.performedPeriod else None
        days = _days_ago(self.today, model.performedDateTime, start)
        self.facts.procedures.append((Procedure("", code, days), self.references.of(raw)))
        self.note(model, self.references.of(raw))

    def draft(self, raw: Mapping[str, Any]) -> None:
        model = self.model("draftOrders", raw)
        if model is None:
            return
        resource_type = str(raw.get("resourceType"))
        if resource_type == "MedicationRequest":
            code = self.medication_code(model, raw)
            dosage = _dosage(model.dosageInstruction or ())
        else:
            code = _code(getattr(model, "code", None))
            dosage = Dosage()
        if code is None:
            self.facts.skipped.append(SkippedResource(resource_type, "draftOrders", "order not coded"))
            return
        product = codes.parse_product(code.display) if resource_type == "MedicationRequest" else None
        draft = DraftOrder(
            "",
            resource_type,
            code,
            _ingredients(code, product.ingredients) if product else (),
            product.strength if product else None,
            dosage,
            str(getattr(model, "status", "") or "draft"),
            str(getattr(model, "intent", "") or "order"),
        )
        self.facts.drafts.append((draft, self.references.of(raw)))
        self.note(model, self.references.of(raw))


def _encounter_kind(code: str | None) -> str:
    kinds = {
        "AMB": "ambulatory",
        "EMER": "emergency",
        "IMP": "inpatient",
        "ACUTE": "inpatient",
        "HH": "home",
        "VR": "virtual",
        "OBSENC": "observation",
        "SS": "short stay",
        "FLD": "field",
    }
    return kinds.get(code or "", (code or "unknown").lower())


def _trend(values: list[float]) -> Trend | None:
    """Newest vs the mean of the rest: a 10% change is a direction, less is stable."""
    if len(values) < 2:
        return None
    baseline = sum(values[1:]) / len(values[1:])
    if baseline == 0:
        return None
    change = (values[0] - baseline) / abs(baseline)
    return "rising" if change > 0.1 else "falling" if change < -0.1 else "stable"


def _age_key(days: int | None) -> int:
    return days if days is not None else 1_000_000


class _Handles:
    def __init__(self) -> None:
        self.map = HandleMap()
        self._counters: dict[str, int] = defaultdict(int)

    def assign(self, prefix: str, reference: str) -> str:
        self._counters[prefix] += 1
        handle = f"{prefix}{self._counters[prefix]}"
        self.map.references[handle] = reference
        return handle


def build_context(
    prefetch: Mapping[str, Mapping[str, Any] | None],
    now: datetime,
    draft_orders: Mapping[str, Any] | None = None,
    options: ContextOptions | None = None,
    patient_id: str | None = None,
) -> BuiltContext:
    """Never raises for bad data: unusable resources are listed in `context.skipped`.

    With `patient_id`, a resource that names another patient (plugin.context.patient) is never used: the
    edge refuses such calls (cds_hooks.patient_check), and this keeps any other caller from mixing charts.
    """
    options = options or ContextOptions()
    builder = _Builder(now, options)
    by_type = _collect(prefetch, builder.references)
    facts = builder.facts
    by_url = patients_by_url({**prefetch, "draftOrders": draft_orders}) if patient_id is not None else {}
    if patient_id is not None:
        for resource_type, items in by_type.items():
            kept = []
            for source, raw in items:
                if belongs(raw, patient_id, by_url):
                    kept.append((source, raw))
                else:
                    facts.skipped.append(SkippedResource(resource_type, source, "another patient's record"))
            by_type[resource_type] = kept
    for resource_type, items in by_type.items():
        if resource_type not in USED_TYPES:
            continue
        if resource_type == "Medication":
            for source, raw in items:
                model = builder.guarded(builder.model, source, raw)
                if model is not None:
                    builder.medications_by_ref[builder.references.of(raw)] = model
    patients = by_type.get("Patient", [])
    if options.include_free_text:
        builder.identifying = deid.identifying_terms(patients[0][1] if patients else None)
    try:
        demographics = builder.patient(patients)
    except Exception as exc:  # a malformed Patient costs the demographics, never the call
        demographics = Demographics(age_years=None, sex="unknown")
        facts.skipped.append(SkippedResource("Patient", "patient", f"invalid Patient ({type(exc).__name__})"))
    readers = {
        "Condition": builder.condition,
        "MedicationRequest": builder.medication,
        "MedicationStatement": builder.medication,
        "AllergyIntolerance": builder.allergy,
        "Encounter": builder.encounter,
        "Immunization": builder.immunization,
        "Procedure": builder.procedure,
    }
    for resource_type, read in readers.items():
        for source, raw in by_type.get(resource_type, ()):
            builder.guarded(read, source, raw)
    builder.observations(list(by_type.get("Observation", ())))
    for full_url, raw in bundle_entries(draft_orders):
        builder.references.note(raw, full_url)
        if patient_id is not None and not belongs(raw, patient_id, by_url):
            facts.skipped.append(
                SkippedResource(str(raw.get("resourceType")), "draftOrders", "another patient's record")
            )
        elif _str(raw.get("resourceType")) in ORDER_TYPES:
            builder.guarded(lambda _, order: builder.draft(order), "draftOrders", raw)
        else:
            facts.skipped.append(
                SkippedResource(
                    str(raw.get("resourceType")), "draftOrders", "order type not reviewed", unreadable=False
                )
            )
    return _finish(facts, demographics, options, builder.today)


def _finish(facts: _Facts, demographics: Demographics, options: ContextOptions, today: date) -> BuiltContext:
    handles = _Handles()

    def ordered(items: list[tuple[Any, str]], key: Any) -> list[tuple[Any, str]]:
        # Content order, reference last only to break exact ties: handles must not depend on input order.
        return sorted(items, key=lambda item: (key(item[0]), item[1]))

    problems = tuple(
        replace(p, handle=handles.assign("C", ref))
        for p, ref in ordered(
            facts.problems, lambda p: (p.code.system, p.code.code, _age_key(p.onset_days_ago))
        )
    )
    past_problems = tuple(
        replace(p, handle=handles.assign("H", ref))
        for p, ref in ordered(
            facts.past_problems, lambda p: (p.code.system, p.code.code, _age_key(p.onset_days_ago))
        )
    )
    medications = tuple(
        replace(m, handle=handles.assign("M", ref))
        for m, ref in ordered(
            facts.medications, lambda m: (m.ingredients, m.code.code, _age_key(m.authored_days_ago))
        )
    )
    allergies = tuple(
        replace(a, handle=handles.assign("A", ref))
        for a, ref in ordered(
            facts.allergies, lambda a: (a.substance.system, a.substance.code, a.criticality or "")
        )
    )
    labs: list[LabSeries] = []
    observation_handles: dict[str, str] = {}

    def observation_handle(reference: str) -> str:
        # A blood-pressure panel yields two measurements from one resource: one handle serves both.
        if reference not in observation_handles:
            observation_handles[reference] = handles.assign("O", reference)
        return observation_handles[reference]

    for analyte in sorted(facts.measurements, key=lambda k: tuple(codes.ANALYTES).index(k)):
        # Newest first; same-instant readings by value, so the choice never depends on ids or order.
        newest = sorted(facts.measurements[analyte], key=lambda item: (-item[2], item[0].value, item[1]))
        kept = newest[: options.measurements_per_analyte]
        series = tuple(replace(m, handle=observation_handle(ref)) for m, ref, _ in kept)
        labs.append(
            LabSeries(analyte, codes.ANALYTES[analyte].label, series, _trend([m.value for m in series]))
        )
    encounters = tuple(
        replace(e, handle=handles.assign("E", ref))
        for e, ref in ordered(facts.encounters, lambda e: (_age_key(e.days_ago), e.kind, e.reason or ""))[
            : options.recent_encounters
        ]
    )
    latest_vaccines: dict[tuple[str, str], tuple[Immunization, str]] = {}
    dose_counts: dict[tuple[str, str], int] = {}
    earliest: dict[tuple[str, str], int] = {}
    for immunization, ref in ordered(facts.immunizations, lambda i: (_age_key(i.days_ago), i.vaccine.code)):
        key = _vaccine_key(immunization)
        latest_vaccines.setdefault(key, (immunization, ref))
        dose_counts[key] = dose_counts.get(key, 0) + 1
        if immunization.days_ago is not None:
            earliest[key] = max(earliest.get(key, immunization.days_ago), immunization.days_ago)
    immunizations = tuple(
        replace(
            i,
            handle=handles.assign("I", ref),
            doses=dose_counts[_vaccine_key(i)],
            first_days_ago=earliest.get(_vaccine_key(i)),
        )
        for i, ref in ordered(list(latest_vaccines.values()), _vaccine_key)
    )
    procedures = tuple(
        replace(p, handle=handles.assign("P", ref))
        for p, ref in ordered(facts.procedures, lambda p: (_age_key(p.days_ago), p.code.code))[
            : options.recent_procedures
        ]
    )
    drafts = tuple(
        replace(d, handle=handles.assign("D", ref))
        for d, ref in ordered(
            facts.drafts, lambda d: (d.resource_type, d.code.system, d.code.code, d.strength or "")
        )
    )
    for _, reference, _ in facts.pregnancy_signals:
        if reference.startswith("Observation/") or reference not in handles.map.references.values():
            observation_handle(reference)
    by_reference = {ref: h for h, ref in handles.map.references.items()}
    pregnancy = Pregnancy("unknown")
    if facts.pregnancy_signals:
        # The newest signal decides; a dated "not pregnant" after a pregnancy diagnosis wins.
        status, _, _ = min(facts.pregnancy_signals, key=lambda s: _age_key(s[2]))
        evidence = tuple(
            sorted(
                by_reference[ref]
                for s, ref, _ in facts.pregnancy_signals
                if s == status and ref in by_reference
            )
        )
        onsets = [
            days
            for s, ref, days in facts.pregnancy_signals
            if s == "pregnant" and ref.startswith("Condition/") and days is not None and days >= 0
        ]
        weeks = max(onsets) // 7 if status == "pregnant" and onsets else None
        pregnancy = Pregnancy(
            status,  # type: ignore[arg-type]
            evidence,
            weeks if weeks is not None and weeks <= MAX_GESTATION_WEEKS else None,
        )
    results = tuple(
        replace(r, handle=observation_handle(ref))
        for r, ref, _ in sorted(
            facts.results, key=lambda item: (-item[2], item[0].test, item[0].result, item[1])
        )
    )
    notes = tuple(
        UntrustedNote(handles.assign("N", ref), text[: options.note_chars])
        for text, ref in sorted(facts.notes, key=lambda n: n[0])
    )
    context = ClinicalContext(
        demographics=demographics,
        problems=problems,
        past_problems=past_problems,
        medications=medications,
        allergies=allergies,
        labs=tuple(labs),
        results=results,
        encounters=encounters,
        immunizations=immunizations,
        declined_immunizations=tuple(facts.declined_immunizations),
        procedures=procedures,
        draft_orders=drafts,
        pregnancy=pregnancy,
        notes=notes,
        skipped=tuple(sorted(facts.skipped, key=lambda s: (s.resource_type, s.source, s.reason))),
        month=today.month,
        days_since_august_1=(today - date(today.year if today.month >= 8 else today.year - 1, 8, 1)).days,
        recommendations_not_in_force=not_in_force(today),
    )
    return BuiltContext(context, handles.map)

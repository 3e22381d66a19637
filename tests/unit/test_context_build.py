"""Clinical context building over the public fixtures: coverage, clinical facts, handles, order and budget."""

from __future__ import annotations

import importlib
import json
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from plugin.context import codes
from plugin.context.build import ContextOptions, build_context
from plugin.context.model import BuiltContext
from plugin.context.render import render
from tests.support.charts import (
    LOINC,
    NOW,
    SNOMED,
    UCUM,
    JsonDict,
    bundle_of,
    chart_names,
    chart_path,
    chart_prefetch,
    coding_codes,
    draft_orders,
    ibuprofen_draft,
    raw_bundle,
    raw_patient,
    raw_resources,
    rendered_sections,
    resource_ids,
    shuffle_entries,
)
from tests.support.fixtures_paths import SHARED_FIXTURES, require_shared_fixtures

pytestmark = pytest.mark.unit

TODAY = NOW.date()
BIG_BUDGET = 100_000
TINY_BUDGET = 300

# The resource types DESIGN §2.4 says the context keeps (Medication too: medicationReference targets).
CONTEXT_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "Medication",
        "AllergyIntolerance",
        "Observation",
        "Encounter",
        "Immunization",
        "Procedure",
    }
)
SAFETY_SECTIONS = (
    "PATIENT",
    "ALLERGIES AND INTOLERANCES",
    "CURRENT MEDICATIONS",
    "DRAFT ORDERS",
    "RENAL, POTASSIUM, INR",
)
OPTIONAL_SECTIONS = (
    "ACTIVE PROBLEMS",
    "OTHER LABS AND VITALS",
    "RECENT ENCOUNTERS",
    "PROCEDURES",
    "IMMUNIZATIONS",
    "CHART NOTES",
)
# Our own short list of LOINC codes per analyte (Synthea's codes), kept apart from plugin.context.codes so
# the expected series come from the raw bundle, not from the catalog under test.
ANALYTE_LOINC: dict[str, frozenset[str]] = {
    "egfr": frozenset({"33914-3"}),
    "creatinine": frozenset({"38483-4", "2160-0"}),
    "potassium": frozenset({"6298-4", "2823-3"}),
    "inr": frozenset({"6301-6", "34714-6"}),
    "sodium": frozenset({"2947-0", "2951-2"}),
    "hba1c": frozenset({"4548-4"}),
    "hemoglobin": frozenset({"718-7"}),
    "glucose": frozenset({"2339-0", "2345-7"}),
    "systolic_bp": frozenset({"8480-6"}),
    "diastolic_bp": frozenset({"8462-4"}),
    "weight": frozenset({"29463-7"}),
    "height": frozenset({"8302-2"}),
    "bmi": frozenset({"39156-5"}),
}
RENAL_POTASSIUM_INR = ("egfr", "creatinine", "potassium", "inr")
CHILDREN = ("Claudie_Walsh", "Versie_Botsford", "Daisey_Johns", "Gerardo_Botello")


# --- independent readings of the raw bundle ---------------------------------------------------------------


def age_on(birth_date: str, today: date) -> int:
    born = date.fromisoformat(birth_date[:10])
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def utc_date(value: str) -> date:
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value).astimezone(UTC).date()


def current_medication_requests(bundle: Mapping[str, Any]) -> list[JsonDict]:
    return [r for r in raw_resources(bundle, "MedicationRequest") if r.get("status") in ("active", "on-hold")]


def active_allergies(bundle: Mapping[str, Any]) -> list[JsonDict]:
    return [
        r
        for r in raw_resources(bundle, "AllergyIntolerance")
        if coding_codes(r.get("clinicalStatus")) == {"active"}
        and not coding_codes(r.get("verificationStatus")) & {"refuted", "entered-in-error"}
    ]


def raw_measurements(bundle: Mapping[str, Any], analyte: str) -> list[tuple[str, float, str]]:
    """(effectiveDateTime, value, Observation id) of every final reading, top-level or in a component."""
    wanted = ANALYTE_LOINC[analyte]
    found: list[tuple[str, float, str]] = []
    for observation in raw_resources(bundle, "Observation"):
        if observation.get("status") not in ("final", "amended", "corrected"):
            continue
        parts = [observation, *(observation.get("component") or ())]
        for part in parts:
            quantity = part.get("valueQuantity")
            if coding_codes(part.get("code"), LOINC) & wanted and quantity and "value" in quantity:
                found.append((observation["effectiveDateTime"], float(quantity["value"]), observation["id"]))
    return found


def reference_exists(bundle: Mapping[str, Any], reference: str) -> bool:
    resource_type, _, resource_id = reference.partition("/")
    return any(r.get("id") == resource_id for r in raw_resources(bundle, resource_type))


def build(name: str, **kwargs: Any) -> tuple[BuiltContext, JsonDict, str]:
    """The chart's context (from its EHR-style prefetch) and its raw bundle."""
    path = chart_path(name)
    prefetch, _, patient_id = chart_prefetch(path)
    return build_context(prefetch, NOW, **kwargs), raw_bundle(path), patient_id


def ingredients(built: BuiltContext) -> set[str]:
    return {i for m in built.context.medications for i in m.ingredients}


# --- every Synthea chart ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", chart_names())
def test_chart_builds_completely(name: str) -> None:
    built, bundle, _ = build(name)
    context = built.context
    assert context.skipped == ()
    assert len(context.medications) == len(current_medication_requests(bundle))
    assert len(context.allergies) == len(active_allergies(bundle))
    patient = raw_patient(bundle)
    assert context.demographics.sex == patient["gender"]
    assert context.demographics.age_years == min(age_on(patient["birthDate"], TODAY), 90)


@pytest.mark.parametrize("name", chart_names())
def test_past_conditions_are_kept_apart_and_never_rendered(name: str) -> None:
    built, bundle, _ = build(name)
    context = built.context
    past = [
        c
        for c in raw_resources(bundle, "Condition")
        if c.get("clinicalStatus", {}).get("coding", [{}])[0].get("code")
        in ("resolved", "inactive", "remission")
        and c.get("verificationStatus", {}).get("coding", [{}])[0].get("code")
        not in ("refuted", "entered-in-error")
    ]
    assert len(context.past_problems) == len(past)
    assert all(p.handle.startswith("H") and p.clinical_status != "active" for p in context.past_problems)
    assert all(p.clinical_status in ("active", "recurrence", "relapse") for p in context.problems)
    model_input = render(context, budget_tokens=100_000)
    assert not {p.handle for p in context.past_problems} & set(model_input.handles)


@pytest.mark.parametrize("name", chart_names())
def test_chart_labs_match_the_raw_bundle(name: str) -> None:
    path = chart_path(name)
    prefetch, _, _ = chart_prefetch(path)
    built, bundle = build_context(prefetch, NOW), raw_bundle(path)
    # `labs` asks for the newest 200 (`_count=200`): older readings of long charts are on later pages.
    fetched = resource_ids(prefetch)
    measured = {analyte: raw_measurements(bundle, analyte) for analyte in ANALYTE_LOINC}
    assert bool(built.context.labs) == any(measured.values())
    for analyte, readings in measured.items():
        series = built.context.series(analyte)
        if not readings:
            assert series is None, analyte
            continue
        assert series is not None, analyte
        newest = max(readings, key=lambda r: utc_date(r[0]))
        newest_day = utc_date(newest[0])
        # Two readings may share the newest day (Synthea repeats panels): any of them may be the latest.
        same_day = [r for r in readings if utc_date(r[0]) == newest_day]
        assert any(abs(series.latest.value - value) < 0.006 for _, value, _ in same_day), analyte
        assert series.latest.days_ago == (TODAY - newest_day).days
        assert len(series.measurements) == min(4, len([r for r in readings if r[2] in fetched]))


def test_coverage_matches_the_fixture_notes() -> None:
    """The shared set's coverage as SOURCES.md states it, counted over the built contexts."""
    contexts = [build(name)[0].context for name in chart_names()]

    def charts_on(ingredient: str) -> int:
        return sum(any(ingredient in m.ingredients for m in c.medications) for c in contexts)

    assert len(contexts) == 20
    assert sum(bool(c.medications) for c in contexts) == 18
    assert sum(len(c.medications) >= 5 for c in contexts) == 9
    assert sum(bool(c.allergies) for c in contexts) == 8
    assert sum(c.series("egfr") is not None for c in contexts) == 7
    assert sum(c.series("creatinine") is not None for c in contexts) == 7
    assert sum(c.series("hba1c") is not None for c in contexts) == 6
    assert sum(c.series("inr") is not None for c in contexts) == 0
    assert sum(c.pregnancy.status == "pregnant" for c in contexts) == 2
    assert (charts_on("warfarin"), charts_on("clopidogrel"), charts_on("metformin")) == (6, 3, 4)


def test_clarine_okeefe_anticoagulated_with_reduced_renal_function() -> None:
    built, bundle, _ = build("Clarine_O'Keefe")
    assert ingredients(built) == {"warfarin", "digoxin", "verapamil", "metformin"}
    displays = [
        r["medicationCodeableConcept"]["coding"][0]["display"].lower()
        for r in current_medication_requests(bundle)
    ]
    for medication in built.context.medications:
        reference = built.handles.resolve(medication.handle)
        assert reference is not None and reference.startswith("MedicationRequest/")
        source = next(
            r for r in raw_resources(bundle, "MedicationRequest") if r["id"] == reference.split("/")[1]
        )
        assert (
            medication.ingredients[0] in source["medicationCodeableConcept"]["coding"][0]["display"].lower()
        )
    assert all(any(i in d for d in displays) for i in ("warfarin", "digoxin", "verapamil", "metformin"))
    readings = raw_measurements(bundle, "egfr")
    when, value, observation_id = max(readings, key=lambda r: datetime.fromisoformat(r[0]))
    assert value == pytest.approx(40.9, abs=0.05)
    egfr = built.context.series("egfr")
    assert egfr is not None
    assert egfr.latest.value == pytest.approx(value, abs=0.006)
    assert egfr.latest.days_ago == (TODAY - utc_date(when)).days
    assert built.handles.resolve(egfr.latest.handle) == f"Observation/{observation_id}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Derek_Becker", {"warfarin", "naproxen"}), ("Asa_Hermiston", {"methotrexate", "naproxen"})],
)
def test_interacting_medications_are_current(name: str, expected: set[str]) -> None:
    built, _, _ = build(name)
    assert expected <= ingredients(built)


@pytest.mark.parametrize("name", ["Nereida_Rogahn", "Shameka_Marvin"])
def test_pregnancy_with_condition_evidence(name: str) -> None:
    built, bundle, _ = build(name)
    pregnancy = built.context.pregnancy
    assert pregnancy.status == "pregnant"
    expected = {
        f"Condition/{c['id']}"
        for c in raw_resources(bundle, "Condition")
        if "72892002" in coding_codes(c.get("code"), SNOMED)
        and coding_codes(c.get("clinicalStatus")) == {"active"}
    }
    assert expected, "the fixture has an active Normal pregnancy condition"
    assert {built.handles.resolve(h) for h in pregnancy.evidence} == expected
    patient_line = rendered_sections(render(built.context).text)["PATIENT"][0]
    assert "pregnancy pregnant" in patient_line
    assert all(h in patient_line for h in pregnancy.evidence)


def test_very_old_patient_age_is_bucketed() -> None:
    built, bundle, _ = build("Trey_Berge")
    assert age_on(raw_patient(bundle)["birthDate"], TODAY) > 100
    assert built.context.demographics.age_label == "90+"
    assert "age 90+;" in render(built.context).text


@pytest.mark.parametrize("name", CHILDREN)
def test_children_ages(name: str) -> None:
    built, bundle, _ = build(name)
    expected = age_on(raw_patient(bundle)["birthDate"], TODAY)
    assert expected < 18
    assert built.context.demographics.age_years == expected
    assert built.context.demographics.age_label == str(expected)


def test_draft_order_becomes_d1() -> None:
    path = chart_path("Derek_Becker")
    prefetch, _, patient_id = chart_prefetch(path)
    built = build_context(prefetch, NOW, draft_orders=draft_orders(ibuprofen_draft(patient_id)))
    (draft,) = built.context.draft_orders
    assert draft.handle == "D1"
    assert draft.ingredients == ("ibuprofen",)
    assert draft.code.code == "197806"
    assert built.handles.resolve("D1") == "MedicationRequest/draft-ibuprofen"
    lines = rendered_sections(render(built.context).text)["DRAFT ORDERS"]
    assert len(lines) == 1 and lines[0].startswith("D1 ") and "ibuprofen" in lines[0]


# --- handles ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", chart_names())
def test_every_rendered_handle_resolves_to_a_resource_of_the_chart(name: str) -> None:
    path = chart_path(name)
    prefetch, _, patient_id = chart_prefetch(path)
    built = build_context(prefetch, NOW, draft_orders=draft_orders(ibuprofen_draft(patient_id)))
    rendered = render(built.context, BIG_BUDGET)
    assert set(rendered.handles) <= set(built.handles.references)
    # Older values of routine labs and repeats of a procedure are counted, not listed; every other fact is.
    c = built.context
    listed = [
        *(x.handle for group in (c.problems, c.medications, c.allergies, c.draft_orders) for x in group),
        *(x.handle for group in (c.encounters, c.immunizations, c.notes) for x in group),
        *(
            m.handle
            for s in c.labs
            if codes.ANALYTES[s.analyte].safety
            for previous, m in zip((None, *s.measurements), s.measurements, strict=False)
            # a result filed twice (same value, unit and day) is listed once
            if previous is None
            or (m.value, m.unit, m.days_ago) != (previous.value, previous.unit, previous.days_ago)
        ),
        *(s.measurements[0].handle for s in c.labs),
    ]
    assert set(listed) <= set(rendered.handles)
    bundle = raw_bundle(path)
    for handle in rendered.handles:
        reference = built.handles.resolve(handle)
        assert reference is not None, handle
        if handle.startswith("D"):
            assert reference == "MedicationRequest/draft-ibuprofen"
        else:
            assert reference_exists(bundle, reference), (handle, reference)


def test_no_two_handles_share_a_reference() -> None:
    offenders: dict[str, list[str]] = {}
    for name in chart_names():
        built, _, _ = build(name)
        references = [built.handles.resolve(h) for h in render(built.context, BIG_BUDGET).handles]
        duplicates = {r for r in references if references.count(r) > 1}
        if duplicates:
            offenders[name] = sorted(str(r) for r in duplicates)
    assert offenders == {}


@pytest.mark.parametrize("name", chart_names())
def test_handles_do_not_depend_on_entry_order(name: str) -> None:
    path = chart_path(name)
    prefetch, _, patient_id = chart_prefetch(path)
    drafts = draft_orders(
        ibuprofen_draft(patient_id), ibuprofen_draft(patient_id, "draft-2") | {"status": "active"}
    )
    reference = build_context(prefetch, NOW, draft_orders=drafts)
    expected = render(reference.context, BIG_BUDGET).text
    for seed in (1, 2):
        rng = random.Random(seed)
        shuffled_drafts = dict(drafts, entry=rng.sample(drafts["entry"], len(drafts["entry"])))
        built = build_context(shuffle_entries(prefetch, rng), NOW, draft_orders=shuffled_drafts)
        assert render(built.context, BIG_BUDGET).text == expected
        assert built.handles.references == reference.handles.references


def potassium(observation_id: str, value: float, when: str) -> JsonDict:
    return {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "6298-4", "display": "Potassium"}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
    }


def test_same_day_readings_are_selected_independently_of_entry_order() -> None:
    readings = [
        potassium("k-early", 4.0, "2026-11-20T08:00:00Z"),
        potassium("k-late", 6.4, "2026-11-20T17:00:00Z"),
    ]
    options = ContextOptions(measurements_per_analyte=1)
    texts = {
        render(build_context({"labs": bundle_of(order, "searchset")}, NOW, options=options).context).text
        for order in (readings, readings[::-1])
    }
    assert len(texts) == 1


def test_latest_reading_is_the_newest_within_a_day() -> None:
    readings = [
        potassium("k-morning", 4.0, "2026-11-25T06:00:00Z"),
        potassium("k-noon", 6.4, "2026-11-25T11:00:00Z"),
    ]
    built = build_context({"labs": bundle_of(readings, "searchset")}, NOW)
    series = built.context.series("potassium")
    assert series is not None
    assert series.latest.value == 6.4
    assert built.handles.resolve(series.latest.handle) == "Observation/k-noon"


# --- token budget -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", chart_names())
def test_tiny_budget_keeps_the_safety_set_and_names_what_was_cut(name: str) -> None:
    path = chart_path(name)
    prefetch, _, patient_id = chart_prefetch(path)
    built = build_context(prefetch, NOW, draft_orders=draft_orders(ibuprofen_draft(patient_id)))
    full = render(built.context, BIG_BUDGET)
    tiny = render(built.context, TINY_BUDGET)
    assert full.omitted == () and not full.over_budget and "OMITTED" not in full.text
    full_sections, tiny_sections = rendered_sections(full.text), rendered_sections(tiny.text)
    for title in SAFETY_SECTIONS:
        assert tiny_sections[title] == full_sections[title], title
    # The safety set itself, counted from the raw bundle.
    bundle = raw_bundle(path)
    medications = current_medication_requests(bundle)
    if medications:
        assert len(tiny_sections["CURRENT MEDICATIONS"]) == len(medications)
    else:
        assert tiny_sections["CURRENT MEDICATIONS"] == ["none recorded"]
    allergies = active_allergies(bundle)
    if allergies:
        assert len(tiny_sections["ALLERGIES AND INTOLERANCES"]) == len(allergies)
    else:
        assert tiny_sections["ALLERGIES AND INTOLERANCES"] == ["none recorded"]
    measured = [a for a in RENAL_POTASSIUM_INR if raw_measurements(bundle, a)]
    assert len(tiny_sections["RENAL, POTASSIUM, INR"]) == max(len(measured), 1)
    assert len(tiny_sections["DRAFT ORDERS"]) == 1
    # Everything cut is accounted for, in the result and in the text the model reads.
    cut = {
        title: len(full_sections.get(title, [])) - len(tiny_sections.get(title, []))
        for title in OPTIONAL_SECTIONS
        if len(full_sections.get(title, [])) > len(tiny_sections.get(title, []))
    }
    assert cut, "a 300-token budget cannot hold a whole Synthea chart"
    assert tiny.over_budget or tiny.omitted
    assert dict(tiny.omitted) == {title.lower(): n for title, n in cut.items()}
    omitted_line = tiny.text.splitlines()[-1]
    assert omitted_line.startswith("OMITTED FOR LENGTH: ")
    for title, n in cut.items():
        assert f"{n} {title.lower()}" in omitted_line


def test_text_fits_the_budget_unless_flagged_over_budget() -> None:
    exceeded: list[tuple[str, int, int]] = []
    for name in chart_names():
        built, _, _ = build(name)
        for budget in (50, TINY_BUDGET, 600, 1200):
            rendered = render(built.context, budget)
            if not rendered.over_budget and rendered.estimated_tokens > budget:
                exceeded.append((name, budget, rendered.estimated_tokens))
    assert exceeded == []


# --- public R4 examples and deliberately invalid resources ------------------------------------------------


def _fixture_files(folder: str) -> list[str]:
    root = SHARED_FIXTURES / "fhir-examples" / folder
    if not root.is_dir():
        return ["shared-fixtures-absent"]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


def _load(folder: str, relative: str) -> Any:
    root = require_shared_fixtures() / "fhir-examples" / folder
    path = root / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text(encoding="utf-8"))


def _searchset(resource: Mapping[str, Any]) -> JsonDict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": dict(resource)}]}


def _resources_fed(value: Any) -> list[JsonDict]:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or () if isinstance(e.get("resource"), dict)]
    return [value] if isinstance(value, dict) else []


def _original_references(value: Any) -> set[str]:
    """What a handle may stand for: `Type/id`, or the entry's fullUrl for a resource without an id."""
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = [e for e in value.get("entry") or () if isinstance(e.get("resource"), dict)]
        return {
            f"{e['resource'].get('resourceType')}/{e['resource']['id']}"
            if "id" in e["resource"]
            else str(e.get("fullUrl"))
            for e in entries
        }
    return {f"{value.get('resourceType')}/{value.get('id')}"} if isinstance(value, dict) else set()


def _assert_handles_point_into(built: BuiltContext, fed: Any) -> None:
    known = _original_references(fed)
    rendered = render(built.context, BIG_BUDGET)
    references = [built.handles.resolve(h) for h in rendered.handles]
    for handle, reference in zip(rendered.handles, references, strict=True):
        assert reference in known, (handle, reference)


@pytest.mark.parametrize(
    "relative",
    _fixture_files("r4-spec"),
)
def test_r4_spec_example_builds(relative: str) -> None:
    example = _load("r4-spec", relative)
    resource_type = example.get("resourceType")
    if resource_type == "Bundle":
        fed: JsonDict = example
    elif resource_type in CONTEXT_TYPES:
        fed = _searchset(example)
    else:
        pytest.skip(f"{relative} is not a resource the context reads ({resource_type!r})")
    for options in (ContextOptions(), ContextOptions(include_free_text=True)):
        built = build_context({"example": fed}, NOW, options=options)
        _assert_handles_point_into(built, fed)


@pytest.mark.parametrize(
    "relative", [p for p in _fixture_files("r4-spec") if p.startswith("MedicationRequest-")]
)
def test_r4_spec_medication_request_as_draft_order(relative: str) -> None:
    example = _load("r4-spec", relative)
    built = build_context({}, NOW, draft_orders=draft_orders(example))
    context = built.context
    reference = f"MedicationRequest/{example['id']}"
    if context.draft_orders:
        (draft,) = context.draft_orders
        assert built.handles.resolve(draft.handle) == reference
    else:
        (skipped,) = context.skipped
        assert (skipped.resource_type, skipped.source) == ("MedicationRequest", "draftOrders")


def _fully_valid(resource: Mapping[str, Any]) -> bool:
    """Whether the complete fhir.resources R4B model accepts the resource (not just the fields we read)."""
    resource_type = str(resource.get("resourceType"))
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    try:
        getattr(module, resource_type).model_validate(resource)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


# Uncoded resources (Observation.code is required) must be reported, never dropped silently.
_UNCODED = {
    "fhir-test-cases/validator/Observation-ex-pain.json",
    "fhir-test-cases/validator/obs-quantity.json",
    "fhir-test-cases/validator/contained-resource.json",
    "fhir-test-cases/validator/allergy.json",
}


@pytest.mark.parametrize(
    "relative",
    _fixture_files("invalid"),
)
def test_invalid_resource_is_used_or_reported(relative: str) -> None:
    root = require_shared_fixtures() / "fhir-examples" / "invalid"
    try:
        value = json.loads((root / relative).read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        pytest.skip(f"{relative} is not JSON: our loader reports it unreadable before the builder sees it")
    fed = [r for r in _resources_fed(value) if r.get("resourceType") in CONTEXT_TYPES]
    wrapped = (
        value if isinstance(value, dict) and value.get("resourceType") == "Bundle" else _searchset(value)
    )
    built = build_context({"prefetch": wrapped}, NOW, draft_orders=None)
    _assert_handles_point_into(built, wrapped)
    context = built.context
    used = set(built.handles.references.values())
    skipped_types = {s.resource_type for s in context.skipped}
    for resource in fed:
        reference = f"{resource['resourceType']}/{resource.get('id')}"
        if resource["resourceType"] == "Patient" and resource["resourceType"] not in skipped_types:
            # A Patient is used as the demographics: they must be what it says.
            birth = resource.get("birthDate")
            assert context.demographics.age_years == (min(age_on(birth, TODAY), 90) if birth else None)
            assert context.demographics.sex == resource.get("gender", "unknown")
            continue
        assert reference in used or resource["resourceType"] in skipped_types, (
            f"{reference} neither used nor listed in skipped (fully valid R4B: {_fully_valid(resource)})"
        )


def test_invalid_folder_holds_unreadable_files_too() -> None:
    root = require_shared_fixtures() / "fhir-examples" / "invalid"
    unreadable = []
    for path in sorted(root.rglob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            unreadable.append(path.name)
    assert unreadable == ["bad-json-close-1.json", "json-comma-bad-1.json"]


@pytest.mark.parametrize("resource_type", ["Observation", "MedicationRequest", "Immunization", "Procedure"])
def test_malformed_status_is_reported_not_raised(resource_type: str) -> None:
    malformed = {
        "resourceType": resource_type,
        "id": "malformed",
        "status": ["final"],
        "code": {"coding": [{"system": LOINC, "code": "6298-4"}]},
    }
    built = build_context({"prefetch": _searchset(malformed)}, NOW)
    assert [s.resource_type for s in built.context.skipped] == [resource_type]

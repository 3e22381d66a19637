"""FHIR search semantics of plugin.fhir_search, checked against values computed from raw Synthea bundles."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plugin.fhir_search import (
    FhirSearchError,
    FhirStore,
    InvalidSearchValue,
    UnsupportedSearchParameter,
)
from tests.support.fixtures_paths import synthea_bundle_paths

pytestmark = pytest.mark.unit

BASE_URL = "http://fhir.test/r4"


# ---------------------------------------------------------------------------------------------------------
# Independent views of the raw bundle JSON (never derived from the store under test)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_bundles() -> list[dict[str, Any]]:
    paths = synthea_bundle_paths()[:3]
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


@pytest.fixture(scope="module")
def store(raw_bundles: list[dict[str, Any]]) -> FhirStore:
    return FhirStore.from_bundles(raw_bundles)


@pytest.fixture(scope="module")
def bundle(raw_bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """The bundle most assertions target; the other two are loaded to prove results do not leak across."""
    return raw_bundles[0]


def raw_resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == resource_type
    ]


def patient_id_of(bundle: dict[str, Any]) -> str:
    (patient,) = raw_resources(bundle, "Patient")
    return str(patient["id"])


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [resource["id"] for resource in resources]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def codings(resource: dict[str, Any], element: str) -> Iterator[tuple[str | None, str]]:
    for coding in resource.get(element, {}).get("coding", []):
        yield coding.get("system"), coding["code"]


def observations_with_effective(bundle: dict[str, Any]) -> list[tuple[dict[str, Any], datetime]]:
    found = [(obs, instant(obs["effectiveDateTime"])) for obs in raw_resources(bundle, "Observation")]
    assert found, "the target bundle should hold observations with effectiveDateTime"
    return found


# ---------------------------------------------------------------------------------------------------------
# Loading, reads, reference rewriting
# ---------------------------------------------------------------------------------------------------------


def test_read_returns_each_resource_by_type_and_id(
    store: FhirStore, raw_bundles: list[dict[str, Any]]
) -> None:
    for raw_bundle in raw_bundles:
        for entry in raw_bundle["entry"]:
            raw = entry["resource"]
            stored = store.read(raw["resourceType"], raw["id"])
            assert stored is not None
            assert stored["id"] == raw["id"]
            assert stored.get("code") == raw.get("code")
    assert store.read("Patient", "no-such-patient") is None
    assert store.read("Observation", patient_id_of(raw_bundles[0])) is None


def test_urn_uuid_references_become_type_slash_id(
    store: FhirStore, raw_bundles: list[dict[str, Any]]
) -> None:
    for raw_bundle in raw_bundles:
        type_by_full_url = {
            entry["fullUrl"]: entry["resource"]["resourceType"] for entry in raw_bundle["entry"]
        }
        for entry in raw_bundle["entry"]:
            raw = entry["resource"]
            expected_text = json.dumps(raw)
            for full_url, resource_type in type_by_full_url.items():
                uuid = full_url.removeprefix("urn:uuid:")
                expected_text = expected_text.replace(
                    f'"reference": "{full_url}"', f'"reference": "{resource_type}/{uuid}"'
                )
            assert store.read(raw["resourceType"], raw["id"]) == json.loads(expected_text)

    observation = raw_resources(raw_bundles[0], "Observation")[0]
    assert observation["subject"]["reference"].startswith("urn:uuid:"), "loading must not mutate the input"
    stored = store.read("Observation", observation["id"])
    assert stored is not None
    assert stored["subject"]["reference"] == f"Patient/{patient_id_of(raw_bundles[0])}"


def test_results_are_copies_that_callers_may_mutate(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient_id = patient_id_of(bundle)
    first = store.read("Patient", patient_id)
    assert first is not None
    first["gender"] = "changed"
    store.search("Patient", [("_id", patient_id)])[0]["birthDate"] = "1900"
    again = store.read("Patient", patient_id)
    assert again is not None
    assert again["gender"] == raw_resources(bundle, "Patient")[0]["gender"]
    assert again["birthDate"] == raw_resources(bundle, "Patient")[0]["birthDate"]


def test_add_replaces_a_resource_in_place_and_reindexes_its_patient(
    raw_bundles: list[dict[str, Any]],
) -> None:
    store = FhirStore.from_bundles(raw_bundles[:2])
    first_patient, second_patient = patient_id_of(raw_bundles[0]), patient_id_of(raw_bundles[1])
    moved = store.search("Condition", [("patient", first_patient)])[0]
    moved["subject"] = {"reference": f"Patient/{second_patient}"}
    assert store.add(moved) == moved["id"]

    assert moved["id"] not in ids(store.search("Condition", [("patient", first_patient)]))
    assert moved["id"] in ids(store.search("Condition", [("patient", second_patient)]))
    all_condition_ids = [c["id"] for b in raw_bundles[:2] for c in raw_resources(b, "Condition")]
    assert ids(store.search("Condition", [])) == all_condition_ids


# ---------------------------------------------------------------------------------------------------------
# Reference, token and date parameters
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource_type",
    ["Observation", "Condition", "MedicationRequest", "Encounter", "Immunization", "AllergyIntolerance"],
)
def test_patient_search_accepts_bare_and_typed_ids(
    store: FhirStore, raw_bundles: list[dict[str, Any]], resource_type: str
) -> None:
    for raw_bundle in raw_bundles:
        patient_id = patient_id_of(raw_bundle)
        expected = ids(raw_resources(raw_bundle, resource_type))
        assert ids(store.search(resource_type, [("patient", patient_id)])) == expected
        assert ids(store.search(resource_type, [("patient", f"Patient/{patient_id}")])) == expected
        assert ids(store.search(resource_type, [("patient", f"{BASE_URL}/Patient/{patient_id}")])) == expected
    assert store.search(resource_type, [("patient", "Group/" + patient_id_of(raw_bundles[0]))]) == []


def test_subject_search_matches_subject_references(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient_id = patient_id_of(bundle)
    expected = ids(raw_resources(bundle, "Observation"))
    assert ids(store.search("Observation", [("subject", f"Patient/{patient_id}")])) == expected
    assert ids(store.search("Observation", [("subject", patient_id)])) == expected
    assert ids(store.search("Observation", [("subject:Patient", patient_id)])) == expected


def test_patient_parameter_is_not_a_patient_search_parameter(
    store: FhirStore, bundle: dict[str, Any]
) -> None:
    with pytest.raises(UnsupportedSearchParameter):
        store.search("Patient", [("patient", patient_id_of(bundle))])
    assert ids(store.search("Patient", [("_id", patient_id_of(bundle))])) == [patient_id_of(bundle)]


def test_code_token_forms(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient = ("patient", patient_id_of(bundle))
    observations = raw_resources(bundle, "Observation")
    (system, code), _ = Counter(pair for obs in observations for pair in codings(obs, "code")).most_common(1)[
        0
    ]
    expected = [obs["id"] for obs in observations if (system, code) in codings(obs, "code")]
    assert len(expected) > 1

    assert ids(store.search("Observation", [patient, ("code", code)])) == expected
    assert ids(store.search("Observation", [patient, ("code", f"{system}|{code}")])) == expected
    # Every Synthea coding carries a system, so "no system" and a wrong system both match nothing.
    assert store.search("Observation", [patient, ("code", f"|{code}")]) == []
    assert store.search("Observation", [patient, ("code", f"http://example.org/other|{code}")]) == []
    in_system = [obs["id"] for obs in observations if any(s == system for s, _ in codings(obs, "code"))]
    assert ids(store.search("Observation", [patient, ("code", f"{system}|")])) == in_system


def test_code_on_medication_request_reads_medication_codeable_concept(
    store: FhirStore, bundle: dict[str, Any]
) -> None:
    requests = raw_resources(bundle, "MedicationRequest")
    assert requests
    system, code = next(codings(requests[0], "medicationCodeableConcept"))
    expected = [r["id"] for r in requests if (system, code) in codings(r, "medicationCodeableConcept")]
    found = store.search(
        "MedicationRequest", [("patient", patient_id_of(bundle)), ("code", f"{system}|{code}")]
    )
    assert ids(found) == expected


def test_comma_separated_values_are_or(store: FhirStore, bundle: dict[str, Any]) -> None:
    observations = raw_resources(bundle, "Observation")
    counted = Counter(code for obs in observations for _, code in codings(obs, "code"))
    (first, _), (second, _) = counted.most_common(2)
    expected = [obs["id"] for obs in observations if {first, second} & {c for _, c in codings(obs, "code")}]
    patient = ("patient", patient_id_of(bundle))
    assert ids(store.search("Observation", [patient, ("code", f"{first},{second}")])) == expected
    assert len(expected) == counted[first] + counted[second]


def test_status_token(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient = ("patient", patient_id_of(bundle))
    requests = raw_resources(bundle, "MedicationRequest")
    statuses = Counter(request["status"] for request in requests)
    assert len(statuses) >= 2, "the target bundle should hold medication requests in several statuses"
    for status in statuses:
        expected = [request["id"] for request in requests if request["status"] == status]
        assert ids(store.search("MedicationRequest", [patient, ("status", status)])) == expected
    assert ids(store.search("MedicationRequest", [patient, ("status", ",".join(statuses))])) == ids(requests)
    assert ids(store.search("MedicationRequest", [patient, ("status:not", "active")])) == [
        request["id"] for request in requests if request["status"] != "active"
    ]


@pytest.mark.parametrize("resource_type", ["Condition", "AllergyIntolerance"])
def test_clinical_status_token(
    store: FhirStore, raw_bundles: list[dict[str, Any]], resource_type: str
) -> None:
    checked = 0
    for raw_bundle in raw_bundles:
        patient = ("patient", patient_id_of(raw_bundle))
        resources = raw_resources(raw_bundle, resource_type)
        for system, code in {pair for r in resources for pair in codings(r, "clinicalStatus")}:
            expected = [r["id"] for r in resources if (system, code) in codings(r, "clinicalStatus")]
            assert ids(store.search(resource_type, [patient, ("clinical-status", code)])) == expected
            assert (
                ids(store.search(resource_type, [patient, ("clinical-status", f"{system}|{code}")]))
                == expected
            )
            checked += 1
    assert checked >= 2


def test_category_token(store: FhirStore, bundle: dict[str, Any]) -> None:
    observations = raw_resources(bundle, "Observation")
    expected = [
        obs["id"]
        for obs in observations
        if any(c["code"] == "vital-signs" for cat in obs.get("category", []) for c in cat["coding"])
    ]
    assert expected
    found = store.search("Observation", [("patient", patient_id_of(bundle)), ("category", "vital-signs")])
    assert ids(found) == expected


def test_date_prefixes_at_second_precision(store: FhirStore, bundle: dict[str, Any]) -> None:
    dated = observations_with_effective(bundle)
    reference_observation, moment = dated[len(dated) // 2]
    value = reference_observation["effectiveDateTime"]
    patient = ("patient", patient_id_of(bundle))
    expectations: dict[str, Callable[[datetime], bool]] = {
        "eq": lambda t: t == moment,
        "ne": lambda t: t != moment,
        "ge": lambda t: t >= moment,
        "gt": lambda t: t > moment,
        "le": lambda t: t <= moment,
        "lt": lambda t: t < moment,
        "sa": lambda t: t > moment,
        "eb": lambda t: t < moment,
    }
    for prefix, holds in expectations.items():
        expected = [obs["id"] for obs, effective in dated if holds(effective)]
        assert ids(store.search("Observation", [patient, ("date", f"{prefix}{value}")])) == expected, prefix
    assert ids(store.search("Observation", [patient, ("date", value)])) == [
        obs["id"] for obs, effective in dated if effective == moment
    ]


def test_date_precision_and_timezones(store: FhirStore, bundle: dict[str, Any]) -> None:
    dated = observations_with_effective(bundle)
    _, moment = dated[len(dated) // 2]
    patient = ("patient", patient_id_of(bundle))

    def search(value: str) -> list[str]:
        return ids(store.search("Observation", [patient, ("date", value)]))

    year_start = datetime(moment.year, 1, 1, tzinfo=UTC)
    next_year_start = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    same_year = [obs["id"] for obs, t in dated if year_start <= t < next_year_start]
    assert search(str(moment.year)) == same_year
    assert search(f"ge{moment.year}") == [obs["id"] for obs, t in dated if t >= year_start]
    assert search(f"gt{moment.year}") == [obs["id"] for obs, t in dated if t >= next_year_start]
    assert search(f"le{moment.year}") == [obs["id"] for obs, t in dated if t < next_year_start]
    assert search(f"lt{moment.year}") == [obs["id"] for obs, t in dated if t < year_start]
    assert search(f"sa{moment.year}") == [obs["id"] for obs, t in dated if t >= next_year_start]
    assert search(f"eb{moment.year}") == [obs["id"] for obs, t in dated if t < year_start]
    # The period just before must end where the moment's period begins, not overlap it.
    previous_year = [obs["id"] for obs, t in dated if t.year == moment.year - 1]
    assert search(str(moment.year - 1)) == previous_year
    previous_day = moment.date() - timedelta(days=1)
    assert search(previous_day.isoformat()) == [obs["id"] for obs, t in dated if t.date() == previous_day]

    same_day = [obs["id"] for obs, t in dated if t.date() == moment.date()]
    assert search(moment.date().isoformat()) == same_day
    assert search(f"{moment:%Y-%m}") == [
        obs["id"] for obs, t in dated if (t.year, t.month) == (moment.year, moment.month)
    ]

    # A value one second later names a different one-second range; milliseconds narrow the range further.
    later = (moment + timedelta(seconds=1)).isoformat()
    assert search(later) == [obs["id"] for obs, t in dated if t == moment + timedelta(seconds=1)]
    assert search(moment.isoformat(timespec="milliseconds")) == []
    # The same instant written at another offset is the same instant.
    eastern = moment.astimezone(datetime.fromisoformat("2000-01-01T00:00:00-05:00").tzinfo).isoformat()
    assert search(eastern) == [obs["id"] for obs, t in dated if t == moment]
    assert search(moment.isoformat().replace("+00:00", "Z")) == search(moment.isoformat())


def test_date_on_periods_needs_the_whole_period_inside_for_eq(
    store: FhirStore, bundle: dict[str, Any]
) -> None:
    encounters = raw_resources(bundle, "Encounter")
    spans = [(e["id"], instant(e["period"]["start"]), instant(e["period"]["end"])) for e in encounters]
    start_day = spans[0][1].date()
    patient = ("patient", patient_id_of(bundle))
    expected = [eid for eid, start, end in spans if start.date() == start_day and end.date() == start_day]
    assert expected
    assert ids(store.search("Encounter", [patient, ("date", start_day.isoformat())])) == expected
    # A single second inside a period overlaps it but does not contain it: ge/le match, eq does not.
    eid, start, end = spans[0]
    inside = (start + (end - start) / 2).replace(microsecond=0).isoformat()
    assert eid not in ids(store.search("Encounter", [patient, ("date", inside)]))
    assert eid in ids(store.search("Encounter", [patient, ("date", f"ge{inside}"), ("date", f"le{inside}")]))
    # With second-precision bounds, "ends before" and "starts after" exclude periods spanning the value.
    moment = datetime.fromisoformat(inside)
    expectations: dict[str, Callable[[datetime, datetime], bool]] = {
        "lt": lambda start, end: start < moment,
        "gt": lambda start, end: end > moment,
        "eb": lambda start, end: end < moment,
        "sa": lambda start, end: start > moment,
    }
    for prefix, holds in expectations.items():
        expected = [eid for eid, start, end in spans if holds(start, end)]
        assert ids(store.search("Encounter", [patient, ("date", f"{prefix}{inside}")])) == expected, prefix


def test_repeated_parameters_are_and(store: FhirStore, bundle: dict[str, Any]) -> None:
    dated = observations_with_effective(bundle)
    low = dated[len(dated) // 4][1]
    high = dated[3 * len(dated) // 4][1]
    assert low < high
    patient = ("patient", patient_id_of(bundle))
    found = store.search(
        "Observation", [patient, ("date", f"ge{low.isoformat()}"), ("date", f"lt{high.isoformat()}")]
    )
    assert ids(found) == [obs["id"] for obs, t in dated if low <= t < high]

    vital = [
        (obs, t)
        for obs, t in dated
        if any(c["code"] == "vital-signs" for cat in obs.get("category", []) for c in cat["coding"])
    ]
    _, code = next(codings(vital[0][0], "code"))
    found = store.search("Observation", [patient, ("category", "vital-signs"), ("code", code)])
    assert ids(found) == [obs["id"] for obs, _ in vital if code in {c for _, c in codings(obs, "code")}]


def test_authoredon_for_medication_requests(store: FhirStore, bundle: dict[str, Any]) -> None:
    requests = raw_resources(bundle, "MedicationRequest")
    authored = sorted(instant(r["authoredOn"]) for r in requests)
    pivot = authored[len(authored) // 2]
    expected = [r["id"] for r in requests if instant(r["authoredOn"]) >= pivot]
    patient = ("patient", patient_id_of(bundle))
    assert (
        ids(store.search("MedicationRequest", [patient, ("authoredon", f"ge{pivot.isoformat()}")]))
        == expected
    )
    assert ids(store.search("MedicationRequest", [patient, ("date", f"ge{pivot.isoformat()}")])) == expected


# ---------------------------------------------------------------------------------------------------------
# Sorting, paging, results
# ---------------------------------------------------------------------------------------------------------


def test_sort_by_date_both_directions(store: FhirStore, bundle: dict[str, Any]) -> None:
    dated = observations_with_effective(bundle)
    patient = ("patient", patient_id_of(bundle))
    newest_first = [obs["id"] for obs, _ in sorted(dated, key=lambda pair: pair[1], reverse=True)]
    oldest_first = [obs["id"] for obs, _ in sorted(dated, key=lambda pair: pair[1])]
    assert ids(store.search("Observation", [patient, ("_sort", "-date")])) == newest_first
    assert ids(store.search("Observation", [patient, ("_sort", "date")])) == oldest_first
    assert ids(store.search("Observation", [patient])) == [obs["id"] for obs, _ in dated]


def test_sort_by_last_updated_puts_resources_without_it_last(raw_bundles: list[dict[str, Any]]) -> None:
    store = FhirStore.from_bundles(raw_bundles[:1])
    patient_id = patient_id_of(raw_bundles[0])
    conditions = store.search("Condition", [("patient", patient_id)])
    assert len(conditions) >= 3
    stamps = ["2021-03-01T00:00:00Z", "2020-01-01T00:00:00Z"]
    for condition, stamp in zip(conditions, stamps, strict=False):
        condition.setdefault("meta", {})["lastUpdated"] = stamp
        store.add(condition)
    unstamped = ids(conditions[len(stamps) :])
    ascending = ids(store.search("Condition", [("patient", patient_id), ("_sort", "_lastUpdated")]))
    descending = ids(store.search("Condition", [("patient", patient_id), ("_sort", "-_lastUpdated")]))
    assert ascending == [conditions[1]["id"], conditions[0]["id"], *unstamped]
    assert descending == [conditions[0]["id"], conditions[1]["id"], *unstamped]


def test_paging_with_next_links_yields_every_match_once(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient_id = patient_id_of(bundle)
    expected = ids(raw_resources(bundle, "Observation"))
    page_size = 7
    page = store.search_bundle("Observation", [("patient", patient_id), ("_count", str(page_size))], BASE_URL)
    collected: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert page["resourceType"] == "Bundle"
        assert page["type"] == "searchset"
        assert page["total"] == len(expected)
        entries = page.get("entry", [])
        assert len(entries) <= page_size
        for entry in entries:
            assert entry["search"] == {"mode": "match"}
            assert entry["fullUrl"] == f"{BASE_URL}/Observation/{entry['resource']['id']}"
        collected.extend(entry["resource"]["id"] for entry in entries)
        next_links = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not next_links:
            break
        assert f"_count={page_size}" in next_links[0]
        assert "_offset=" in next_links[0]
        following = store.query(next_links[0], BASE_URL)
        assert following is not None
        page = following
    assert collected == expected
    assert pages == -(-len(expected) // page_size)


def test_offset_past_the_end_and_count_zero(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient = ("patient", patient_id_of(bundle))
    total = len(raw_resources(bundle, "Observation"))
    beyond = store.search_bundle("Observation", [patient, ("_offset", str(total))], BASE_URL)
    assert beyond["total"] == total
    assert "entry" not in beyond
    assert not [link for link in beyond["link"] if link["relation"] == "next"]
    for params in ([patient, ("_count", "0")], [patient, ("_summary", "count")]):
        counted = store.search_bundle("Observation", params, BASE_URL)
        assert counted["total"] == total
        assert "entry" not in counted


def test_search_ignores_paging_and_returns_every_match(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient = ("patient", patient_id_of(bundle))
    expected = ids(raw_resources(bundle, "Observation"))
    assert ids(store.search("Observation", [patient, ("_count", "2"), ("_offset", "1")])) == expected


def test_id_search_with_or(store: FhirStore, bundle: dict[str, Any]) -> None:
    wanted = ids(raw_resources(bundle, "Condition"))[:2]
    assert ids(store.search("Condition", [("_id", ",".join(reversed(wanted)))])) == wanted


# ---------------------------------------------------------------------------------------------------------
# Errors and relative URLs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "params"),
    [
        ("Observation", [("value-quantity", "gt5")]),
        ("Observation", [("code:text", "height")]),
        ("Observation", [("_sort", "code")]),
        ("Observation", [("date", "ap2019")]),
        ("Observation", [("_summary", "text")]),
        ("Patient", [("clinical-status", "active")]),
    ],
)
def test_unsupported_parameters_raise(
    store: FhirStore, resource_type: str, params: list[tuple[str, str]]
) -> None:
    with pytest.raises(UnsupportedSearchParameter) as raised:
        store.search(resource_type, params)
    assert isinstance(raised.value, FhirSearchError)
    assert raised.value.issue_code == "not-supported"


@pytest.mark.parametrize(
    "params",
    [
        [("date", "2019-13-01")],
        [("date", "xx2019")],
        [("_count", "-1")],
        [("_offset", "many")],
        [("code", "a|b|c")],
    ],
)
def test_invalid_values_raise(store: FhirStore, params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidSearchValue):
        store.search_bundle("Observation", params, BASE_URL)


def test_query_reads_and_searches(store: FhirStore, bundle: dict[str, Any]) -> None:
    patient_id = patient_id_of(bundle)
    patient = store.query(f"Patient/{patient_id}", BASE_URL)
    assert patient is not None
    assert patient["name"] == raw_resources(bundle, "Patient")[0]["name"]
    assert store.query("Patient/unknown-id", BASE_URL) is None

    active = [r["id"] for r in raw_resources(bundle, "MedicationRequest") if r["status"] == "active"]
    result = store.query(f"MedicationRequest?patient={patient_id}&status=active", BASE_URL)
    assert result is not None
    assert result["type"] == "searchset"
    assert result["total"] == len(active)
    assert [entry["resource"]["id"] for entry in result.get("entry", [])] == active
    assert [entry["fullUrl"] for entry in result.get("entry", [])] == [
        f"{BASE_URL}/MedicationRequest/{rid}" for rid in active
    ]


def test_query_keeps_plus_in_timezones_and_rejects_non_fhir_paths(
    store: FhirStore, bundle: dict[str, Any]
) -> None:
    dated = observations_with_effective(bundle)
    _, moment = dated[0]
    patient_id = patient_id_of(bundle)
    rendered = f"Observation?patient={patient_id}&date=ge{moment.isoformat()}"
    assert "+" in rendered
    result = store.query(rendered, BASE_URL)
    assert result is not None
    assert result["total"] == sum(1 for _, t in dated if t >= moment)
    with pytest.raises(FhirSearchError):
        store.query("metadata/extra/segments", BASE_URL)

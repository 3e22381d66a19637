"""Fetch-back against software nobody here wrote: Medplum's FHIR router and in-memory repository over HTTP.

The app runs as in production (EHR JWTs checked) and reads the Synthea charts back from Medplum
(tests/interop/medplum/server.mjs) with the shipped services' own prefetch templates; what it fetched is
compared with what our FhirStore gives for the same chart, and the shipped services' cards with the cards
they give when the EHR sends the same prefetch itself.

Medplum deviations from FHIR R4 found here (also in test_medplum_deviations_the_wrapper_bridges):
- its in-memory search matches a reference parameter only against the literal reference string, so the
  `patient=123` form (R4 search, reference parameters: `[parameter]=[id]`) finds nothing; the wrapper
  rewrites it to `patient=Patient/123` for parameters with one target type;
- MemoryRepository answers a search with `total` and a page cut at `_count` but no Bundle.link at all (no
  `self`, no `next`), so the rest of the result cannot be reached (R4 http.html#paging); the wrapper adds
  `self` and `next` links with Medplum's own formatSearchQuery, as Medplum's hosted server does;
- a search parameter it does not know makes the search match nothing, where R4 search says a server
  ignores unknown parameters unless the client asks for strict handling; our templates use none.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from cds_hooks import fire
from cds_hooks.logs import quiet_url_loggers
from cds_hooks.prefetch import is_top_n, render_template
from plugin.catalog import CHART_REVIEW, DISCHARGE_REVIEW, ORDER_REVIEW, shipped_registry
from plugin.fhir_search import FhirStore
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry
from tests.integration.conftest import EHR_ISSUER, ServeApp
from tests.support.asgi_server import ServedApp
from tests.support.charts import USER_ID, chart_path, draft_orders, ibuprofen_draft, raw_bundle
from tests.support.fixtures_paths import require_shared_fixtures, synthea_bundle_paths
from tests.support.jwt_factory import SigningKey, claims, mint
from tests.support.medplum_server import MedplumHandle, require_medplum, running_medplum
from tests.support.services import PrefetchProbe

pytestmark = pytest.mark.integration

EHR_TOKEN = "medplum-ehr-access-token"  # what the wrapper requires as the bearer, and fhirAuthorization sends
# Derek Becker takes warfarin and naproxen (the cards below rely on it); the other two charts are there so
# that every patient filter has someone else's data to leave out. All 20 charts load in about 1 s, but
# each patient-scoped Observation search then takes about 2 s (Medplum evaluates the `patient` parameter's
# FHIRPath on every stored Observation), which would put this file far over its time budget.
CHARTS = ("Derek_Becker", "Asa_Hermiston", "Trey_Berge")
SMALL_PAGE = 3  # the page size Medplum is switched to when a test wants the shipped templates to page


def _probe_of(declaration: ServiceDeclaration) -> PrefetchProbe:
    """A probe declaring exactly the shipped service's hooks and templates, under its own id."""
    return PrefetchProbe(declaration=dataclasses.replace(declaration, id=f"{declaration.id}-probe"))


PAGED = ServiceDeclaration(
    id="medplum-paged",
    hooks=("patient-view",),
    title="Small pages from Medplum",
    description="Asks for pages of one and two so fetch-back must walk Medplum's next links.",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "immunizations": "Immunization?patient={{context.patientId}}&_count=2",
        "active": "MedicationRequest?patient={{context.patientId}}&status=active&_count=1",
    },
    required_prefetch=frozenset({"patient"}),
)
EDGES = ServiceDeclaration(
    id="medplum-edges",
    hooks=("patient-view",),
    title="Medplum error paths",
    description="A read of a practitioner Medplum lacks and a search Medplum refuses as malformed.",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "practitioner": "Practitioner/{{userPractitionerId}}",
        "malformed": "Observation?patient={{context.patientId}}&date=not-a-date",
        "immunizations": "Immunization?patient={{context.patientId}}",
    },
    required_prefetch=frozenset({"patient"}),
)
# Each shipped service with a hook of its own and what that hook needs in its context.
SHIPPED_CALLS = (
    (CHART_REVIEW, "patient-view"),
    (ORDER_REVIEW, "order-sign"),
    (DISCHARGE_REVIEW, "encounter-discharge"),
)


@dataclass
class Chart:
    store: FhirStore
    patient_id: str

    def expected(self, rendered: str) -> list[str]:
        """Ids our own store gives for a rendered template, every page (its `_count` left out)."""
        resource_type, _, query = rendered.partition("?")
        params = [tuple(p.split("=", 1)) for p in query.split("&") if p and not p.startswith("_count")]
        return [r["id"] for r in self.store.search(resource_type, params)]  # type: ignore[arg-type]


@dataclass
class Stand:
    serve_app: ServeApp
    medplum: MedplumHandle
    chart: Chart
    key: SigningKey
    api: ServedApp | None = None

    @contextmanager
    def serving(self, registry: ServiceRegistry, **settings: Any) -> Iterator[ServedApp]:
        """The app with `registry`, EHR authentication on, fetching back from Medplum."""
        # Medplum's patient-scoped Observation search takes about 2 s per page here and more on a loaded CI
        # machine, past the 3 s production default; the timeout tests below set their own.
        with self.serve_app(registry, **{"fhir_max_pages": 30, "fhir_timeout_s": 20.0, **settings}) as api:
            self.api = api
            yield api

    def context(self, hook: str) -> dict[str, Any]:
        drafts = draft_orders(ibuprofen_draft(self.chart.patient_id)) if hook in fire.ORDER_HOOKS else None
        return fire.build_context(hook, self.chart.store, self.chart.patient_id, USER_ID, None, drafts)

    def call(
        self,
        service_id: str,
        hook: str,
        *,
        prefetch: Mapping[str, Any] | None = None,
        token: str = EHR_TOKEN,
        context: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        assert self.api is not None
        context = context or self.context(hook)
        body = fire.build_request(hook, context, prefetch, self.medplum.base_url, token, context["patientId"])
        url = f"{self.api.url}/cds-services/{service_id}"
        jwt = mint(self.key, claims(EHR_ISSUER, url))
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {jwt}"}, timeout=30)


@pytest.fixture(scope="module", autouse=True)
def quiet_request_lines() -> None:
    """The test's own httpx calls name patients in their URLs; the app quiets these loggers, and so do we."""
    quiet_url_loggers()


@pytest.fixture(scope="module")
def medplum() -> Iterator[MedplumHandle]:
    require_medplum()
    require_shared_fixtures()
    with running_medplum([chart_path(name) for name in CHARTS], bearer=EHR_TOKEN) as handle:
        yield handle


@pytest.fixture(scope="module")
def chart() -> Chart:
    store = FhirStore.from_bundles([raw_bundle(chart_path(CHARTS[0]))])
    return Chart(store, fire.pick_patient(store, None))


@pytest.fixture
def stand(
    serve_app: ServeApp, medplum: MedplumHandle, chart: Chart, ehr_keys: tuple[SigningKey, SigningKey]
) -> Stand:
    medplum.reset()
    return Stand(serve_app, medplum, chart, ehr_keys[0])


def _page_key(resource_type: str, query: str) -> tuple[str, str]:
    """Which template a logged request belongs to: its type and category (labs and vitals share a type)."""
    return resource_type, ",".join(parse_qs(query).get("category", []))


def _resources(value: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    assert value is not None and value["resourceType"] == "Bundle"
    return [e["resource"] for e in value.get("entry", [])]


def _ids(value: Mapping[str, Any] | None) -> list[str]:
    assert value is not None
    if value["resourceType"] != "Bundle":
        return [value["id"]]
    return [e["resource"]["id"] for e in value.get("entry", [])]


def _without_suggestion_uuids(response: httpx.Response) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = response.json()["cards"]
    for card in cards:
        for suggestion in card.get("suggestions", []):
            suggestion.pop("uuid", None)
    return cards


def _date_of(resource: Mapping[str, Any]) -> str:
    """The clinical date `_sort=date` orders by: when it was observed, performed or held (its start)."""
    candidates = (
        resource.get("effectiveDateTime"),
        (resource.get("effectivePeriod") or {}).get("start"),
        resource.get("performedDateTime"),
        (resource.get("performedPeriod") or {}).get("start"),
        (resource.get("period") or {}).get("start"),
    )
    return next((value for value in candidates if isinstance(value, str)), "")


def _issues(call: HookCall) -> dict[str, tuple[str, str]]:
    return {i.key: (i.code, i.diagnostics) for i in call.prefetch_issues}


def test_every_fixture_bundle_loads_with_ids_and_references_kept() -> None:
    paths = synthea_bundle_paths()
    bundles = [raw_bundle(path) for path in paths]
    with running_medplum(paths) as medplum, httpx.Client(base_url=medplum.base_url, timeout=30) as client:
        assert medplum.resources == sum(len(b["entry"]) for b in bundles) > 6000
        for bundle in bundles:
            resources = [entry["resource"] for entry in bundle["entry"]]
            (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
            read = client.get(f"Patient/{patient['id']}")
            assert read.status_code == 200 and read.json()["id"] == patient["id"]
            # `subject` has many target types, so Medplum matches it as given: the wrapper changes nothing.
            encounters = client.get("Encounter", params={"subject": f"Patient/{patient['id']}", "_count": 0})
            assert encounters.json()["total"] == sum(r["resourceType"] == "Encounter" for r in resources)
            condition = next(r for r in resources if r["resourceType"] == "Condition")
            stored = client.get(f"Condition/{condition['id']}").json()
            # The bundle's urn:uuid references now name stored resources, by the ids the bundle gave them.
            assert stored["subject"]["reference"] == f"Patient/{patient['id']}"
            encounter_ref = stored["encounter"]["reference"]
            assert encounter_ref == condition["encounter"]["reference"].replace("urn:uuid:", "Encounter/")
            assert client.get(encounter_ref).status_code == 200


def test_shipped_templates_fetched_back_from_medplum_match_the_chart(stand: Stand) -> None:
    probes = [_probe_of(declaration) for declaration, _ in SHIPPED_CALLS]
    paged_keys = 0
    with stand.serving(ServiceRegistry(probes)):
        for probe, (declaration, hook) in zip(probes, SHIPPED_CALLS, strict=True):
            stand.medplum.reset()
            stand.medplum.set_faults(default_count=SMALL_PAGE)  # searches without _count come in threes
            response = stand.call(probe.declaration.id, hook)
            assert response.status_code == 200, response.text
            (call,) = probe.calls
            assert call.prefetch_issues == ()
            log = stand.medplum.requests()
            assert log and all(r["authorized"] for r in log)  # the EHR's token went with every request
            pages = Counter(_page_key(r["path"], r["query"]) for r in log)
            for key, template in declaration.prefetch.items():
                rendered = render_template(template, call.context)
                got = _ids(call.prefetch[key])
                if "?" not in rendered:
                    assert got == [stand.chart.patient_id]
                    continue
                resource_type, _, query = rendered.partition("?")
                requests = pages[_page_key(resource_type, query)]
                expected = stand.chart.expected(rendered)
                if is_top_n(rendered):
                    count = int(parse_qs(query)["_count"][0])
                    # "The newest N" is one request. Medplum orders by date as our store does; resources
                    # with the same date (two encounters starting together) may come in either order.
                    dates = [_date_of(r) for r in _resources(call.prefetch[key])]
                    newest = [
                        _date_of(stand.chart.store.read(resource_type, i) or {}) for i in expected[:count]
                    ]
                    assert dates == newest and set(got) <= set(expected), key
                    assert requests == 1, key
                else:
                    assert sorted(got) == sorted(expected), key
                    assert requests == max(1, math.ceil(len(expected) / SMALL_PAGE)), key
                    paged_keys += requests > 1
            active = _ids(call.prefetch["medications"])
            assert active and {
                stand.chart.store.read("MedicationRequest", i)["status"]  # type: ignore[index]
                for i in active
            } == {"active"}
    every_request = stand.chart.store.search("MedicationRequest", [("patient", stand.chart.patient_id)])
    assert len(every_request) > len(active)  # the status filter left some out
    assert paged_keys >= 2 * len(SHIPPED_CALLS)  # conditions and medications paged in every service


def test_shipped_services_give_the_same_cards_from_medplum_as_from_ehr_prefetch(stand: Stand) -> None:
    answers: dict[str, list[dict[str, Any]]] = {}
    with stand.serving(shipped_registry()) as api, httpx.Client(timeout=30) as client:
        for declaration, hook in SHIPPED_CALLS:
            context = stand.context(hook)
            templates = fire.service_templates(client, api.url, declaration.id, hook)
            assert templates == declaration.prefetch
            sent = fire.build_prefetch(templates, context, stand.chart.store, stand.medplum.base_url)
            stand.medplum.reset()
            stand.medplum.set_faults(default_count=SMALL_PAGE)
            from_ehr = stand.call(declaration.id, hook, prefetch=sent, context=context)
            assert from_ehr.status_code == 200, from_ehr.text
            assert stand.medplum.requests() == []  # everything was sent: nothing to fetch back
            fetched = stand.call(declaration.id, hook, context=context)
            assert fetched.status_code == 200, fetched.text
            assert len(stand.medplum.requests()) > len(templates)  # every key, some of them paged
            # Card uuids follow the facts, so they match too; a suggestion's uuid is fresh on every call.
            assert _without_suggestion_uuids(fetched) == _without_suggestion_uuids(from_ehr), declaration.id
            answers[hook] = fetched.json()["cards"]
    chart_cards = {card["source"]["topic"]["code"]: card for card in answers["patient-view"]}
    assert "Warfarin with naproxen" in chart_cards["rule.vka-nsaid"]["summary"]
    order_cards = {card["source"]["topic"]["code"]: card for card in answers["order-sign"]}
    assert "Ibuprofen 600 MG Oral Tablet — draft order" in order_cards["rule.vka-nsaid"]["detail"]
    assert answers["encounter-discharge"]  # the discharge review read the same medication list


def test_small_count_pages_are_walked_through_medplums_next_links(stand: Stand) -> None:
    probe = PrefetchProbe(declaration=PAGED)
    with stand.serving(ServiceRegistry([probe])):
        response = stand.call(PAGED.id, "patient-view")
    assert response.status_code == 200, response.text
    (call,) = probe.calls
    assert call.prefetch_issues == ()
    log = stand.medplum.requests()
    for key, resource_type, size in (
        ("immunizations", "Immunization", 2),
        ("active", "MedicationRequest", 1),
    ):
        rendered = render_template(PAGED.prefetch[key], call.context)
        expected = stand.chart.expected(rendered)
        assert sorted(_ids(call.prefetch[key])) == sorted(expected)
        offsets = [parse_qs(r["query"]).get("_offset", ["0"])[0] for r in log if r["path"] == resource_type]
        assert len(expected) > size
        assert offsets == [str(n) for n in range(0, len(expected), size)]  # each next link, once, in order
    capped_probe = PrefetchProbe(declaration=PAGED)
    with stand.serving(ServiceRegistry([capped_probe]), fhir_max_pages=2):
        response = stand.call(PAGED.id, "patient-view")
    assert response.status_code == 200
    (capped,) = capped_probe.calls
    assert len(_ids(capped.prefetch["immunizations"])) == 4
    assert _issues(capped)["immunizations"] == ("too-costly", "stopped after 2 pages")


def test_medplum_deviations_the_wrapper_bridges(stand: Stand) -> None:
    """Medplum's own answers with the wrapper's additions off: each is a deviation recorded above."""
    medplum, patient = stand.medplum, stand.chart.patient_id
    medplum.set_faults(resolve_bare_ids=False, paging_links=False, default_count=None)
    headers = {"Authorization": f"Bearer {EHR_TOKEN}"}
    with httpx.Client(base_url=medplum.base_url, headers=headers, timeout=30) as client:
        conditions = len(stand.chart.expected(f"Condition?patient={patient}"))
        assert conditions > 0
        bare = client.get("Condition", params={"patient": patient}).json()
        typed = client.get("Condition", params={"patient": f"Patient/{patient}"}).json()
        assert (bare["total"], typed["total"]) == (0, conditions)
        page = client.get("Immunization", params={"patient": f"Patient/{patient}", "_count": 2}).json()
        assert len(page["entry"]) == 2 < page["total"]
        assert "link" not in page  # the rest of the result has no address
        unknown = client.get("Condition", params={"patient": f"Patient/{patient}", "no-such-parameter": "x"})
        assert unknown.status_code == 200 and unknown.json()["total"] == 0
    medplum.reset()  # and with the wrapper's additions on, the same bare-id search finds the conditions
    with httpx.Client(base_url=medplum.base_url, headers=headers, timeout=30) as client:
        assert client.get("Condition", params={"patient": patient}).json()["total"] == conditions


def test_missing_resources_and_refused_tokens_give_the_documented_answers(stand: Stand) -> None:
    missing = httpx.get(
        f"{stand.medplum.base_url}/Patient/no-such-patient", headers={"Authorization": f"Bearer {EHR_TOKEN}"}
    )
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"  # Medplum's own OperationOutcome

    probe = PrefetchProbe(declaration=EDGES)
    with stand.serving(ServiceRegistry([probe])):
        unknown_patient = stand.call(
            EDGES.id, "patient-view", context={"userId": USER_ID, "patientId": "no-such-patient"}
        )
        assert unknown_patient.status_code == 412
        outcome = unknown_patient.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "incomplete"
        assert (
            "patient: FHIR server answered 404 with an OperationOutcome" in outcome["issue"][0]["diagnostics"]
        )
        assert probe.calls == []

        answered = stand.call(
            EDGES.id,
            "patient-view",
            context={"userId": "Practitioner/nobody-here", "patientId": stand.chart.patient_id},
        )
        assert answered.status_code == 200, answered.text
        (call,) = probe.calls
        issues = _issues(call)
        assert issues["practitioner"] == ("processing", "FHIR server answered 404 with an OperationOutcome")
        assert issues["malformed"] == ("processing", "FHIR server answered 400 with an OperationOutcome")
        assert call.prefetch["practitioner"] is None and call.prefetch["malformed"] is None
        assert sorted(_ids(call.prefetch["immunizations"])) == sorted(
            stand.chart.expected(f"Immunization?patient={stand.chart.patient_id}")
        )

        stand.medplum.reset()
        refused = stand.call(EDGES.id, "patient-view", token="a-token-medplum-refuses")
    assert refused.status_code == 412
    assert "answered 401" in refused.json()["issue"][0]["diagnostics"]
    assert "a-token-medplum-refuses" not in refused.text
    assert {r["authorized"] for r in stand.medplum.requests()} == {False}


def test_operation_outcomes_where_data_was_expected(stand: Stand) -> None:
    probe = _probe_of(CHART_REVIEW)
    registry = ServiceRegistry([probe, *shipped_registry()])
    stand.medplum.set_faults(outcome_for={"Immunization": 200, "Procedure": 500})
    with stand.serving(registry):
        probed = stand.call(probe.declaration.id, "patient-view")
        assert probed.status_code == 200, probed.text
        (call,) = probe.calls
        assert _issues(call) == {
            "immunizations": ("processing", "FHIR server answered 200 with an OperationOutcome"),
            "procedures": ("processing", "FHIR server answered 500 with an OperationOutcome"),
        }
        assert call.prefetch["immunizations"] is None and call.prefetch["procedures"] is None
        # The rules still run on what did arrive: the bleeding-risk card needs only medications.
        cards = stand.call(CHART_REVIEW.id, "patient-view")
        assert cards.status_code == 200, cards.text
        assert "rule.vka-nsaid" in {card["source"]["topic"]["code"] for card in cards.json()["cards"]}

        stand.medplum.set_faults(outcome_for={"Patient": 200})
        required = stand.call(CHART_REVIEW.id, "patient-view")
    assert required.status_code == 412
    body = required.json()
    assert body["issue"][0]["code"] == "incomplete"
    assert "fault switched on" not in required.text  # Medplum's diagnostics are not repeated


def test_slow_medplum_is_waited_for_within_the_timeout_and_cut_off_past_it(stand: Stand) -> None:
    probe = _probe_of(CHART_REVIEW)
    patient = stand.chart.store.read("Patient", stand.chart.patient_id)
    stand.medplum.set_faults(delay_ms=400)
    with stand.serving(ServiceRegistry([probe]), fhir_timeout_s=5.0):
        began = time.monotonic()
        slow = stand.call(probe.declaration.id, "patient-view")
        assert time.monotonic() - began >= 0.4
    assert slow.status_code == 200, slow.text
    assert probe.calls[-1].prefetch_issues == ()
    assert len(_ids(probe.calls[-1].prefetch["labs"])) > 0

    stand.medplum.set_faults(delay_ms=3000)
    with stand.serving(ServiceRegistry([probe]), fhir_timeout_s=0.5):
        began = time.monotonic()
        answered = stand.call(probe.declaration.id, "patient-view", prefetch={"patient": patient})
        answered_s = time.monotonic() - began
        began = time.monotonic()
        refused = stand.call(probe.declaration.id, "patient-view")
        refused_s = time.monotonic() - began
    assert answered.status_code == 200, answered.text
    issues = _issues(probe.calls[-1])
    assert set(issues) == set(CHART_REVIEW.prefetch) - {"patient"}
    assert {code for code, _ in issues.values()} == {"timeout"}
    assert refused.status_code == 412
    assert "patient: FHIR server did not answer in time" in refused.json()["issue"][0]["diagnostics"]
    # Nine keys over eight connections: two rounds of the 0.5 s timeout, never Medplum's 3 s.
    assert answered_s < 2.5 and refused_s < 2.5


def test_wrapper_refuses_unknown_switches(medplum: MedplumHandle) -> None:
    response = httpx.post(f"{medplum.origin}/admin/faults", json={"no_such_switch": 1}, timeout=10)
    assert response.status_code == 400
    assert json.loads(response.text)["resourceType"] == "OperationOutcome"

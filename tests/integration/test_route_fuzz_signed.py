"""Schemathesis fuzzes every published route with each call freshly EHR-signed: no 5xx, no echo, no replay."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema

from cds_hooks.app import create_app
from cds_hooks.protocol import CONTEXT_RULES
from cds_hooks.settings import TenantSettings, load_settings
from plugin.catalog import shipped_registry
from plugin.context.fhir_parse import USED_TYPES
from plugin.feedback import MemoryFeedbackSink
from tests.support.asgi_server import unused_loopback_url
from tests.support.jwt_factory import es384_key, jwks
from tests.support.route_fuzz import (
    EhrSigner,
    client_strings,
    echoed,
    narrowed_document,
    reaching_the_rules,
    vocabulary,
)

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 200
ISSUER = "https://ehr.fuzz.test.invalid"
# The host schemathesis' ASGI transport sends in-process calls to, made the app's public base too: the URL
# a call goes to is then the audience the app expects, as for an EHR calling the deployed service.
BASE_URL = "http://testserver"
SIGNER = EhrSigner(es384_key("fuzz-es384"), ISSUER, BASE_URL)
PATIENT_IDS = ["patient-0001", "patient-0002"]

# The shipped services, not the test registry: its showcase service repeats the patient id in a card
# summary on purpose, an echo of the test's own making. Feedback goes to memory; the Redis URL points at a
# closed loopback port, so the jti replay check runs on its in-process fallback store. Building the app
# runs nothing: its lifespan starts with the first call of a test below, not when the module is collected.
REGISTRY = shipped_registry()
APP = create_app(
    load_settings(
        public_base_url=BASE_URL,
        redis_url=unused_loopback_url().replace("http://", "redis://") + "/0",
        tenants=(TenantSettings(name="fuzz-ehr", issuer=ISSUER, jwks=jwks(SIGNER.key)),),
    ),
    REGISTRY,
    feedback_sink=MemoryFeedbackSink(),
)
SERVICE_IDS = [service.declaration.id for service in REGISTRY]
HOOKS = sorted({hook for service in REGISTRY for hook in service.declaration.hooks})
ANSWERED_BY = {hook: service.declaration.id for service in REGISTRY for hook in service.declaration.hooks}
# Words of the protocol, not client data, which an error may name when the client sent them: the enum
# values of the published schema, and the CDS Hooks 2.0 hook names the edge knows ("context.userId is
# required for encounter-discharge"). An unknown hook is never repeated, and is not allowed here.
# The FHIR resource types the product reads are vocabulary too: a 412 for another patient's data says
# which types it refused ("draftOrders (MedicationRequest)"); any other type is described as "resource".
ALLOWED_ECHOES = vocabulary(APP.openapi()) | frozenset(CONTEXT_RULES) | USED_TYPES
# A fetch-back must never leave the machine: the only server a positive case may name refuses at once.
CLOSED_FHIR_SERVER = unused_loopback_url().replace("http://", "https://") + "/fhir"


def _bounded(schema: BaseSchema) -> BaseSchema:
    # Both positive (schema-conforming) and negative (schema-violating) data: the CLI's `--mode all`.
    schema.config.generation.update(
        modes=list(GenerationMode), max_examples=MAX_EXAMPLES, deterministic=True, database="none"
    )
    return schema


# Not `from_asgi`: it would start the app's lifespan at import, i.e. whenever this module is collected.
PUBLISHED = _bounded(schemathesis.openapi.from_dict(APP.openapi()))
NARROWED = _bounded(
    schemathesis.openapi.from_dict(
        reaching_the_rules(
            narrowed_document(APP.openapi(), SERVICE_IDS, HOOKS, CLOSED_FHIR_SERVER),
            PATIENT_IDS,
            sorted({key for service in REGISTRY for key in service.declaration.prefetch}),
        )
    )
)

# derandomize: the same inputs on every run, so CI is deterministic. too_slow and filter_too_much: the
# negative strategies for nested JSON bodies are slow to draw on a 2-core runner, which is not our bug.
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _send_to_the_answering_service(case: Any) -> None:
    # A positive hook call names a registered service and a hook some service answers, drawn apart: most
    # pairs would stop at "the service does not answer the hook". Addressed to the service that answers,
    # they reach prefetch resolution and the rules. Negative cases keep their pairing, mismatches included.
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    body = case.body
    parameters = case.path_parameters or {}
    if (
        mode == GenerationMode.POSITIVE
        and parameters.get("service_id") in SERVICE_IDS
        and isinstance(body, dict)
        # A feedback body may carry a "hook" of any type: its schema does not define one.
        and isinstance(body.get("hook"), str)
        and body.get("hook") in ANSWERED_BY
        and not case.path.endswith("/feedback")
    ):
        parameters["service_id"] = ANSWERED_BY[body["hook"]]


def _signed_call_is_answered_safely(case: Any) -> None:
    _send_to_the_answering_service(case)
    # Schemathesis keeps path parameters percent-encoded; the app compares `aud` with the decoded id.
    raw_id = (case.path_parameters or {}).get("service_id")
    service_id = unquote(str(raw_id)) if raw_id is not None else None
    signed: dict[str, str] = {}
    if service_id is not None:  # discovery is not authenticated (CDS Hooks 2.0 §Discovery)
        suffix = "/feedback" if case.path.endswith("/feedback") else ""
        signed["Authorization"] = SIGNER.authorization(service_id, suffix)
    # Messages name the route, status and generated data, never the token.
    where = f"{case.method} {case.formatted_path}"
    response = case.call(app=APP, base_url=BASE_URL, headers=signed)
    status = response.status_code
    assert status < 500, f"{where} answered {status} for headers={case.headers!r} body={case.body!r}"

    sent = client_strings(case.path_parameters, case.query, {**(case.headers or {}), **signed}, case.body)
    found = echoed(sent, response.content, ALLOWED_ECHOES)
    assert not found, f"{where} ({status}) repeated client input {found!r} for body={case.body!r}"

    # Only a POST to a service's URL reads the token, and a 415 is answered before it does.
    if case.method == "POST" and service_id in SERVICE_IDS and status != 415:
        # The exact audience and a fresh jti pass; sent again, the same token is a replay.
        assert status != 401, f"{where}: a freshly signed call was refused"
        replayed = case.call(app=APP, base_url=BASE_URL, headers=signed)
        assert replayed.status_code == 401, f"{where}: a replayed token answered {replayed.status_code}"
        assert replayed.content == b"", f"{where}: a 401 carried a body"


@PUBLISHED.parametrize()
@BOUNDED
def test_published_schema_signed_calls_never_5xx_nor_echo(case: Any) -> None:
    _signed_call_is_answered_safely(case)


@NARROWED.parametrize()
@BOUNDED
def test_narrowed_schema_signed_calls_never_5xx_nor_echo(case: Any) -> None:
    _signed_call_is_answered_safely(case)


def test_every_hook_the_narrowing_names_is_answered_and_checked() -> None:
    # Every hook a positive case may carry has a service to address it to, and context rules at the
    # edge: otherwise the positive cases above would stop at a 400 and test nothing past it.
    assert set(HOOKS) == set(ANSWERED_BY) and set(HOOKS) <= set(CONTEXT_RULES)
    assert len(ANSWERED_BY) == sum(len(service.declaration.hooks) for service in REGISTRY)


def test_a_refusal_for_another_patients_data_names_no_client_type() -> None:
    # What the fuzz above found: the 412 repeated any alphabetic resourceType, so a client's word (a
    # name, say) came back in the error. Only types the product reads are named now.
    draft: dict[str, Any] = {
        "resourceType": "JaneRoeDiagnosis",
        "subject": {"reference": f"Patient/{PATIENT_IDS[1]}"},
    }
    ordered: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "subject": {"reference": f"Patient/{PATIENT_IDS[1]}"},
    }
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": "fuzz-regression",
        "context": {
            "userId": "Practitioner/fuzz",
            "patientId": PATIENT_IDS[0],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}, {"resource": ordered}]},
        },
        "prefetch": {"patient": {"resourceType": "Patient", "id": PATIENT_IDS[0]}},
    }
    case = PUBLISHED["/cds-services/{service_id}"]["POST"].Case(
        path_parameters={"service_id": "r1-order-review"}, body=body, media_type="application/json"
    )
    headers = {"Authorization": SIGNER.authorization("r1-order-review")}
    response = case.call(app=APP, base_url=BASE_URL, headers=headers)
    assert response.status_code == 412
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "draftOrders (MedicationRequest, resource)" in diagnostics
    assert "JaneRoe" not in response.text

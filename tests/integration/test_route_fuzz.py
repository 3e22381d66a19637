"""Schemathesis fuzzes every route of the app's own OpenAPI document, valid and invalid inputs: never a 5xx."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.schemas import BaseSchema

from cds_hooks.app import create_app
from cds_hooks.protocol import CONTEXT_RULES
from cds_hooks.settings import load_settings
from plugin.feedback import MemoryFeedbackSink
from tests.support.asgi_server import unused_loopback_url
from tests.support.services import build_test_registry

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 100

FHIR_ID = "^[A-Za-z0-9.-]{1,16}$"
REFERENCE = "^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9.-]{1,16}$"


def _narrowed(document: dict[str, Any]) -> dict[str, Any]:
    """The published document with what the handlers check before the interesting code made explicit.

    The handlers answer 404 for an unknown service id before reading the body, and 400 for a hook the
    service does not answer; random strings are nearly always both. Pinning the path parameter to the
    registry, the hook to the hooks it answers and `context`/`prefetch` to the spec's shapes makes positive
    cases reach prefetch resolution and the services, and negative cases break exactly these constraints.
    """
    narrowed = copy.deepcopy(document)
    for path in ("/cds-services/{service_id}", "/cds-services/{service_id}/feedback"):
        for parameter in narrowed["paths"][path]["post"]["parameters"]:
            if parameter["name"] == "service_id":
                parameter["schema"] = {"type": "string", "enum": SERVICE_IDS}
    resource = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
    }
    bundle = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"type": "string"},
            "entry": {
                "type": "array",
                "items": {"type": "object", "required": ["resource"], "properties": {"resource": resource}},
            },
        },
    }
    properties = narrowed["components"]["schemas"]["HookRequest"]["properties"]
    properties["hook"] = {"type": "string", "enum": HOOKS}
    properties["context"] = {
        "type": "object",
        "required": ["userId", "patientId"],
        "properties": {
            "userId": {"type": "string", "pattern": REFERENCE},
            "patientId": {"type": "string", "pattern": FHIR_ID},
            "encounterId": {"type": "string", "pattern": FHIR_ID},
            "selections": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": "^[A-Z][a-z]+/[a-z0-9]{1,8}$"},
            },
            "draftOrders": bundle,
        },
    }
    patient = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": "Patient"}, "id": {"type": "string", "pattern": FHIR_ID}},
    }
    properties["prefetch"] = {"type": "object", "properties": {"patient": patient}}
    # A fetch-back must never leave the machine: the only server a positive case may name refuses at once.
    closed_fhir_server = unused_loopback_url().replace("http://", "https://") + "/fhir"
    properties["fhirServer"] = {"type": "string", "enum": [closed_fhir_server]}
    return narrowed


def _bounded(schema: BaseSchema) -> BaseSchema:
    # Both positive (schema-conforming) and negative (schema-violating) data: the CLI's `--mode all`.
    schema.config.generation.update(
        modes=list(GenerationMode), max_examples=MAX_EXAMPLES, deterministic=True, database="none"
    )
    return schema


# Auth off and feedback in memory so every generated body reaches the parser and the handlers; the Redis
# URL points at a closed loopback port, so nothing here may depend on a store being up. Building the app
# runs nothing: its lifespan starts with the first call of a test below, not when the module is collected.
REGISTRY = build_test_registry()[0]
APP = create_app(
    load_settings(auth_disabled=True, redis_url=unused_loopback_url().replace("http://", "redis://") + "/0"),
    REGISTRY,
    feedback_sink=MemoryFeedbackSink(),
)
SERVICE_IDS = [service.declaration.id for service in REGISTRY]
HOOKS = sorted({hook for service in REGISTRY for hook in service.declaration.hooks})
# The document the app serves at /openapi.json. Not `from_asgi`: it would start the app's lifespan at
# import, so every pytest run that merely collects this module (`-m unit` too) would start the app.
PUBLISHED = _bounded(schemathesis.openapi.from_dict(APP.openapi()))
NARROWED = _bounded(schemathesis.openapi.from_dict(_narrowed(APP.openapi())))

# derandomize: the same inputs on every run, so CI is deterministic. too_slow and filter_too_much: the
# negative strategies for nested JSON bodies are slow to draw on a 2-core runner, which is not our bug.
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _assert_no_server_error(case: Any) -> None:
    # Sent to the app in process; schemathesis' ASGI transport runs its lifespan (started on the first
    # call, ended by its pytest plugin after each test), so the handlers built at start-up exist: a
    # missing lifespan would show up here as 500s.
    response = case.call(app=APP)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code} "
        f"for headers={case.headers!r} body={case.body!r}"
    )


@PUBLISHED.parametrize()
@BOUNDED
def test_published_schema_no_input_makes_a_route_answer_5xx(case: Any) -> None:
    _assert_no_server_error(case)


@NARROWED.parametrize()
@BOUNDED
def test_narrowed_schema_no_input_makes_a_route_answer_5xx(case: Any) -> None:
    _assert_no_server_error(case)


def test_the_narrowed_hooks_are_the_ones_the_edge_checks() -> None:
    # The narrowing must track the edge: a hook the services answer that the context rules do not know
    # would make the positive cases above test nothing past the 400.
    assert set(HOOKS) <= set(CONTEXT_RULES)

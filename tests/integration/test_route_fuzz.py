"""Schemathesis fuzzes every route of the app's own OpenAPI document, auth off: never a 5xx nor an echo."""

from __future__ import annotations

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
from tests.support.route_fuzz import client_strings, echoed, narrowed_document, vocabulary
from tests.support.services import build_test_registry

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 100


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
# A fetch-back must never leave the machine: the only server a positive case may name refuses at once.
CLOSED_FHIR_SERVER = unused_loopback_url().replace("http://", "https://") + "/fhir"
NARROWED = _bounded(
    schemathesis.openapi.from_dict(narrowed_document(APP.openapi(), SERVICE_IDS, HOOKS, CLOSED_FHIR_SERVER))
)
# Words of the protocol, not client data, that an error may name: the published schema's enum values and
# the CDS Hooks 2.0 hooks the edge knows ("context.userId is required for patient-view").
ALLOWED_ECHOES = vocabulary(APP.openapi()) | frozenset(CONTEXT_RULES)

# derandomize: the same inputs on every run, so CI is deterministic. too_slow and filter_too_much: the
# negative strategies for nested JSON bodies are slow to draw on a 2-core runner, which is not our bug.
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _assert_answered_safely(case: Any) -> None:
    # Sent to the app in process; schemathesis' ASGI transport runs its lifespan (started on the first
    # call, ended by its pytest plugin after each test), so the handlers built at start-up exist: a
    # missing lifespan would show up here as 500s.
    response = case.call(app=APP)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code} "
        f"for headers={case.headers!r} body={case.body!r}"
    )
    # The showcase test service puts the patient id in a card summary on purpose, so a hook's 2xx is
    # not echo-checked here; tests/integration/test_route_fuzz_signed.py checks them on the shipped services.
    if response.status_code < 300 and case.method == "POST" and not case.path.endswith("/feedback"):
        return
    sent = client_strings(case.path_parameters, case.query, case.headers, case.body)
    found = echoed(sent, response.content, ALLOWED_ECHOES)
    assert not found, f"{case.method} {case.formatted_path} ({response.status_code}) repeated {found!r}"


@PUBLISHED.parametrize()
@BOUNDED
def test_published_schema_no_input_makes_a_route_answer_5xx(case: Any) -> None:
    _assert_answered_safely(case)


@NARROWED.parametrize()
@BOUNDED
def test_narrowed_schema_no_input_makes_a_route_answer_5xx(case: Any) -> None:
    _assert_answered_safely(case)


def test_the_narrowed_hooks_are_the_ones_the_edge_checks() -> None:
    # The narrowing must track the edge: a hook the services answer that the context rules do not know
    # would make the positive cases above test nothing past the 400.
    assert set(HOOKS) <= set(CONTEXT_RULES)

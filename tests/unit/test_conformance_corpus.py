"""The public CDS Hooks example corpus drives the wire models: valid examples parse, bad ones are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cds_hooks.protocol import DiscoveryResponse, FeedbackRequest, HookRequest, HookResponse
from tests.support.fixtures_paths import SHARED_FIXTURES, require_shared_fixtures

pytestmark = pytest.mark.unit

CDS = SHARED_FIXTURES / "cds-hooks"
VALIDATOR = CDS / "fhir-test-cases" / "validator"

# Every example in the corpus, with the model it exercises and whether the 2.0 spec admits it.
# Each refusal names the rule that refuses it, so a change in the models shows up as a named diff.
VALID: dict[str, type[BaseModel]] = {
    "fhir-test-cases/validator/cdshooks-request-pv-good.json": HookRequest,
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-select-good.json": HookRequest,
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-sign-good.json": HookRequest,
    "fhir-test-cases/validator/cdshooks/cdshooks-request-patient-view-good.json": HookRequest,
    "spec-examples-extracted/patient-view-request.json": HookRequest,
    "spec-examples-extracted/order-sign-request-paginated-prefetch.json": HookRequest,
    "cqf-ruler/opioidcds-08-request.json": HookRequest,
    "fhir-test-cases/validator/cdshooks-response-good.json": HookResponse,
    "fhir-test-cases/validator/cdshooks/cdshooks-response-empty.json": HookResponse,
    "fhir-test-cases/validator/cdshooks/cdshooks-response-link.json": HookResponse,
    "fhir-test-cases/validator/cdshooks/cdshooks-response-no-link.json": HookResponse,
    "fhir-test-cases/validator/cdshooks/cdshooks-response-two-cards.json": HookResponse,
    "spec-examples-extracted/response-cards-full.json": HookResponse,
    "spec-examples-extracted/response-empty-cards.json": HookResponse,
    "fhir-test-cases/validator/cdshooks-services-good.json": DiscoveryResponse,
    "fhir-test-cases/validator/cdshooks/cdshooks-services-order-select-extensions.json": DiscoveryResponse,
    "spec-examples-extracted/discovery-response.json": DiscoveryResponse,
    "spec-examples-extracted/discovery-with-extension.json": DiscoveryResponse,
    "spec-examples-extracted/feedback-accepted.json": FeedbackRequest,
    "spec-examples-extracted/feedback-ignored.json": FeedbackRequest,
    "spec-examples-extracted/feedback-overridden.json": FeedbackRequest,
}
INVALID: dict[str, tuple[type[BaseModel], str]] = {
    # The HL7 validator's own "bad" cases.
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-select-bad.json": (HookRequest, "prefetch"),
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-sign-bad-1.json": (HookRequest, "patientId"),
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-sign-bad-2.json": (HookRequest, "prefetch"),
    "fhir-test-cases/validator/cdshooks/cdshooks-request-patient-view-bad.json": (HookRequest, "prefetch"),
    "fhir-test-cases/validator/cdshooks/cdshooks-request-order-select-extensions.json": (
        HookRequest,
        "draftOrders",
    ),
    "fhir-test-cases/validator/cdshooks/cdshooks-response-empty-source.json": (HookResponse, "source"),
    "fhir-test-cases/validator/cdshooks/cdshooks-response-empty2.json": (HookResponse, "cards"),
    # Summaries of 157 and 169 characters: the spec asks for fewer than 140.
    "fhir-test-cases/validator/cdshooks/cdshooks-response-source-link.json": (HookResponse, "summary"),
    "fhir-test-cases/validator/cdshooks/cdshooks-response-suggestion.json": (HookResponse, "summary"),
    # Pre-2.0 or fragmentary examples: references where ids belong, entries where resources belong.
    "cqf-ruler/html-request.json": (HookRequest, "patientId"),
    "cqf-ruler/unicode-request.json": (HookRequest, "patientId"),
    "cqf-ruler/request-HighRiskIDUPatient.json": (HookRequest, "patientId"),
    "cqf-ruler/opioidcds-01-request.json": (HookRequest, "patientId"),
    "cqf-ruler/opioidcds-04-request.json": (HookRequest, "patientId"),
    "cqf-ruler/opioidcds-01-request-prefetch.json": (HookRequest, "prefetch"),
    "cqf-ruler/opioidcds-04-request-prefetch.json": (HookRequest, "prefetch"),
    "cqf-ruler/opioidcds-08-request-prefetch.json": (HookRequest, "prefetch"),
    "cqf-ruler/request-ExclusionPatient.json": (HookRequest, "prefetch"),
    "cqf-ruler/request-HelloWorld.json": (HookRequest, "prefetch"),
    "hapi-fhir/CdsServiceRequestJson.json": (HookRequest, "hookInstance"),
    "hapi-fhir/CdsServiceResponseJson.json": (HookResponse, "summary"),
    "spec-examples-extracted/request-with-extension.json": (HookRequest, "patientId"),
    "spec-examples-extracted/response-cards-smart-link.json": (HookResponse, "indicator"),
    "spec-examples-extracted/response-system-actions.json": (HookResponse, "description"),
}
# Context-only fragments from the hook definitions: checked as contexts of a complete request.
CONTEXT_FRAGMENTS = {
    "spec-examples-extracted/order-select-context-1.json": "order-select",
    "spec-examples-extracted/order-select-context-2.json": "order-select",
    "spec-examples-extracted/order-select-context-3.json": "order-select",
    "spec-examples-extracted/order-sign-context-1.json": "order-sign",
    "spec-examples-extracted/order-sign-context-2.json": "order-sign",
}
NOT_MESSAGES = {
    "spec-examples-extracted/prefetch-example.json",  # a bare prefetch object, checked below
    "sandbox-cds-services/service-definitions.json",  # a bare list of service definitions, checked below
}


def _load(name: str) -> Any:
    return json.loads((CDS / name).read_bytes())


def _strip_empty(value: Any) -> Any:
    """Equivalence for JSON written by hand: absent, null and empty collections say the same thing."""
    if isinstance(value, dict):
        return {k: _strip_empty(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_strip_empty(v) for v in value]
    return value


def test_corpus_is_fully_classified() -> None:
    require_shared_fixtures()
    corpus = {str(p.relative_to(CDS)) for p in CDS.rglob("*.json") if "outcomes" not in p.parts}
    classified = set(VALID) | set(INVALID) | set(CONTEXT_FRAGMENTS) | NOT_MESSAGES
    assert corpus == classified, (
        f"unclassified: {sorted(corpus - classified)}; gone: {sorted(classified - corpus)}"
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_example_parses_and_round_trips(name: str) -> None:
    require_shared_fixtures()
    model = VALID[name]
    raw = (CDS / name).read_bytes()
    parsed = model.model_validate_json(raw)
    if model is HookRequest:
        return  # requests are read, never re-emitted
    emitted = json.loads(parsed.model_dump_json(by_alias=True, exclude_none=True))
    assert _strip_empty(emitted) == _strip_empty(json.loads(raw))


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_example_is_refused_for_the_named_rule(name: str) -> None:
    require_shared_fixtures()
    model, rule = INVALID[name]
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json((CDS / name).read_bytes())
    assert rule in str(refused.value)


@pytest.mark.parametrize("name", sorted(CONTEXT_FRAGMENTS))
def test_hook_definition_contexts_are_accepted(name: str) -> None:
    require_shared_fixtures()
    context = _load(name)["context"]
    request = {"hook": CONTEXT_FRAGMENTS[name], "hookInstance": "x", "context": context}
    assert HookRequest.model_validate(request).context == context


def test_bare_prefetch_example_resources_accepted_but_legacy_user_string_refused() -> None:
    """The spec page's prefetch example still carries 1.0's `"user": "123"`; 2.0 values are resources."""
    require_shared_fixtures()
    prefetch = _load("spec-examples-extracted/prefetch-example.json")["prefetch"]
    request = {
        "hook": "patient-view",
        "hookInstance": "x",
        "context": {"userId": "Practitioner/1", "patientId": "1"},
        "prefetch": prefetch,
    }
    with pytest.raises(ValidationError, match=r"every prefetch value must be a FHIR resource or null"):
        HookRequest.model_validate(request)
    resources_only = {k: v for k, v in prefetch.items() if k != "user"}
    assert HookRequest.model_validate({**request, "prefetch": resources_only}).prefetch == resources_only


def test_sandbox_service_list_parses_as_discovery() -> None:
    require_shared_fixtures()
    services = _load("sandbox-cds-services/service-definitions.json")
    parsed = DiscoveryResponse.model_validate({"services": services})
    assert [s.id for s in parsed.services] == [s["id"] for s in services]


def test_spec_validator_outcomes_agree_on_request_verdicts() -> None:
    """The HL7 validator's expected outcomes are the independent oracle for its own request cases."""
    require_shared_fixtures()
    outcomes = VALIDATOR / "outcomes" / "java"
    for case in sorted((VALIDATOR / "cdshooks").glob("cdshooks-request-*.json")):
        # The validator names one outcome file differently from its case file.
        stem = case.stem.replace("cdshooks-request-order-sign-bad-1", "cdshooks-request-bad-1")
        outcome = json.loads((outcomes / f"R4.{stem}-logical.json").read_bytes())
        hl7_errors = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
        ours_ok = True
        try:
            HookRequest.model_validate_json(case.read_bytes())
        except ValidationError:
            ours_ok = False
        assert ours_ok == (not hl7_errors), case.name

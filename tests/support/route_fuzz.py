"""Shared parts of the route fuzz tests: the narrowed OpenAPI document, per-call EHR JWTs and the echo check."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tests.support.jwt_factory import SigningKey, claims, mint

FHIR_ID = "^[A-Za-z0-9.-]{1,16}$"
FHIR_TYPE = "^[A-Z][A-Za-z]{7,23}$"
REFERENCE = "^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9.-]{1,16}$"

# Strings shorter than this are too likely to occur in any body by chance ("Patient", "info") to count.
MIN_ECHO_CHARS = 8

# Headers every HTTP client sends whose values the app never reads as data; anything else a case carries
# (a generated header parameter, our Authorization) is checked for echo like the body.
STANDARD_HEADERS = frozenset(
    {"accept", "accept-encoding", "connection", "content-length", "content-type", "host", "user-agent"}
)

HOOK_PATHS = ("/cds-services/{service_id}", "/cds-services/{service_id}/feedback")


def narrowed_document(
    document: Mapping[str, Any], service_ids: Sequence[str], hooks: Sequence[str], fhir_server: str
) -> dict[str, Any]:
    """The published document with what the handlers check before the interesting code made explicit.

    The handlers answer 404 for an unknown service id before reading the body, and 400 for a hook the
    service does not answer; random strings are nearly always both. Pinning the path parameter to the
    registry, the hook to the hooks it answers and `context`/`prefetch` to the spec's shapes makes positive
    cases reach prefetch resolution and the services, and negative cases break exactly these constraints.
    `fhir_server` is the only FHIR server a positive case may name: it must refuse at once, so that a
    fetch-back never leaves the machine.
    """
    narrowed = copy.deepcopy(dict(document))
    for path in HOOK_PATHS:
        for parameter in narrowed["paths"][path]["post"]["parameters"]:
            if parameter["name"] == "service_id":
                parameter["schema"] = {"type": "string", "enum": list(service_ids)}
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
    properties["hook"] = {"type": "string", "enum": list(hooks)}
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
    properties["fhirServer"] = {"type": "string", "enum": [fhir_server]}
    return narrowed


def reaching_the_rules(
    document: dict[str, Any], patient_ids: Sequence[str], prefetch_keys: Sequence[str]
) -> dict[str, Any]:
    """`narrowed_document` whose positive cases pass the context checks of every hook and often the
    patient check, so that they reach the rules; its negative cases break those checks one at a time.

    Every context member any hook requires is required, and `context.patientId`, `prefetch.patient.id`
    and the draft orders' `subject.reference` are drawn from `patient_ids`: with two ids, about half the
    calls are for one patient throughout (they reach the rules) and the rest are refused with 412 as
    data of another patient. Ids of at least MIN_ECHO_CHARS characters let the echo check see them.
    The services' own `prefetch_keys` may carry resources of a FHIR-type-shaped `resourceType` naming either
    patient, as may the draft orders: a 412 describes what it refused, so that is where a client's strings
    come nearest the reply.
    """
    widened = copy.deepcopy(document)
    properties = widened["components"]["schemas"]["HookRequest"]["properties"]
    context = properties["context"]
    context["required"] = sorted(context["properties"])
    context["properties"]["patientId"] = {"type": "string", "enum": list(patient_ids)}
    subject = {
        "type": "object",
        "required": ["reference"],
        "properties": {
            "reference": {"type": "string", "enum": [f"Patient/{patient_id}" for patient_id in patient_ids]}
        },
    }
    # A FHIR resource type's shape (a capitalised word), long enough for the echo check to look for it.
    named = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "pattern": FHIR_TYPE}, "subject": subject},
    }
    prefetch = properties["prefetch"]
    prefetch["properties"]["patient"]["properties"]["id"] = {"type": "string", "enum": list(patient_ids)}
    for key in prefetch_keys:
        if key != "patient":
            prefetch["properties"][key] = named
    # Keys no service asked for are ignored, but still resources, not arbitrary JSON (a 400 at the edge).
    prefetch["additionalProperties"] = named
    context["properties"]["draftOrders"]["properties"]["entry"]["items"]["properties"]["resource"] = named
    # The edge's own rules for fetch-back authorization (CDS Hooks 2.0 §fhirAuthorization): a Bearer
    # token, and a patient that is a FHIR id. The access token stays free text, and is echo-checked.
    authorization = widened["components"]["schemas"]["FhirAuthorization"]["properties"]
    authorization["token_type"] = {"const": "Bearer"}
    authorization["patient"] = {"anyOf": [{"type": "string", "enum": list(patient_ids)}, {"type": "null"}]}
    return widened


@dataclass(frozen=True, slots=True)
class EhrSigner:
    """Signs each call as a CDS Hooks 2.0 EHR does: `aud` is the URL called, `jti` new every time."""

    key: SigningKey
    issuer: str
    base_url: str  # the app's public base, which is also the base the calls are sent to

    def audience(self, service_id: str, suffix: str = "") -> str:
        # The service's URL as discovery names it (the id unencoded): what the app compares `aud` with.
        return f"{self.base_url}/cds-services/{service_id}{suffix}"

    def authorization(self, service_id: str, suffix: str = "") -> str:
        token = mint(self.key, claims(self.issuer, self.audience(service_id, suffix)))
        return f"Bearer {token}"


def client_strings(
    path_parameters: Mapping[str, Any] | None,
    query: Mapping[str, Any] | None,
    headers: Mapping[str, Any] | None,
    body: object,
) -> set[str]:
    """Every string of at least MIN_ECHO_CHARS characters that a request carries as data.

    Path parameters, query values, non-standard header values and the string leaves of a JSON body: the
    values a client chooses. Object keys are left out: the body's keys are the schema's own field names,
    which an error legitimately names ("context.patientId: ...").
    """
    found: set[str] = set()
    for value in (path_parameters or {}).values():
        # Schemathesis keeps them percent-encoded; the app sees them decoded. Either may come back.
        found.update(_strings(value))
        found.update(unquote(text) for text in _strings(value))
    for value in (query or {}).values():
        found.update(_strings(value))
    for name, value in (headers or {}).items():
        if name.lower() not in STANDARD_HEADERS:
            found.update(_strings(value))
    found.update(_strings(body))
    return {text for text in found if len(text) >= MIN_ECHO_CHARS}


def echoed(sent: set[str], body: bytes, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The strings of `sent` (less `allowed`) found verbatim in a response body.

    Looked for both in the raw bytes and in the decoded strings of a JSON body: JSON escaping
    (`\\u00e9`, `\\"`) would hide an echoed value with such characters from a plain byte search.
    """
    if not body:
        return []
    raw = body.decode("utf-8", errors="replace")
    haystacks = [raw]
    try:
        decoded = json.loads(body)
    except ValueError:  # not JSON: the raw text is all there is to search
        decoded = None
    haystacks.extend(_strings(decoded, keys=True))
    return sorted(text for text in sent - allowed if any(text in haystack for haystack in haystacks))


def vocabulary(document: Mapping[str, Any]) -> frozenset[str]:
    """The words a schema itself defines: its property names and `enum`/`const` values.

    They are the protocol's words, not client data, and an error names them: "feedback.1: an overridden
    card has no accepted suggestions" names the field `feedback` and the CDS Hooks 2.0 feedback outcome
    `overridden`. Hypothesis draws such words as values on purpose, so without this a client that sends
    `"outcomeTimestamp": "feedback"` would look echoed by every error about the `feedback` field.
    """
    found: set[str] = set()
    stack: list[object] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    found.update(item for item in value if isinstance(item, str))
                elif key == "const" and isinstance(value, str):
                    found.add(value)
                else:
                    if key == "properties" and isinstance(value, Mapping):
                        found.update(name for name in value if isinstance(name, str))
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def _strings(value: object, keys: bool = False) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", errors="replace")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if keys and isinstance(key, str):
                yield key
            yield from _strings(item, keys)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, keys)

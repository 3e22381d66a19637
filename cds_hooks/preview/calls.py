"""Hook calls as an EHR would build them for the preview: from a demo patient, an uploaded Bundle or a FHIR server.

Bundles (demo or uploaded) are answered as `r1cds fire` does: each prefetch template of the service runs
against the Bundle and the results travel in `prefetch`, with no `fhirServer`. A FHIR server source sends
`fhirServer` (and `fhirAuthorization` when a token is given) with no prefetch, so the service fetches the
patient's data back itself, as it does for an EHR that prefetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints
from pydantic.alias_generators import to_camel

from cds_hooks import fire
from cds_hooks.errors import MalformedRequest, PayloadTooLarge
from cds_hooks.fhir_guard import fhir_client, refusal
from cds_hooks.preview.demo import demo_bundle
from cds_hooks.settings import Settings
from plugin.fhir_search import FhirStore
from plugin.services import ServiceDeclaration, ServiceRegistry

USER: Final = "Practitioner/r1cds-preview"
# fullUrls of the prefetched entries: a reserved name, since the Bundle has no server behind it.
BUNDLE_BASE: Final = "https://bundle.preview.invalid/fhir"
MAX_DRAFT_ORDERS: Final = 20
ENCOUNTER_LOOKUP_TIMEOUT_S: Final = 5.0

FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
Hook = Literal["patient-view", "order-select", "order-sign", "encounter-start", "encounter-discharge"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class DemoSource(_Model):
    kind: Literal["demo"]
    demo: Annotated[str, StringConstraints(max_length=64)]


class BundleSource(_Model):
    kind: Literal["bundle"]
    bundle: str  # the uploaded file's text, parsed here so that a bad file is our 400, not the browser's
    patient_id: FhirId | None = None


class FhirSource(_Model):
    kind: Literal["fhir"]
    fhir_server: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
    patient_id: FhirId
    access_token: SecretStr | None = None
    encounter_id: FhirId | None = None


Source = Annotated[DemoSource | BundleSource | FhirSource, Field(discriminator="kind")]


class PrepareRequest(_Model):
    source: Source
    hook: Hook
    draft_orders: Annotated[list[dict[str, Any]], Field(max_length=MAX_DRAFT_ORDERS)] = []


class TokenRequest(_Model):
    service_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    feedback: bool = False


class DraftRequest(_Model):
    patient_id: FhirId
    code: Annotated[str, StringConstraints(max_length=32)]
    dose_mg: float
    frequency: Annotated[str, StringConstraints(max_length=32)]
    encounter_id: FhirId | None = None


@dataclass(frozen=True, slots=True)
class PreparedCall:
    service_id: str
    hook: str
    patient_id: str
    request: dict[str, Any]


def service_for(registry: ServiceRegistry, hook: str) -> ServiceDeclaration:
    """The deployment's service for `hook` (the first that declares it, as discovery lists them)."""
    for service in registry:
        if hook in service.declaration.hooks:
            return service.declaration
    raise MalformedRequest(f"no service of this deployment answers {hook}")


def parse_bundle(text: str | bytes, limit: int) -> dict[str, Any]:
    """An uploaded file as a FHIR Bundle holding at least one Patient, or a 4xx saying what is wrong."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > limit:
        raise PayloadTooLarge(f"the file is {size} bytes, over the {limit}-byte limit")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the file is not JSON; upload a FHIR R4 Bundle (.json)") from None
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise MalformedRequest("the file is not a FHIR Bundle (its resourceType is not Bundle)")
    entries = document.get("entry")
    if entries is not None and not isinstance(entries, list):
        raise MalformedRequest("the Bundle's entry is not a list")
    if not patients_of(document):
        raise MalformedRequest("the Bundle holds no Patient resource")
    return document


def patients_of(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Patients of a Bundle as the page lists them: id, gender, birth date (no names)."""
    found = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            patient_id = resource.get("id")
            if isinstance(patient_id, str) and patient_id:
                found.append(
                    {
                        "id": patient_id,
                        "gender": str(resource.get("gender") or "unknown"),
                        "birthDate": str(resource.get("birthDate") or "unknown"),
                    }
                )
    return found


def _store(bundle: Mapping[str, Any]) -> FhirStore:
    try:
        return FhirStore.from_bundles([bundle])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MalformedRequest(f"the Bundle's entries could not be read ({type(exc).__name__})") from None


def _drafts(orders: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not orders:
        return None
    for order in orders:
        if not isinstance(order.get("resourceType"), str) or not isinstance(order.get("id"), str):
            raise MalformedRequest("each draft order needs a resourceType and an id")
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": dict(o)} for o in orders]}


def from_bundle(
    bundle: Mapping[str, Any],
    declaration: ServiceDeclaration,
    hook: str,
    patient_id: str | None,
    orders: Sequence[Mapping[str, Any]],
) -> PreparedCall:
    store = _store(bundle)
    try:
        chosen = fire.pick_patient(store, patient_id)
        context = fire.build_context(hook, store, chosen, USER, None, _drafts(orders))
    except fire.FireError as exc:
        raise MalformedRequest(_fire_message(str(exc))) from None
    if not FHIR_ID.fullmatch(chosen):
        raise MalformedRequest("the Patient's id is not a valid FHIR id ([A-Za-z0-9-.], at most 64)")
    prefetch = fire.build_prefetch(dict(declaration.prefetch), context, store, BUNDLE_BASE)
    request = fire.build_request(hook, context, prefetch, None)
    return PreparedCall(declaration.id, hook, chosen, request)


def _fire_message(text: str) -> str:
    # fire's messages name its command-line options; the page's controls are what the tester sees.
    return (
        text.replace("; pass --draft-orders with a Bundle or a resource", ": compose an order first")
        .replace("; pass --encounter", "")
        .replace("; name one with --patient", ": pick one")
    )


def check_server(base: str, settings: Settings) -> None:
    """Refuse, with a message, a FHIR server the deployment's fetch-back would refuse anyway."""
    refused = refusal(
        base,
        allow_http=settings.fhir_allow_http,
        allow_private=settings.fhir_allow_private_networks,
        allowlist=settings.fhir_server_allowlist,
    )
    if refused is not None:
        raise MalformedRequest(refused)


async def from_fhir_server(
    source: FhirSource,
    declaration: ServiceDeclaration,
    hook: str,
    orders: Sequence[Mapping[str, Any]],
    *,
    allow_private: bool = False,
) -> PreparedCall:
    base = source.fhir_server.rstrip("/")
    token = source.access_token.get_secret_value() if source.access_token else None
    context: dict[str, Any] = {"userId": USER, "patientId": source.patient_id}
    encounter = source.encounter_id
    if encounter is None and hook in fire.ENCOUNTER_HOOKS:
        encounter = await latest_encounter(base, source.patient_id, token, allow_private=allow_private)
    if encounter is not None:
        context["encounterId"] = encounter
    drafts = _drafts(orders)
    if hook in fire.ORDER_HOOKS:
        if drafts is None:
            raise MalformedRequest(f"{hook} needs draft orders: compose an order first")
        context["draftOrders"] = drafts
        if hook == "order-select":
            context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in orders]
    request = fire.build_request(hook, context, None, base, token, source.patient_id)
    return PreparedCall(declaration.id, hook, source.patient_id, request)


async def latest_encounter(
    base: str, patient_id: str, token: str | None, *, allow_private: bool = False
) -> str:
    """The id of the patient's newest Encounter on the server, for encounter hooks given none."""
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    params = {"patient": patient_id, "_sort": "-date", "_count": "1"}
    problem = "the FHIR server could not be asked for the patient's encounters"
    try:
        # A client of its own: this lookup is rare, and only the preview makes it.
        # It vets the addresses it connects to as fetch-back does (cds_hooks.fhir_guard).
        async with fhir_client(allow_private) as http:
            response = await http.get(
                f"{base}/Encounter", params=params, headers=headers, timeout=ENCOUNTER_LOOKUP_TIMEOUT_S
            )
        if response.status_code == 200:
            body = response.json()
            for entry in body.get("entry") or () if isinstance(body, dict) else ():
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and isinstance(resource.get("id"), str):
                    return str(resource["id"])
            problem = "the FHIR server has no encounter for this patient"
        else:
            problem = f"the FHIR server answered HTTP {response.status_code} to the encounter search"
    except (httpx.HTTPError, ValueError) as exc:
        problem = f"{problem} ({type(exc).__name__})"
    raise MalformedRequest(f"{problem}; enter an encounter id")


async def prepare(registry: ServiceRegistry, body: PrepareRequest, settings: Settings) -> PreparedCall:
    declaration = service_for(registry, body.hook)
    source = body.source
    if isinstance(source, DemoSource):
        return from_bundle(demo_bundle(source.demo), declaration, body.hook, source.demo, body.draft_orders)
    if isinstance(source, BundleSource):
        bundle = parse_bundle(source.bundle, settings.max_body_bytes)
        return from_bundle(bundle, declaration, body.hook, source.patient_id, body.draft_orders)
    check_server(source.fhir_server.rstrip("/"), settings)
    return await from_fhir_server(
        source, declaration, body.hook, body.draft_orders, allow_private=settings.fhir_allow_private_networks
    )

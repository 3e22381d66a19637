"""`r1cds fire`: build a hook call from a FHIR Bundle the way an EHR would, optionally sign it, send it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from cds_hooks.prefetch import TemplateUnrenderable, render_template
from plugin.fhir_search import FhirStore

ORDER_HOOKS = frozenset({"order-select", "order-sign"})
ENCOUNTER_HOOKS = frozenset({"encounter-start", "encounter-discharge"})


class FireError(Exception):
    """The hook call cannot be built from what was given; the message says what is missing."""

    exit_code = 2  # the command line's status for it: what the user gave is wrong (argparse's convention)


class ServiceError(FireError):
    """The CDS service could not be reached or did not answer as one; the message says which and why."""

    exit_code = 1


def os_reason(exc: OSError) -> str:
    """The OS's words, e.g. 'No such file or directory', without the errno and path str() adds."""
    return exc.strerror or type(exc).__name__


def read_json(path: Path, what: str) -> Any:
    """The JSON document in `path`; FireError naming the file (`what` says which option gave it) otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FireError(f"cannot read {what} {path}: {os_reason(exc)}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message gives the position only, never the text around it (which may be a chart's).
        raise FireError(f"{what} {path} is not valid JSON: {exc}") from None


def service_url(text: str, option: str = "--url") -> str:
    """An http(s) URL with a host, without its trailing slash; FireError saying which option is wrong."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        # The value is not echoed: a URL may carry a password or a token in its query.
        raise FireError(f"{option} must be an http:// or https:// URL with a host name")
    return text.rstrip("/")


def origin(url: str) -> str:
    """scheme://host:port of a URL, for messages: no user name, password, path or query."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def transport_reason(exc: httpx.HTTPError, timeout_s: float | None = None) -> str:
    """Why a request got no answer, in words ("connection refused", "timed out after 30 s")."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout_s:g} s" if timeout_s else "timed out"
    lines = str(exc).strip().splitlines()
    # "[Errno 111] Connection refused" reads as "Connection refused"
    return re.sub(r"^\[Errno -?\d+\]\s*", "", lines[0]) if lines else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Signer:
    key: ECKey | RSAKey
    alg: str
    issuer: str
    kid: str | None = None
    jku: str | None = None
    tenant: str | None = None

    @classmethod
    def from_file(cls, path: Path, issuer: str, kid: str | None = None, jku: str | None = None) -> Signer:
        raw = path.read_bytes()
        if raw.lstrip().startswith(b"{"):
            data = orjson.loads(raw)
            kid = kid or data.get("kid")
            key: ECKey | RSAKey = (
                ECKey.import_key(data) if data.get("kty") == "EC" else RSAKey.import_key(data)
            )
        else:
            try:
                key = ECKey.import_key(raw)
            except (ValueError, TypeError):
                key = RSAKey.import_key(raw)
        alg = "ES384" if isinstance(key, ECKey) else "RS384"
        return cls(key=key, alg=alg, issuer=issuer, kid=kid or key.thumbprint(), jku=jku)

    def token(self, audience: str, lifetime_s: int = 300) -> str:
        now = int(time.time())
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if self.kid:
            header["kid"] = self.kid
        if self.jku:
            header["jku"] = self.jku
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        if self.tenant:
            claims["tenant"] = self.tenant
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])


def load_bundle(path: Path, what: str = "the Bundle file") -> dict[str, Any]:
    """A FHIR Bundle from a JSON file, checked enough that loading it cannot fail half-way."""
    data = read_json(path, what)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FireError(f'{path} is not a FHIR Bundle (no "resourceType": "Bundle")')
    problem = _bundle_problem(data)
    if problem is not None:
        raise FireError(f"{path} is not a valid FHIR Bundle: {problem}")
    return data


def load_draft_orders(path: Path) -> dict[str, Any]:
    """Draft orders for the order hooks: a Bundle of them, or one resource."""
    data = read_json(path, "the --draft-orders file")
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FireError(f"{path} is not a FHIR resource or Bundle (no resourceType)")
    if data["resourceType"] == "Bundle":
        problem = _bundle_problem(data)
        if problem is not None:
            raise FireError(f"{path} is not a valid FHIR Bundle: {problem}")
    elif not isinstance(data.get("id", ""), str):
        raise FireError(f"{path}: the resource's id must be a string")
    return data


def _bundle_problem(bundle: Mapping[str, Any]) -> str | None:
    entries = bundle.get("entry")
    if entries is None:
        return None
    if not isinstance(entries, list):
        return '"entry" must be a list'
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            return f"entry {number} is not an object"
        resource = entry.get("resource")
        if resource is None:
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return f"entry {number} has a resource without a resourceType"
        if not isinstance(resource.get("id", ""), str):
            return f"entry {number}'s resource id is not a string"
    return None


def pick_patient(store: FhirStore, patient_id: str | None) -> str:
    if patient_id is not None:
        if store.read("Patient", patient_id) is None:
            raise FireError(f"no Patient/{patient_id} in the bundle")
        return patient_id
    patients = store.search("Patient", [])
    if len(patients) != 1:
        raise FireError(f"the bundle holds {len(patients)} patients; name one with --patient")
    return str(patients[0]["id"])


def build_context(
    hook: str,
    store: FhirStore,
    patient_id: str,
    user: str,
    encounter_id: str | None = None,
    draft_orders: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": user, "patientId": patient_id}
    if encounter_id is None and hook in ENCOUNTER_HOOKS:
        latest = store.search("Encounter", [("patient", patient_id), ("_sort", "-date")])
        if not latest:
            raise FireError(f"{hook} needs an encounter and the patient has none; pass --encounter")
        encounter_id = str(latest[0]["id"])
    if encounter_id is not None:
        context["encounterId"] = encounter_id
    if hook in ORDER_HOOKS:
        if draft_orders is None:
            raise FireError(f"{hook} needs draft orders; pass --draft-orders with a Bundle or a resource")
        bundle: dict[str, Any] = (
            dict(draft_orders)
            if draft_orders.get("resourceType") == "Bundle"
            else {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": dict(draft_orders)}]}
        )
        context["draftOrders"] = bundle
        if hook == "order-select":
            context["selections"] = [
                f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in bundle.get("entry") or ()
                if isinstance(e.get("resource"), dict) and "id" in e["resource"]
            ]
    return context


def build_prefetch(
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    store: FhirStore,
    base_url: str,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Run each template against the bundle, as an EHR would against its own FHIR server."""
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        if key in skip:
            continue
        try:
            rendered = render_template(template, context)
        except TemplateUnrenderable:
            continue  # an EHR leaves out keys it cannot render; the service may fetch them back
        prefetch[key] = store.query(rendered, base_url)
    return prefetch


def service_templates(client: httpx.Client, base_url: str, service_id: str, hook: str) -> dict[str, str]:
    discovery = f"{base_url.rstrip('/')}/cds-services"
    response = client.get(discovery)
    if response.status_code != 200:
        raise ServiceError(f"discovery at {origin(discovery)} answered HTTP {response.status_code}")
    try:
        services = response.json().get("services")
    except (ValueError, AttributeError):
        services = None
    if not isinstance(services, list):
        raise ServiceError(f"{origin(discovery)} did not answer /cds-services with a discovery document")
    for service in services:
        if not isinstance(service, dict):
            continue
        if service.get("id") == service_id and service.get("hook") == hook:
            return dict(service.get("prefetch") or {})
    raise FireError(f"discovery at {base_url} lists no service {service_id!r} for hook {hook!r}")


def build_request(
    hook: str,
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None,
    fhir_server: str | None,
    access_token: str | None = None,
    patient_id: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": dict(context)}
    if fhir_server:
        request["fhirServer"] = fhir_server
        if access_token:
            request["fhirAuthorization"] = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "r1cds-fire",
                **({"patient": patient_id} if patient_id else {}),
            }
    if prefetch:
        request["prefetch"] = dict(prefetch)
    return request

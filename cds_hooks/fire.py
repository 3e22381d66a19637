"""`r1cds fire`: build a hook call from a FHIR Bundle the way an EHR would, optionally sign it, send it."""

from __future__ import annotations

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


def load_bundle(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FireError(f"{path} is not a FHIR Bundle")
    return data


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
    response = client.get(f"{base_url.rstrip('/')}/cds-services")
    response.raise_for_status()
    for service in response.json().get("services", []):
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

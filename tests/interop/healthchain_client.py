"""Drives R1 CDS with HealthChain's CDS Hooks client side and prints one JSON report; run by .venv-healthchain.

HealthChain (PyPI `healthchain`, pinned in requirements/healthchain.in) is a CDS Hooks implementation nobody
here wrote. This script uses its request builders (`CdsRequestConstructor`, `SandboxClient` and its Synthea
loader) to build hook calls, and its pydantic models (`CDSServiceInformation`, `CDSResponse`, `Card`,
`CDSFeedback`) to read what R1 CDS answers. It imports nothing from this repository, so it runs in a venv that
holds HealthChain's dependencies and none of ours.

    .venv-healthchain/bin/python tests/interop/healthchain_client.py --base-url URL --fixture FILE \
        --synthea-bundle FILE [--spec-example FILE ...]

The fixture is a JSON object: `userId`, `patientId`, `draftOrders` (a Bundle) and `prefetch`, the prefetch
each discovered service asked for keyed by service id (an EHR's answers to the prefetch templates, which
HealthChain cannot compute itself). HealthChain sends no `Authorization` header, so when
R1CDS_HC_SIGNING_KEY (a PEM private key), R1CDS_HC_KEY_ID and R1CDS_HC_ISSUER are set, a fresh ES384 JWT is
signed per call with PyJWT (one of HealthChain's own dependencies): CDS Hooks 2.0 makes `aud` the URL called
and `jti` single-use, so one token cannot serve several calls. Neither key nor token is ever printed.

Exit status 0 when the report was written, whatever it says; the caller asserts on the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from healthchain.gateway.cds import CDSHooksConfig
from healthchain.models import Card, CDSFeedback, CDSRequest, CDSResponse, CDSServiceInformation
from healthchain.models.responses.cdsfeedback import OverrideReason
from healthchain.models.responses.cdsresponse import SimpleCoding
from healthchain.sandbox import SandboxClient
from healthchain.sandbox.requestconstructors import CdsRequestConstructor
from healthchain.sandbox.workflows import Workflow
from pydantic import BaseModel, ValidationError

HOOKS = ("patient-view", "order-select", "order-sign")
TIMEOUT_S = 30.0
# Members CDS Hooks 2.0 makes OPTIONAL that HealthChain's models declare `Optional[...]` without a default,
# which pydantic reads as "may be null but must be present": (container member, member HealthChain wants).
_PRESENCE_ONLY = (("links", "autoLaunchable"), ("suggestions", "isRecommended"))


class _Captured(logging.Handler):
    """Keeps HealthChain's log records in memory: SandboxClient reports HTTP errors only by logging them."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def statuses(self) -> list[int]:
        found = (re.match(r"Error response (\d{3}) ", r.getMessage()) for r in self.records)
        return [int(m.group(1)) for m in found if m]


def _quiet_healthchain() -> _Captured:
    # HealthChain logs patient names at INFO (its Synthea loader); nothing of it may reach our output.
    captured = _Captured()
    logger = logging.getLogger("healthchain")
    logger.handlers[:] = [captured]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return captured


class Signer:
    """Mints one ES384 JWT per call, as CDS Hooks 2.0 "Trusting CDS Clients" asks of an EHR."""

    def __init__(self, pem: str, kid: str, issuer: str) -> None:
        self._pem, self._kid, self._issuer = pem, kid, issuer

    @classmethod
    def from_env(cls) -> Signer | None:
        pem, kid, issuer = (
            os.environ.get(n) for n in ("R1CDS_HC_SIGNING_KEY", "R1CDS_HC_KEY_ID", "R1CDS_HC_ISSUER")
        )
        return cls(pem, kid, issuer) if pem and kid and issuer else None

    def headers(self, audience: str) -> dict[str, str]:
        now = int(time.time())
        token = jwt.encode(
            {"iss": self._issuer, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
            self._pem,
            algorithm="ES384",
            headers={"kid": self._kid, "typ": "JWT"},
        )
        return {"Authorization": f"Bearer {token}"}


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as (location, type, message), never the input values (they may be chart text)."""
    return [
        {"loc": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()
    ]


def _parse(model: type[BaseModel], data: Any) -> tuple[BaseModel | None, list[dict[str, str]]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _errors(exc)


def _with_presence_only_members(card: dict[str, Any]) -> dict[str, Any]:
    """A copy of `card` with each OPTIONAL member that HealthChain insists on written as an explicit null.

    CDS Hooks 2.0 ("Null and empty JSON elements") tells a sender to omit an OPTIONAL member that has no
    value, so R1 CDS omits them; parsing this copy shows whether anything else stops HealthChain.
    """
    copy = json.loads(json.dumps(card))
    for container, member in _PRESENCE_ONLY:
        for item in copy.get(container) or ():
            if isinstance(item, dict):
                item.setdefault(member, None)
    return copy


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def card_report(raw: dict[str, Any]) -> dict[str, Any]:
    """One card as HealthChain's `Card` reads it, and whether summary, indicator and source survive the trip."""
    parsed, errors = _parse(Card, raw)
    accommodated, accommodated_errors = (
        (parsed, errors) if parsed else _parse(Card, _with_presence_only_members(raw))
    )
    report: dict[str, Any] = {
        "uuid": raw.get("uuid"),
        "parse_errors": errors,
        "parses_with_explicit_nulls": accommodated is not None,
        "errors_with_explicit_nulls": accommodated_errors if accommodated is None else [],
    }
    if isinstance(accommodated, Card):
        source = accommodated.source
        report["parsed"] = {
            "summary": accommodated.summary,
            "indicator": _enum_value(accommodated.indicator),
            "source": {
                "label": source.label,
                "url": str(source.url) if source.url is not None else None,
                "topic": source.topic.model_dump(exclude_none=True) if source.topic else None,
            },
            "suggestions": len(accommodated.suggestions or ()),
            "links": len(accommodated.links or ()),
            "overrideReasons": [c.model_dump(exclude_none=True) for c in accommodated.overrideReasons or ()],
        }
        raw_source = raw.get("source") or {}
        report["round_trip"] = {
            "summary": accommodated.summary == raw.get("summary"),
            "indicator": _enum_value(accommodated.indicator) == raw.get("indicator"),
            "source_label": source.label == raw_source.get("label"),
            # HttpUrl gives a bare origin a trailing "/", the only rewrite it makes of an URL like ours.
            "source_url": (str(source.url).rstrip("/") if source.url is not None else None)
            == (raw_source["url"].rstrip("/") if "url" in raw_source else None),
        }
    return report


def response_report(status: int, body: Any) -> dict[str, Any]:
    report: dict[str, Any] = {"status": status}
    if not isinstance(body, dict):
        report["body_kind"] = type(body).__name__
        return report
    _, errors = _parse(CDSResponse, body)
    report["cds_response_parse_errors"] = errors
    if "cards" in body:
        report["cards"] = [card_report(c) for c in body["cards"] if isinstance(c, dict)]
    else:
        # Our OperationOutcome's own wording (it never repeats a client value), to tell refusals apart.
        report["diagnostics"] = [i.get("diagnostics") for i in body.get("issue") or () if isinstance(i, dict)]
    return report


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _wire(request: CDSRequest, subclass_fields: bool = False) -> dict[str, Any]:
    """The JSON body: as SandboxClient.send_requests dumps it, or with the hook context's own fields kept.

    CDSRequest declares `context: BaseHookContext`, and pydantic 2 serialises a field by its declared type,
    so the default dump keeps only userId and patientId of an OrderSignContext; `serialize_as_any` keeps
    the subclass's fields (draftOrders, selections, encounterId).
    """
    dumped: dict[str, Any] = request.model_dump(
        mode="json", exclude_none=True, serialize_as_any=subclass_fields
    )
    return dumped


def _sent(dumped: dict[str, Any]) -> dict[str, Any]:
    """What went on the wire, minus values: the chart stays out of the report."""
    context = dumped["context"]
    return {
        "hook": dumped["hook"],
        "hookInstance_is_uuid": _is_uuid(dumped.get("hookInstance")),
        "top_level_keys": sorted(dumped),
        "context_keys": sorted(context),
        "context_ids": {k: context[k] for k in ("userId", "patientId", "encounterId") if k in context},
        "selections": context.get("selections"),
        "draftOrders_entries": len((context.get("draftOrders") or {}).get("entry") or ()),
        "prefetch": {
            key: {"resourceType": value.get("resourceType"), "type": value.get("type")}
            for key, value in (dumped.get("prefetch") or {}).items()
            if isinstance(value, dict)
        },
    }


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class Driver:
    def __init__(self, base_url: str, fixture: dict[str, Any], signer: Signer | None) -> None:
        self.base = base_url.rstrip("/")
        self.fixture = fixture
        self.signer = signer
        self.http = httpx.Client(timeout=TIMEOUT_S)

    def post(self, url: str, payload: Any, signed: bool = True) -> httpx.Response:
        headers = self.signer.headers(url) if signed and self.signer else {}
        return self.http.post(url, json=payload, headers=headers)

    def get(self, url: str) -> httpx.Response:
        # 2.0 asks for the JWT on every call, discovery included.
        return self.http.get(url, headers=self.signer.headers(url) if self.signer else {})

    def discovery(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = self.get(f"{self.base}/cds-services")
        body = _json(response)
        parsed, errors = _parse(CDSServiceInformation, body)
        services = (
            [
                {"id": s.id, "hook": s.hook, "title": s.title, "prefetch_keys": sorted(s.prefetch or {})}
                for s in parsed.services
            ]
            if isinstance(parsed, CDSServiceInformation)
            else []
        )
        # Where a HealthChain deployment serves discovery by default, tried against our base URL.
        config = CDSHooksConfig()
        default_path = f"{config.base_path}{config.discovery_path}"
        default = self.get(f"{self.base}{default_path}")
        report = {
            "path": "/cds-services",
            "status": response.status_code,
            "parse_errors": errors,
            "services": services,
            "healthchain_default": {
                "discovery_path": default_path,
                "service_path": f"{config.base_path}{config.service_path}/{{id}}",
                "status_at_our_base": default.status_code,
            },
        }
        return report, services

    def context_for(self, hook: str) -> dict[str, Any]:
        context: dict[str, Any] = {"userId": self.fixture["userId"], "patientId": self.fixture["patientId"]}
        if hook in ("order-select", "order-sign"):
            context["draftOrders"] = self.fixture["draftOrders"]
        if hook == "order-select":
            context["selections"] = [
                f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in self.fixture["draftOrders"]["entry"]
            ]
        return context

    def hook_call(self, service_id: str, hook: str) -> dict[str, Any]:
        """A spec-shaped call built by HealthChain's CdsRequestConstructor, sent with our JWT."""
        request = CdsRequestConstructor().construct_request(
            prefetch_data=self.fixture["prefetch"].get(service_id, {}),
            workflow=Workflow(hook),
            context=self.context_for(hook),
        )
        url = f"{self.base}/cds-services/{service_id}"
        given = self.context_for(hook)
        as_built = _wire(request)
        response = self.post(url, as_built)
        report: dict[str, Any] = {"service": service_id, "sent": _sent(as_built)}
        report["context_members_dropped"] = sorted(set(given) - set(as_built["context"]))
        report.update(response_report(response.status_code, _json(response)))
        if report["context_members_dropped"]:
            full = _wire(request, subclass_fields=True)
            resent = self.post(url, full)
            report["with_subclass_fields"] = {
                "sent": _sent(full),
                "context_members_invented": sorted(set(full["context"]) - set(given)),
                **response_report(resent.status_code, _json(resent)),
            }
        return report

    def sandbox_unsigned(self, service_id: str) -> dict[str, Any]:
        """HealthChain's own sender, `SandboxClient.send_requests`, loaded with the fixture's prefetch file."""
        captured = logging.getLogger("healthchain").handlers[0]
        assert isinstance(captured, _Captured)
        captured.records.clear()
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "prefetch.json"
            path.write_text(json.dumps(self.fixture["prefetch"][service_id]), encoding="utf-8")
            client = SandboxClient(url=f"{self.base}/cds-services/{service_id}", workflow="patient-view")
            client.load_from_path(path)
            (request,) = client.requests
            returned = client.send_requests()
        sent = _sent(_wire(request))
        # The same request, now with the JWT HealthChain cannot send, shows what its default context does.
        signed = self.post(f"{self.base}/cds-services/{service_id}", _wire(request))
        return {
            "service": service_id,
            "sent": sent,
            "patientId_matches_fixture": sent["context_ids"].get("patientId") == self.fixture["patientId"],
            "send_requests_returned": returned,
            "logged_error_statuses": captured.statuses(),
            "same_request_signed": response_report(signed.status_code, _json(signed)),
        }

    def synthea_loader(self, service_id: str, bundle: Path) -> dict[str, Any]:
        """HealthChain's Synthea loader builds prefetch its own way: one collection Bundle per resource type."""
        client = SandboxClient(url=f"{self.base}/cds-services/{service_id}", workflow="patient-view")
        client.load_from_registry(
            "synthea-patient",
            data_dir=str(bundle.parent),
            patient_file=bundle.name,
            resource_types=["Patient", "Condition", "MedicationRequest", "AllergyIntolerance"],
        )
        (request,) = client.requests
        # Its context names a random patient; put the real one in, so that only the prefetch shape differs.
        fixed = request.model_copy(
            update={"context": request.context.model_copy(update={"patientId": self.fixture["patientId"]})}
        )
        body = _wire(fixed)
        response = self.post(f"{self.base}/cds-services/{service_id}", body)
        return {
            "service": service_id,
            "sent": _sent(body),
            **response_report(response.status_code, _json(response)),
        }

    def feedback(self, service_id: str, card: dict[str, Any]) -> dict[str, Any]:
        """An `overridden` outcome built with HealthChain's CDSFeedback, posted in the spec's wrapper."""
        reason = (card.get("overrideReasons") or [{}])[0]
        item = CDSFeedback(
            card=card["uuid"],
            outcome="overridden",
            outcomeTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            overriddeReason=OverrideReason(
                reason=SimpleCoding(
                    code=reason["code"], system=reason["system"], display=reason.get("display")
                )
            ),
        )
        dumped = item.model_dump(mode="json", exclude_none=True)
        response = self.post(f"{self.base}/cds-services/{service_id}/feedback", {"feedback": [dumped]})
        return {
            "service": service_id,
            "card": card["uuid"],
            "sent_keys": sorted(dumped),
            "model_fields": sorted(CDSFeedback.model_fields),
            "status": response.status_code,
        }


def spec_example_report(path: Path) -> dict[str, Any]:
    """HealthChain's CDSResponse on an example printed in the CDS Hooks specification itself."""
    body = json.loads(path.read_text(encoding="utf-8"))
    _, errors = _parse(CDSResponse, body)
    return {"file": path.name, "parse_errors": errors}


def run(args: argparse.Namespace) -> dict[str, Any]:
    _quiet_healthchain()
    fixture = json.loads(Path(args.fixture).read_text(encoding="utf-8"))
    signer = Signer.from_env()
    driver = Driver(args.base_url, fixture, signer)
    report: dict[str, Any] = {"healthchain_version": _version(), "signed": signer is not None}
    report["discovery"], services = driver.discovery()
    by_hook: dict[str, str] = {}
    for service in services:
        if service["id"] in fixture["prefetch"]:
            by_hook.setdefault(service["hook"], service["id"])
    report["hooks"] = {hook: driver.hook_call(by_hook[hook], hook) for hook in HOOKS if hook in by_hook}
    unauth_probe = driver.post(f"{driver.base}/cds-services/{by_hook['patient-view']}", {}, signed=False)
    report["unsigned_status"] = unauth_probe.status_code
    report["sandbox_client"] = driver.sandbox_unsigned(by_hook["patient-view"])
    report["synthea_loader"] = driver.synthea_loader(by_hook["patient-view"], Path(args.synthea_bundle))
    pv_cards = _json_cards(report["hooks"].get("patient-view"))
    card = next((c for c in pv_cards if c.get("uuid") and c.get("overrideReasons")), None)
    if card is not None:
        report["feedback"] = driver.feedback(by_hook["patient-view"], card)
    report["spec_examples"] = [spec_example_report(Path(p)) for p in args.spec_example]
    return report


def _json_cards(hook_report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The parsed cards of a hook report, as the dicts the feedback call needs."""
    cards = []
    for card in (hook_report or {}).get("cards", ()):
        parsed = card.get("parsed")
        if parsed:
            cards.append({"uuid": card["uuid"], "overrideReasons": parsed["overrideReasons"]})
    return cards


def _version() -> str:
    from importlib.metadata import version

    return version("healthchain")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--synthea-bundle", required=True)
    parser.add_argument("--spec-example", action="append", default=[])
    report = run(parser.parse_args())
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Loopback FHIR R4 server over a FhirStore, with switchable faults, for integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from plugin.fhir_search import (
    FhirSearchError,
    FhirStore,
    operation_outcome,
    parse_query_string,
    supported_search_parameters,
)
from tests.support.asgi_server import serve_asgi, unused_loopback_url

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"


@dataclass
class FhirFaults:
    """Misbehaviour a test can switch on while the server runs; the server reads it on every request.

    `operation_outcome_for` and `outcome_200_for` apply to reads and searches of the named types, so a
    prefetch template that reads `Patient/{{context.patientId}}` can be failed as well as a search.
    `requests` logs each request as the path below the base URL plus its decoded query, e.g.
    `MedicationRequest?patient=123&status=active`, the same shape a rendered prefetch template has.
    """

    required_bearer: str | None = None
    operation_outcome_for: set[str] = field(default_factory=set)
    outcome_200_for: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    requests: list[str] = field(default_factory=list)


class FhirJSONResponse(JSONResponse):
    media_type = FHIR_JSON


def _outcome_response(status_code: int, code: str, diagnostics: str, **headers: str) -> Response:
    return FhirJSONResponse(operation_outcome(code, diagnostics), status_code=status_code, headers=headers)


def _base_url(request: Request) -> str:
    # Built from the request so next links point wherever the client actually reached us.
    return f"{request.url.scheme}://{request.url.netloc}{FHIR_PREFIX}"


def build_fhir_app(store: FhirStore, faults: FhirFaults) -> Starlette:
    """A Starlette app serving `store` under `/fhir`: read, search with paging, and `metadata`."""

    async def admit(request: Request, resource_type: str | None) -> Response | None:
        """Log, delay and apply the configured faults; a response here answers the request instead."""
        relative_path = request.url.path.removeprefix(FHIR_PREFIX).lstrip("/")
        raw_query = request.url.query
        faults.requests.append(f"{relative_path}?{unquote(raw_query)}" if raw_query else relative_path)
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if resource_type is None:  # SMART servers publish their CapabilityStatement without a token
            return None
        expected_bearer = faults.required_bearer
        if (
            expected_bearer is not None
            and request.headers.get("authorization") != f"Bearer {expected_bearer}"
        ):
            return _outcome_response(
                401, "login", "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"}
            )
        if resource_type in faults.operation_outcome_for:
            return _outcome_response(500, "exception", f"injected failure for {resource_type}")
        if resource_type in faults.outcome_200_for:
            return FhirJSONResponse(
                operation_outcome("processing", f"injected outcome for {resource_type}", severity="warning")
            )
        return None

    async def metadata(request: Request) -> Response:
        refused = await admit(request, None)
        if refused is not None:
            return refused
        return FhirJSONResponse(_capability_statement(store))

    async def search(request: Request) -> Response:
        resource_type: str = request.path_params["resource_type"]
        refused = await admit(request, resource_type)
        if refused is not None:
            return refused
        # Parse the raw query ourselves: form decoding would turn the `+` of a timezone into a space.
        params = parse_query_string(request.url.query)
        try:
            bundle = store.search_bundle(resource_type, params, _base_url(request))
        except FhirSearchError as error:
            return _outcome_response(400, error.issue_code, str(error))
        return FhirJSONResponse(bundle)

    async def read(request: Request) -> Response:
        resource_type: str = request.path_params["resource_type"]
        resource_id: str = request.path_params["resource_id"]
        refused = await admit(request, resource_type)
        if refused is not None:
            return refused
        resource = store.read(resource_type, resource_id)
        if resource is None:
            return _outcome_response(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return FhirJSONResponse(resource)

    routes = [
        Mount(
            FHIR_PREFIX,
            routes=[
                Route("/metadata", metadata, methods=["GET"]),
                Route("/{resource_type}", search, methods=["GET"]),
                Route("/{resource_type}/{resource_id}", read, methods=["GET"]),
            ],
        )
    ]
    return Starlette(routes=routes)


def _capability_statement(store: FhirStore) -> dict[str, Any]:
    resources = [
        {
            "type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": name, "type": kind}
                for name, kind in supported_search_parameters(resource_type).items()
            ],
        }
        for resource_type in store.resource_types()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "r1-cds test FHIR server"},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "rest": [{"mode": "server", "resource": resources}],
    }


@dataclass
class FhirServerHandle:
    """A running loopback FHIR server: where to reach it and the faults to flip."""

    base_url: str
    faults: FhirFaults


@contextmanager
def running_fhir_server(store: FhirStore, faults: FhirFaults | None = None) -> Iterator[FhirServerHandle]:
    """Serve `store` on 127.0.0.1 at a free port in a background thread, stopping it on exit."""
    faults = faults if faults is not None else FhirFaults()
    with serve_asgi(lambda _url: build_fhir_app(store, faults), lifespan="off", name="fhir-server") as served:
        yield FhirServerHandle(served.url + FHIR_PREFIX, faults)


def stopped_base_url() -> str:
    """A loopback FHIR base URL on a port that was free a moment ago and has nothing listening."""
    return unused_loopback_url() + FHIR_PREFIX

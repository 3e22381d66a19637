"""CDS Hooks routes: each one line, delegating to a handler built at start-up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from cds_hooks.handlers import DiscoveryHandler, EvidenceHandler, FeedbackHandler, HookHandler
from cds_hooks.health import HealthHandler
from cds_hooks.protocol import DiscoveryResponse, FeedbackRequest, HookRequest, HookResponse


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies on its thread pool,
# which costs a thread hop per request and dominated the hook route's tail latency.
async def _discovery(request: Request) -> DiscoveryHandler:
    handler: DiscoveryHandler = request.app.state.discovery
    return handler


async def _hooks(request: Request) -> HookHandler:
    handler: HookHandler = request.app.state.hooks
    return handler


async def _feedback(request: Request) -> FeedbackHandler:
    handler: FeedbackHandler = request.app.state.feedback
    return handler


async def _evidence(request: Request) -> EvidenceHandler:
    handler: EvidenceHandler = request.app.state.evidence
    return handler


async def _health(request: Request) -> HealthHandler:
    handler: HealthHandler = request.app.state.health
    return handler


def _hook_handler(request: Request) -> HookHandler:
    # The hook route, the service's hottest, takes only the Request and reads its handler and path
    # parameter itself: FastAPI's dependency and parameter solving cost ~12% of a cached hook's CPU
    # (bench.queue [1]). Its path parameter is declared for OpenAPI by hand (SERVICE_ID_PARAMETER).
    handler: HookHandler = request.app.state.hooks
    return handler


Discovery = Annotated[DiscoveryHandler, Depends(_discovery)]
Health = Annotated[HealthHandler, Depends(_health)]
Evidence = Annotated[EvidenceHandler, Depends(_evidence)]
Hooks = Annotated[HookHandler, Depends(_hooks)]
Feedback = Annotated[FeedbackHandler, Depends(_feedback)]


def _body(model: str) -> dict[str, Any]:
    # Handlers read the raw body themselves (size limit, one pydantic-core parse), so the schema is
    # declared here for OpenAPI clients and fuzzers rather than inferred from a body parameter.
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _outcome(status: int, why: str) -> dict[str, Any]:
    return {"description": why, "content": {"application/fhir+json": {"schema": {"type": "object"}}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _outcome(400, "Malformed request or hook the service does not answer (OperationOutcome)"),
    401: {"description": "Missing or invalid EHR JWT (empty body)"},
    404: _outcome(404, "Unknown service (OperationOutcome)"),
    413: _outcome(413, "Body over the size limit (OperationOutcome)"),
    415: _outcome(415, "Body is not JSON (OperationOutcome)"),
}
SERVICE_ID_PARAMETER: dict[str, Any] = {
    "name": "service_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "title": "Service Id"},
}
WIRE_MODELS = (DiscoveryResponse, HookRequest, HookResponse, FeedbackRequest)

# The pages' icon (preview, evidence, about), inline: one small SVG needs no package file. Served at the
# path browsers ask for by themselves, with the SVG type, which every current browser draws as an icon.
FAVICON_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    b'<rect width="32" height="32" rx="7" fill="#1d4ed8"/>'
    b'<path d="M13 6h6v7h7v6h-7v7h-6v-7H6v-6h7z" fill="#fff"/></svg>'
)
FAVICON_HEADERS = {
    "Cache-Control": "public, max-age=86400",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",  # an SVG opened on its own runs nothing
}

router = APIRouter()


@router.get(
    "/cds-services",
    responses={
        200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/DiscoveryResponse"}}}}
    },
)
async def discovery(handler: Discovery) -> Response:
    return handler.handle()


@router.post(
    "/cds-services/{service_id}",
    openapi_extra={**_body("HookRequest"), "parameters": [SERVICE_ID_PARAMETER]},
    responses={
        200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/HookResponse"}}}},
        412: _outcome(412, "Required prefetch unobtainable (OperationOutcome)"),
        **ERRORS,
    },
)
async def call_service(request: Request) -> Response:
    return await _hook_handler(request).handle(request.path_params["service_id"], request)


@router.post(
    "/cds-services/{service_id}/feedback",
    openapi_extra=_body("FeedbackRequest"),
    responses={
        200: {"description": "Feedback stored (idempotent)"},
        503: _outcome(503, "Store down; retry"),
        **ERRORS,
    },
)
async def feedback(service_id: str, request: Request, handler: Feedback) -> Response:
    return await handler.handle(service_id, request)


@router.get("/evidence/{token}", response_class=Response, include_in_schema=False)
async def evidence(token: str, handler: Evidence) -> Response:
    return await handler.handle(token)


@router.get("/favicon.ico", response_class=Response, include_in_schema=False)
async def favicon() -> Response:
    return Response(FAVICON_SVG, media_type="image/svg+xml", headers=FAVICON_HEADERS)


@router.get("/healthz", response_class=Response, include_in_schema=False)
async def healthz(handler: Health) -> Response:
    return handler.live()


@router.get("/readyz", response_class=Response, include_in_schema=False)
async def readyz(handler: Health) -> Response:
    return await handler.ready()

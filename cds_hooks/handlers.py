"""Handler classes behind the CDS Hooks routes: discovery, hook calls and feedback."""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cds_hooks import render
from cds_hooks.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.protocol import DiscoveryResponse, FeedbackRequest, HookRequest
from cds_hooks.settings import Settings, TenantSettings
from plugin.cards import Coding
from plugin.feedback import FeedbackRecord, FeedbackSink
from plugin.services import HookCall, ServiceRegistry

log = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)

JSON = "application/json"


class Caller(Protocol):
    """Who is calling, as far as the prefetch and feedback code needs to know."""

    @property
    def tenant(self) -> str: ...


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None, audience: str) -> Caller: ...


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return  # sloppy clients omit it; the body parser decides
    media = content_type.split(";", 1)[0].strip().lower()
    if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"expected {JSON}, got {media or 'nothing'}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    # isascii: "²".isdigit() is true but int("²") raises.
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _malformed(exc: ValidationError, what: str) -> MalformedRequest:
    # Locations and our validator messages only: pydantic's input echo could carry PHI.
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]
    ]
    return MalformedRequest(f"invalid {what}: " + "; ".join(problems))


class DiscoveryHandler:
    def __init__(self, registry: ServiceRegistry) -> None:
        # Discovery never changes while the process runs: serialise it once.
        services = [d for service in registry for d in render.service_definitions(service.declaration)]
        self._body = DiscoveryResponse(services=services).dump()

    def handle(self) -> Response:
        return Response(self._body, media_type=JSON)


class _EdgeHandler:
    def __init__(
        self, settings: Settings, registry: ServiceRegistry, authenticator: Authenticator | None
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._authenticator = authenticator
        self._tenants = {t.name: t for t in settings.all_tenants()}
        self._base = settings.public_base

    async def _admit(
        self, request: Request, service_id: str, path: str, model: type[Body], what: str
    ) -> tuple[TenantSettings | None, Body]:
        """The checks every POST shares, cheapest refusal first: media type, caller, service, body."""
        _require_json(request)
        tenant = None
        if self._authenticator is not None:
            audience = f"{self._base}/cds-services/{service_id}{path}"
            caller = await self._authenticator.authenticate(request.headers.get("authorization"), audience)
            tenant = self._tenants.get(caller.tenant)
        self._registry.get(service_id)
        body = await _read_body(request, self._settings.max_body_bytes)
        # orjson then python-mode validation: half the cost of pydantic's own JSON parser on a 30 KB
        # prefetch, because `context` and `prefetch` values are kept as parsed rather than rebuilt.
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedRequest(f"invalid {what}: the body is not JSON") from None
        try:
            return tenant, model.model_validate(document)
        except ValidationError as exc:
            raise _malformed(exc, what) from None


class HookHandler(_EdgeHandler):
    def __init__(
        self,
        settings: Settings,
        registry: ServiceRegistry,
        authenticator: Authenticator | None,
        resolver: PrefetchResolver,
    ) -> None:
        super().__init__(settings, registry, authenticator)
        self._resolver = resolver

    async def handle(self, service_id: str, request: Request) -> Response:
        tenant, hook_request = await self._admit(request, service_id, "", HookRequest, "hook request")
        service = self._registry.for_hook(service_id, hook_request.hook)
        resolved = await self._resolver.resolve(service.declaration, hook_request, tenant)
        call = HookCall(
            service_id=service_id,
            hook=hook_request.hook,
            hook_instance=hook_request.hook_instance,
            context=hook_request.context,
            prefetch=resolved.values,
            prefetch_issues=resolved.issues,
            fhir_server=hook_request.fhir_server,
            tenant=tenant.name if tenant else None,
        )
        result = service.evaluate(call)
        return Response(render.response(result).dump(), media_type=JSON)


class FeedbackHandler(_EdgeHandler):
    def __init__(
        self,
        settings: Settings,
        registry: ServiceRegistry,
        authenticator: Authenticator | None,
        sink: FeedbackSink,
    ) -> None:
        super().__init__(settings, registry, authenticator)
        self._sink = sink

    async def handle(self, service_id: str, request: Request) -> Response:
        tenant, feedback = await self._admit(request, service_id, "/feedback", FeedbackRequest, "feedback")
        records = tuple(
            FeedbackRecord(
                service_id=service_id,
                card_uuid=item.card,
                outcome=item.outcome,
                outcome_timestamp=item.outcome_timestamp,
                accepted_suggestions=tuple(s.id for s in item.accepted_suggestions or ()),
                override_reason=(
                    Coding(code=reason.code, system=reason.system, display=reason.display)
                    if item.override_reason and (reason := item.override_reason.reason)
                    else None
                ),
                user_comment=item.override_reason.user_comment if item.override_reason else None,
                tenant=tenant.name if tenant else None,
            )
            for item in feedback.feedback
        )
        await self._sink.record(records)
        return Response(status_code=200)

"""Handler classes behind the CDS Hooks routes: discovery, hook calls and feedback."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Final, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cds_hooks import render
from cds_hooks.answer_cache import AnswerCache
from cds_hooks.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.protocol import DiscoveryResponse, FeedbackRequest, HookRequest
from cds_hooks.settings import Settings, TenantSettings
from plugin.ai_review import BrokerUnavailable, ReviewBroker, ReviewStatus
from plugin.cards import Coding
from plugin.feedback import FeedbackRecord, FeedbackSink
from plugin.services import HookCall, ServiceRegistry

log = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)

JSON = "application/json"
HTML: Final = "text/html; charset=utf-8"
ANSWER_MARGIN_S: Final = 0.05  # kept back from the sync budget to render and send the answer


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
    def __init__(self, registry: ServiceRegistry, about_url: str | None = None) -> None:
        # Discovery never changes while the process runs: serialise it once.
        services = [
            d for service in registry for d in render.service_definitions(service.declaration, about_url)
        ]
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
        sync_budget_s: float = 2.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, registry, authenticator)
        self._resolver = resolver
        self._budget_s = sync_budget_s
        self._clock = clock
        self._about_url = f"{settings.public_base}/about"
        self._answers = (
            AnswerCache(settings.answer_cache_size, settings.answer_cache_ttl_s)
            if settings.answer_cache_size > 0
            else None
        )

    async def handle(self, service_id: str, request: Request) -> Response:
        started = self._clock()
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
        key = self._answers.key(call) if self._answers is not None else None
        if key is not None and self._answers is not None and (cached := self._answers.get(key)) is not None:
            return Response(cached, media_type=JSON)
        answer = getattr(service, "answer", None)
        if answer is None:
            result = service.evaluate(call)
        else:
            # What is left of the budget, less a margin for rendering and writing the answer.
            wait_s = self._budget_s - (self._clock() - started) - ANSWER_MARGIN_S
            result = await answer(call, max(0.0, wait_s))
        # Every card's source opens the model card; the knowledge-base sources stay in its links and detail.
        body = render.response(result, self._about_url).dump()
        if key is not None and self._answers is not None and result.final:
            self._answers.put(key, body)
        return Response(body, media_type=JSON)


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


class EvidenceHandler:
    """The review status page a pending card links to: the state of one review, refreshed while pending.

    The id in the URL is the unguessable review id the broker issued. The page shows the state and the
    governed decision's counts only; the full evidence (inputs, citations, rationale) is the audit work's.
    """

    REFRESH_S: Final = 5

    def __init__(self, broker: ReviewBroker | None) -> None:
        self._broker = broker

    async def handle(self, review_id: str) -> Response:
        status: ReviewStatus | None = None
        if self._broker is not None and 8 <= len(review_id) <= 64:
            try:
                status = await self._broker.status(review_id)
            except BrokerUnavailable:
                return _page(
                    "Review status unavailable", "The review store cannot be reached; try again shortly.", 503
                )
        if status is None:
            return _page("Review not found", "This review is unknown or has expired.", 404)
        if status.state in ("pending", "busy"):
            return _page(
                "AI review in progress",
                "The AI review of this chart is running. This page refreshes until the result lands.",
                200,
                refresh=self.REFRESH_S,
            )
        outcome = status.outcome
        if status.state == "failed" or outcome is None or outcome.decision is None:
            return _page(
                "AI review unavailable",
                "The model could not complete this review. The rule cards are unaffected.",
                200,
            )
        decision = outcome.decision
        if decision.abstained:
            text = f"The review abstained ({decision.abstain_reason}): no AI suggestion is shown."
        else:
            text = (
                f"{len(decision.accepted)} suggestion(s) passed governance and "
                f"{len(decision.rejected)} were rejected. Reopen the chart or order to see the cards."
            )
        return _page("AI review complete", text, 200)


def _page(title: str, text: str, status: int, refresh: int | None = None) -> Response:
    # Plain server-rendered HTML with no external assets: it must work in an EHR's embedded browser.
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f"<title>{html.escape(title)} - R1 CDS</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return Response(body, status_code=status, media_type=HTML, headers=headers)

"""Handler classes behind the CDS Hooks routes: discovery, hook calls and feedback, and their audit trail.

Audit (DESIGN §2.8). Every hook call answered 200 appends one `HookCallRecord`, a call answered from the
answer cache included (with the outcome, fingerprint and card uuids of the answer it was served); every
feedback item the feedback sink newly stored appends one `CardFeedbackRecord` (a retried item is not
stored twice, so it is not audited twice). A rule card left out of an answer because it was overridden
(plugin.suppression) is named in the call's record (`suppressed`). A parsed hook call refused after it named its
service (a prefetch that cannot be obtained, another patient's data: 412) is recorded with its status and
outcome "error"; a request refused before that (malformed, unauthenticated, unknown service) is not, since it
may not even name a service or hook instance.

`AuditTrail` keeps the writes off the answer: a handler hands it a function that builds the record, and
returns. One task builds and writes the records in submission order, in batches (see AuditTrail).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cds_hooks import evidence_page, metrics, render
from cds_hooks.answer_cache import AnswerCache
from cds_hooks.errors import (
    CdsHooksError,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    from_plugin_error,
)
from cds_hooks.health import CheckState
from cds_hooks.patient_check import check_patient
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.protocol import Coding as WireCoding
from cds_hooks.protocol import DiscoveryResponse, FeedbackRequest, HookRequest
from cds_hooks.settings import Settings, TenantSettings
from plugin.ai_review import BrokerUnavailable, Evidence, ReviewBroker
from plugin.audit import (
    AuditRecord,
    AuditSink,
    CardFeedbackRecord,
    HookCallRecord,
    HookOutcome,
    card_kind,
    feedback_audit_record,
    timestamp_text,
)
from plugin.cards import Coding, ServiceResult
from plugin.errors import PluginError
from plugin.feedback import FeedbackRecord, FeedbackSink
from plugin.knowledge import KnowledgeBase
from plugin.services import HookCall, ServiceRegistry
from plugin.suppression import OverrideSuppression

log = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)

JSON = "application/json"
HTML: Final = "text/html; charset=utf-8"
CLINICIAN_REFERENCE: Final = re.compile(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}")
# The share of the sync budget kept back to render and send the answer (0.25 s of 2.5 s): when many calls
# reach their deadline at once they are answered one after another (50 at once: ~0.2 s, bench.cold_load).
ANSWER_MARGIN_SHARE: Final = 0.1
# A call carrying more resources than this is "large": large calls share at most half the hook threads.
LARGE_CALL_RESOURCES: Final = 250
T = TypeVar("T")
# The AI review's state, as the service saw it (ServiceResult.ai_state), as the audit trail names it.
AI_OUTCOMES: Final[Mapping[str, HookOutcome]] = {
    "ready": "ai-ready",
    "pending": "ai-pending",
    "busy": "ai-pending",
    "failed": "ai-unavailable",
    "unreachable": "ai-unavailable",
}


def hook_outcome(result: ServiceResult) -> HookOutcome:
    """The audit outcome of an answer: rules only, or the state of the AI review it carries."""
    if result.ai_state is None:
        return "rules-only"
    return AI_OUTCOMES.get(result.ai_state, "ai-unavailable")


@runtime_checkable
class BatchAuditWriter(Protocol):
    """A store that appends several records in one transaction (workers.audit_store.AuditStore)."""

    def write_many(self, batch: Sequence[AuditRecord]) -> object: ...


@runtime_checkable
class DocumentAuditWriter(Protocol):
    """A sink that takes records as JSON-shaped fields and validates them elsewhere (the audit relay:
    the workers validate and canonicalise, off the API's event loop)."""

    async def append_documents(self, documents: Sequence[Mapping[str, Any]]) -> None: ...


class AuditTrail:
    """Audit records written after the answer, never in its way, in the order they were submitted.

    `submit` takes a function that builds the record and returns at once: it never waits and never
    raises. One task (started by `async with`) drains the backlog, a few milliseconds' worth at a time (up
    to BATCH), and writes it together: with the sink's `append_documents` when it has one (the Redis relay
    the composition root uses whenever workers run: one round trip; hook-call facts go unbuilt and the
    workers validate them and write the chain), else it builds the records and uses `write_many` on a
    thread (one transaction, one write lock, one commit for the batch), else `append` by `append`. The
    hook path submits HookCallFacts, which build their record on demand. A task per call,
    each its own transaction (~0.5 ms on SQLite with synchronous=FULL), measured 0.26x the floor in
    `bench.queue --only hook` with its pending tasks growing without bound; batched SQL on a thread, 0.42x
    (0.56x with no audit), falling behind at saturation; handed to the Redis relay, 0.45x with nothing
    dropped; relayed as unbuilt facts, gathered for 5 ms, with the workers' writes on the driver's cursor,
    0.53x (the workers share this 2-core machine's CPUs with the API).

    A store that is down, or a record that cannot be built, costs those records and never an answer: a
    warning names the exception class and the exact count, never a record's content. So does a full
    backlog (MAX_BACKLOG records), which drops new records until the writer catches up (counted as they
    fall, logged once per write with their number). Every record given up on is counted, one per record,
    in `dropped` and in the `r1cds_audit_records_lost_total` metric by cause (backlog, build, write).
    `state()` is the trail's side of the "audit" readiness check: down while the last write failed (until
    one succeeds), busy when the backlog dropped records within the last LOSS_WINDOW_S, else ok. On exit
    what is waiting is written, for up to `flush_s`.
    """

    BATCH: Final = 500
    MAX_BACKLOG: Final = 20_000
    FLUSH_S: Final = 10.0
    COALESCE_S: Final = 0.005
    LOSS_WINDOW_S: Final = 60.0
    LOG_INTERVAL_S: Final = 10.0

    def __init__(
        self,
        sink: AuditSink,
        max_backlog: int = MAX_BACKLOG,
        flush_s: float = FLUSH_S,
        coalesce_s: float = COALESCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._flush_s = flush_s
        self._coalesce_s = coalesce_s
        self._append_documents = sink.append_documents if isinstance(sink, DocumentAuditWriter) else None
        self._write_many = sink.write_many if isinstance(sink, BatchAuditWriter) else None
        self._queue: asyncio.Queue[Callable[[], AuditRecord]] = asyncio.Queue(max_backlog)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # records lost to a full backlog, a failed build or a failed write
        self._unlogged: dict[str, int] = {}  # records lost since the last log line, by why
        self._logged_at: float | None = None
        self._backlog_lost_at: float | None = None
        self._write_failing = False

    def submit(self, build: Callable[[], AuditRecord]) -> None:
        try:
            self._queue.put_nowait(build)
        except asyncio.QueueFull:
            # Counted now, logged by the writer with the others dropped meanwhile (no line per call).
            self.dropped += 1
            self._unlogged["backlog full"] = self._unlogged.get("backlog full", 0) + 1
            self._backlog_lost_at = self._clock()
            metrics.count_audit_lost("backlog", 1)

    def state(self) -> CheckState:
        """down while the last write failed; busy when the backlog dropped records lately; else ok."""
        if self._write_failing:
            return "down"
        lost_at = self._backlog_lost_at
        if lost_at is not None and self._clock() - lost_at < self.LOSS_WINDOW_S:
            return "busy"
        return "ok"

    async def flush(self) -> None:
        """Wait until every record submitted so far was written (or given up)."""
        await self._queue.join()

    async def __aenter__(self) -> AuditTrail:
        self._task = asyncio.create_task(self._drain(), name="r1cds-audit-trail")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self._flush_s)
        except TimeoutError:
            log.warning("audit trail: %d record(s) still waiting at shutdown", self._queue.qsize())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._log_losses(force=True)

    async def _drain(self) -> None:
        while True:
            builds = [await self._queue.get()]
            if self._coalesce_s > 0:
                # A few milliseconds' wait gathers a busy API's records into one write: each write
                # (a Redis round trip, or a transaction) costs far more than the records in it.
                await asyncio.sleep(self._coalesce_s)
            while len(builds) < self.BATCH and not self._queue.empty():
                builds.append(self._queue.get_nowait())
            try:
                await self._write(builds)
            finally:
                self._log_losses()
                for _ in builds:
                    self._queue.task_done()

    async def _write(self, builds: list[Callable[[], AuditRecord]]) -> None:
        if self._append_documents is not None:
            await self._hand_off(builds, self._append_documents)
            return
        batch: list[AuditRecord] = []
        for build in builds:
            try:
                batch.append(build())
            except Exception as exc:  # a record our code could not build: that record only
                self._lost(1, type(exc).__name__, "build")
        if not batch:
            return
        written = 0
        try:
            if self._write_many is not None:
                await asyncio.to_thread(self._write_many, batch)  # all or none
            else:
                for record in batch:
                    await self._sink.append(record)
                    written += 1
        except Exception as exc:
            self._lost(len(batch) - written, type(exc).__name__, "write")
            return
        self._write_failing = False

    async def _hand_off(
        self,
        builds: list[Callable[[], AuditRecord]],
        append: Callable[[Sequence[Mapping[str, Any]]], Awaitable[None]],
    ) -> None:
        # Hook-call facts go as plain fields (validated by the workers); anything else is built here.
        documents: list[Mapping[str, Any]] = []
        for build in builds:
            try:
                documents.append(
                    build.document() if isinstance(build, HookCallFacts) else build().model_dump(mode="json")
                )
            except Exception as exc:
                self._lost(1, type(exc).__name__, "build")
        if not documents:
            return
        try:
            await append(documents)
        except Exception as exc:
            self._lost(len(documents), type(exc).__name__, "write")
            return
        self._write_failing = False

    def _lost(self, count: int, why: str, cause: str) -> None:
        """`count` records given up on: counted exactly now, logged with their number by `_log_losses`."""
        if count <= 0:
            return
        self.dropped += count
        if cause == "write":
            self._write_failing = True
        self._unlogged[why] = self._unlogged.get(why, 0) + count
        metrics.count_audit_lost(cause, count)

    def _log_losses(self, *, force: bool = False) -> None:
        # The first loss at once, then at most one line per LOG_INTERVAL_S with every record lost since,
        # by reason (a store that is down must not flood the log while hooks go on), and the rest on exit.
        if not self._unlogged:
            return
        now = self._clock()
        if not force and self._logged_at is not None and now - self._logged_at < self.LOG_INTERVAL_S:
            return
        self._logged_at = now
        unlogged, self._unlogged = self._unlogged, {}
        for why, count in sorted(unlogged.items()):
            log.warning("audit trail: %d record(s) not stored (%s); %d so far", count, why, self.dropped)


@dataclass(frozen=True, slots=True)
class HookCallFacts:
    """What the audit record of one hook call is built from, after the answer: ids, codes and timings."""

    at: datetime
    hook_instance: str
    service_id: str
    hook: str
    tenant: str | None
    user: str | None
    timings_s: Mapping[str, float]
    http_status: int
    outcome: HookOutcome
    fingerprint: str | None = None
    card_uuids: tuple[str, ...] = ()
    card_kinds: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()  # rule cards left out after an override (plugin.suppression)

    def __call__(self) -> HookCallRecord:
        return self.record()

    def document(self) -> dict[str, Any]:
        """The record's fields as JSON, unvalidated: the audit relay's workers validate them."""
        return {
            "kind": "hook-call",
            "v": 1,
            "at": timestamp_text(self.at),
            "hook_instance": self.hook_instance,
            "service_id": self.service_id,
            "hook": self.hook,
            "tenant": self.tenant,
            "fingerprint": self.fingerprint,
            "timings_ms": {name: max(0.0, s) * 1000.0 for name, s in self.timings_s.items()},
            "http_status": self.http_status,
            "outcome": self.outcome,
            "card_uuids": list(self.card_uuids),
            "card_kinds": list(self.card_kinds),
            "suppressed": list(self.suppressed),
            "user": self.user,
        }

    def record(self) -> HookCallRecord:
        return HookCallRecord.model_validate(self.document())


@dataclass(frozen=True, slots=True)
class _Answer:
    """A final answer as the answer cache keeps it: the body served, and what its audit record says.

    The result is kept too: an override after the answer was cached must still hide its card from the
    next identical call, so suppression is applied to every answer served, cached or not.
    """

    result: ServiceResult
    body: bytes
    outcome: HookOutcome
    fingerprint: str | None
    card_uuids: tuple[str, ...]
    card_kinds: tuple[str, ...]
    suppressed: tuple[str, ...] = ()


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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass `limit` bytes."""
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


def count_resources(document: object) -> int:
    """Resources a hook request carries, from its parsed JSON: each prefetch value's Bundle entries (or
    1 for a resource), plus the entries of `context.draftOrders`. Anything malformed counts as nothing
    here; the request's validation refuses it next."""
    if not isinstance(document, dict):
        return 0
    total = 0
    prefetch = document.get("prefetch")
    if isinstance(prefetch, dict):
        total += sum(_resources_in(value) for value in prefetch.values())
    context = document.get("context")
    if isinstance(context, dict):
        total += _resources_in(context.get("draftOrders"))
    return total


def _resources_in(value: object) -> int:
    if not isinstance(value, Mapping):
        return 0
    entries = value.get("entry")
    if value.get("resourceType") == "Bundle":
        return len(entries) if isinstance(entries, list) else 0
    return 1


def _over_resource_cap(limit: int) -> PayloadTooLarge:
    # The limit only: never the count or anything else the client sent.
    return PayloadTooLarge(
        f"hook call over the {limit}-resource limit (R1CDS_MAX_RESOURCES_PER_CALL: prefetch entries "
        "plus context.draftOrders entries)"
    )


class HookThreads:
    """Where a hook call's CPU-heavy steps run: worker threads, off the event loop, a bounded number.

    The context build, the rules and the card rendering of one call are synchronous Python; on the event
    loop a call of thousands of resources held every other call (and /healthz) for seconds. On a thread
    the loop goes on answering while it runs (the GIL is handed over every few milliseconds). `threads`
    calls run at once; a large call (over LARGE_CALL_RESOURCES resources) also takes one of `large`
    slots (half the threads, at least one), so large calls alone can never hold every thread.
    """

    def __init__(self, threads: int) -> None:
        self.threads = anyio.CapacityLimiter(threads)
        self.large = anyio.CapacityLimiter(max(1, threads // 2))

    async def run(self, work: Callable[[], T], *, large: bool = False) -> T:
        if not large:
            return await anyio.to_thread.run_sync(work, limiter=self.threads)
        async with self.large:
            return await anyio.to_thread.run_sync(work, limiter=self.threads)


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
        self,
        request: Request,
        service_id: str,
        path: str,
        model: type[Body],
        what: str,
        inspect: Callable[[object], None] | None = None,
    ) -> tuple[TenantSettings | None, Body]:
        """The checks every POST shares, cheapest refusal first: media type, caller, service, body."""
        _require_json(request)
        tenant = None
        if self._authenticator is not None:
            audience = f"{self._base}/cds-services/{service_id}{path}"
            caller = await self._authenticator.authenticate(request.headers.get("authorization"), audience)
            tenant = self._tenants.get(caller.tenant)
        self._registry.get(service_id)
        body = await read_body(request, self._settings.max_body_bytes)
        # orjson then python-mode validation: half the cost of pydantic's own JSON parser on a 30 KB
        # prefetch, because `context` and `prefetch` values are kept as parsed rather than rebuilt.
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedRequest(f"invalid {what}: the body is not JSON") from None
        if inspect is not None:
            inspect(document)  # before any work beyond the JSON parse (the resource cap)
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
        audit: AuditTrail | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        suppression: OverrideSuppression | None = None,
        threads: HookThreads | None = None,
    ) -> None:
        super().__init__(settings, registry, authenticator)
        self._threads = threads or HookThreads(settings.hook_threads)
        self._max_resources = settings.max_resources_per_call
        self._resolver = resolver
        self._suppression = suppression
        self._budget_s = sync_budget_s
        self._clock = clock
        self._audit = audit
        self._now = now
        self._about_url = f"{settings.public_base}/about"
        self._answers: AnswerCache[_Answer] | None = (
            AnswerCache(settings.answer_cache_size, settings.answer_cache_ttl_s)
            if settings.answer_cache_size > 0
            else None
        )

    async def handle(self, service_id: str, request: Request) -> Response:
        started = self._clock()
        received = self._now()
        counted = 0

        def cap(document: object) -> None:
            nonlocal counted
            counted = count_resources(document)
            if counted > self._max_resources:
                raise _over_resource_cap(self._max_resources)

        tenant, hook_request = await self._admit(
            request, service_id, "", HookRequest, "hook request", inspect=cap
        )
        try:
            service = self._registry.for_hook(service_id, hook_request.hook)
            admitted = self._clock()
            resolved = await self._resolver.resolve(service.declaration, hook_request, tenant)
            # Every resource used must be the context's patient's: 412, audited below, before any rule runs.
            check_patient(hook_request.context, hook_request.prefetch, resolved.values)
            # Fetch-back may have added resources: the cap holds for what the rules will read.
            counted = count_resources({"prefetch": resolved.values, "context": hook_request.context})
            if counted > self._max_resources:
                raise _over_resource_cap(self._max_resources)
        except (CdsHooksError, PluginError) as exc:
            # An authenticated, well-formed call that could not be answered (a hook the service does not
            # take, prefetch that cannot be had) is part of the trail; the error mapping answers it.
            mapped = exc if isinstance(exc, CdsHooksError) else from_plugin_error(exc)
            status = mapped.status_code
            self._record_refusal(service_id, hook_request, tenant, received, status, started)
            raise
        prefetched = self._clock()
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
            metrics.count_answer_cache(hit=True)
            served = await self._suppress(call, cached)
            self._record(call, received, served, {"prefetch": prefetched - admitted}, started)
            return Response(served.body, media_type=JSON)
        if key is not None:
            metrics.count_answer_cache(hit=False)
        answer = getattr(service, "answer", None)
        large = counted > LARGE_CALL_RESOURCES

        async def offload(work: Callable[[], T]) -> T:
            return await self._threads.run(work, large=large)

        asked = self._clock()
        if answer is None:
            result = await offload(lambda: service.evaluate(call))
        else:
            # What is left of the budget, less a margin for rendering and writing the answer. The service
            # builds the context and runs the rules through `offload`, off the event loop.
            wait_s = self._budget_s * (1.0 - ANSWER_MARGIN_SHARE) - (asked - started)
            result = await answer(call, max(0.0, wait_s), offload=offload)
        answered = self._clock()
        issued = await offload(lambda: self._issue(result))
        if key is not None and self._answers is not None and result.final:
            # Cached before suppression: whether a card is suppressed is decided anew at every call.
            self._answers.put(key, issued)
        served = await self._suppress(call, issued)
        # "service": the rules, plus the wait for the AI review when one applies.
        self._record(
            call,
            received,
            served,
            {"prefetch": prefetched - admitted, "service": answered - asked},
            started,
        )
        return Response(served.body, media_type=JSON)

    def _issue(self, result: ServiceResult, suppressed: tuple[str, ...] = ()) -> _Answer:
        # Every card's source opens the model card; the knowledge-base sources stay in its links and detail.
        wire = render.response(result, self._about_url)
        issued_cards = [card for card in wire.cards if card.uuid]
        return _Answer(
            result,
            wire.dump(),
            hook_outcome(result),
            result.fingerprint,
            tuple(card.uuid for card in issued_cards if card.uuid),
            tuple(_card_kind(card.source.topic) for card in issued_cards),
            suppressed,
        )

    async def _suppress(self, call: HookCall, answer: _Answer) -> _Answer:
        """The answer less the rule cards suppressed after an override, rendered again only when any is."""
        if self._suppression is None:
            return answer
        shown, suppressed = await self._suppression.apply(call.tenant, answer.result.cards)
        if not suppressed:
            return answer
        return await self._threads.run(lambda: self._issue(replace(answer.result, cards=shown), suppressed))

    def _record_refusal(
        self,
        service_id: str,
        hook_request: HookRequest,
        tenant: TenantSettings | None,
        received: datetime,
        status: int,
        started: float,
    ) -> None:
        total_s = self._clock() - started
        metrics.observe_hook(service_id, hook_request.hook, "error", total_s)
        self._submit(
            HookCallFacts(
                at=received,
                hook_instance=hook_request.hook_instance,
                service_id=service_id,
                hook=hook_request.hook,
                tenant=tenant.name if tenant else None,
                user=_clinician(hook_request.context.get("userId")),
                timings_s={"total": total_s},
                http_status=status,
                outcome="error",
            )
        )

    def _record(
        self,
        call: HookCall,
        received: datetime,
        answer: _Answer,
        phases_s: Mapping[str, float],
        started: float,
    ) -> None:
        """Count the call (cds_hooks.metrics) and submit its audit record, built and written after the answer."""
        total_s = self._clock() - started
        metrics.observe_hook(call.service_id, call.hook, answer.outcome, total_s)
        self._submit(
            HookCallFacts(
                at=received,
                hook_instance=call.hook_instance,
                service_id=call.service_id,
                hook=call.hook,
                tenant=call.tenant,
                user=_clinician(call.context.get("userId")),
                timings_s={"total": total_s, **phases_s},
                http_status=200,
                outcome=answer.outcome,
                fingerprint=answer.fingerprint,
                card_uuids=answer.card_uuids,
                card_kinds=answer.card_kinds,
                suppressed=answer.suppressed,
            )
        )

    def _submit(self, facts: HookCallFacts) -> None:
        # Ids only: the closure waits in the backlog, where the call and the answer (prefetch, body) must not.
        if self._audit is not None:
            self._audit.submit(facts)


class FeedbackHandler(_EdgeHandler):
    def __init__(
        self,
        settings: Settings,
        registry: ServiceRegistry,
        authenticator: Authenticator | None,
        sink: FeedbackSink,
        audit: AuditTrail | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        suppression: OverrideSuppression | None = None,
    ) -> None:
        super().__init__(settings, registry, authenticator)
        self._sink = sink
        self._audit = audit
        self._now = now
        self._suppression = suppression

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
        received = self._now()
        # One item at a time, so that only what the sink newly stored is audited: an EHR's retry of the
        # same feedback is stored once (FeedbackRecord.identity) and so audited once.
        for record in records:
            if await self._sink.record((record,)):
                metrics.count_feedback(service_id, record.outcome)
                if self._audit is not None:
                    self._audit.submit(_feedback_builder(record, received))
            # After the feedback is stored (a sink failure is a 503 and the EHR retries), and for a retry
            # too: the store keeps the first period, and a retry repairs a suppression a store error lost.
            if self._suppression is not None:
                await self._suppression.record(record)
        return Response(status_code=200)


def _feedback_builder(item: FeedbackRecord, received: datetime) -> Callable[[], CardFeedbackRecord]:
    return lambda: feedback_audit_record(item, at=received)


def _card_kind(topic: WireCoding | None) -> str:
    """What issued a card (plugin.audit.card_kind): feedback is joined on it, status cards are not counted."""
    return card_kind(topic.system, topic.code) if topic is not None else card_kind(None, None)


def _clinician(user_id: object) -> str | None:
    # A patient-facing app sends Patient/... as userId: that is the patient's id and is not recorded.
    if isinstance(user_id, str) and user_id.startswith(("Practitioner/", "PractitionerRole/")):
        return user_id if CLINICIAN_REFERENCE.fullmatch(user_id) else None
    return None


class EvidenceHandler:
    """The evidence page an AI card (or the pending card) links to; see cds_hooks.evidence_page.

    The token in the URL is the unguessable one the broker issued for one hook call; it expires with the
    review's result.
    """

    def __init__(self, broker: ReviewBroker | None, knowledge: KnowledgeBase) -> None:
        self._broker = broker
        self._knowledge = knowledge

    async def handle(self, token: str) -> Response:
        evidence: Evidence | None = None
        if self._broker is not None and 8 <= len(token) <= 64:
            try:
                evidence = await self._broker.evidence(token)
            except BrokerUnavailable:
                text = "The review store cannot be reached; try again shortly."
                return _page(evidence_page.render_message("Review evidence unavailable", text), 503)
        if evidence is None:
            text = "This review is unknown or has expired."
            return _page(evidence_page.render_message("Review not found", text), 404)
        return _page(evidence_page.render_evidence(evidence, self._knowledge), 200)


def _page(body: str, status: int) -> Response:
    return Response(body, status_code=status, media_type=HTML, headers=evidence_page.HEADERS)

"""The ASGI application factory: settings in, a wired FastAPI app out; clients live in the lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.middleware.cors import CORSMiddleware

from cds_hooks.about import router as about_router
from cds_hooks.auth import EhrAuthenticator
from cds_hooks.errors import install_error_handlers
from cds_hooks.feedback_store import RedisFeedbackSink
from cds_hooks.fhir_guard import fhir_client
from cds_hooks.handlers import (
    AuditTrail,
    Authenticator,
    DiscoveryHandler,
    EvidenceHandler,
    FeedbackHandler,
    HookHandler,
)
from cds_hooks.health import HealthHandler, ReadinessCheck, audited_readiness
from cds_hooks.logs import quiet_url_loggers
from cds_hooks.metrics import CollectExtra
from cds_hooks.metrics import router as metrics_router
from cds_hooks.prefetch import PrefetchResolver
from cds_hooks.preview import PreviewKey, enable_preview, install_preview
from cds_hooks.replay import MemoryReplayStore, RedisReplayStore
from cds_hooks.routes import WIRE_MODELS, router
from cds_hooks.settings import Settings, load_settings
from cds_hooks.suppression_store import RedisSuppressionStore
from plugin.ai_review import ReviewBroker
from plugin.audit import AuditSink
from plugin.catalog import shipped_registry
from plugin.context.build import ContextOptions
from plugin.feedback import FeedbackSink
from plugin.knowledge import load_knowledge_base
from plugin.services import ServiceRegistry
from plugin.suppression import OverrideSuppression, SuppressionStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    registry: ServiceRegistry | None = None,
    *,
    http: httpx.AsyncClient | None = None,
    redis: aioredis.Redis | None = None,
    feedback_sink: FeedbackSink | None = None,
    review_broker: ReviewBroker | None = None,
    resources: Sequence[AbstractAsyncContextManager[object]] = (),
    sync_budget_s: float = 2.5,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    audit: AuditSink | None = None,
    collect_extra: CollectExtra | None = None,
    suppression_store: SuppressionStore | None = None,
) -> FastAPI:
    """Build the app. Anything not injected is created in the lifespan from the settings.

    The AI review path arrives assembled by the composition root (cds_hooks.cli): the registry's services
    carry it, `review_broker` serves the review status pages, and `resources` (its notification listener
    and clients) are entered for the app's lifetime. `readiness` adds named probes to /readyz (Redis is
    always one). `audit` receives the audit trail of hook calls and feedback (cds_hooks.handlers.AuditTrail
    writes to it after each answer); None writes none. The composition root owns it (opens, closes it).
    `collect_extra` adds gauges read at scrape time (queue depth, in-flight model requests) to /metrics,
    which serves the metrics directory the composition root enabled (cds_hooks.metrics).
    `suppression_store` keeps override suppressions (plugin.suppression; Redis unless injected); none are
    kept or applied when R1CDS_OVERRIDE_SUPPRESSION_HOURS is 0.
    """
    settings = settings or load_settings()
    quiet_url_loggers()  # also when embedded in a process that configured logging its own way
    # The preview's key becomes a tenant only here, only when enabled: off, nothing it signs is trusted.
    preview_key: PreviewKey | None = None
    if settings.preview_enabled:
        settings, preview_key = enable_preview(settings)
    registry = registry or shipped_registry(
        context_options=ContextOptions(include_free_text=settings.context_include_free_text)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for resource in resources:
                await stack.enter_async_context(resource)
            client = http
            fetch_client = http
            if client is None:
                client = await stack.enter_async_context(
                    httpx.AsyncClient(
                        follow_redirects=False,
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                        headers={"User-Agent": "r1-cds"},
                    )
                )
            if fetch_client is None:
                # Fetch-back goes where the hook call says: its own client vets every address it
                # connects to (cds_hooks.fhir_guard). JWKS URLs are the operator's, exactly allowlisted.
                fetch_client = await stack.enter_async_context(
                    fhir_client(settings.fhir_allow_private_networks)
                )
            store = redis
            if store is None:
                # No client-side retries: on the hook path a Redis outage must cost one short timeout,
                # after which callers degrade (memory replay store, 503 for feedback).
                store = aioredis.Redis.from_url(
                    settings.redis_url,
                    socket_timeout=settings.redis_timeout_s,
                    socket_connect_timeout=settings.redis_timeout_s,
                    retry=Retry(NoBackoff(), 0),
                )
                stack.push_async_callback(store.aclose)
            # Entered after the resources, so left before them: what is queued is written before they close.
            trail = await stack.enter_async_context(AuditTrail(audit)) if audit is not None else None
            app.state.audit_trail = trail
            authenticator: Authenticator | None = None
            if settings.auth_disabled:
                log.warning("EHR authentication is DISABLED (R1CDS_AUTH_DISABLED): any caller is trusted")
            else:
                replay = RedisReplayStore(store, fallback=MemoryReplayStore())
                authenticator = EhrAuthenticator(settings, client, replay)
                if not settings.all_tenants():
                    log.warning("no EHR tenants configured: every hook call will be refused with 401")
            app.state.discovery = DiscoveryHandler(registry, f"{settings.public_base}/about")
            suppression = (
                OverrideSuppression(
                    suppression_store or RedisSuppressionStore(store),
                    settings.override_suppression_hours * 3600.0,
                )
                if settings.override_suppression_hours > 0
                else None
            )
            app.state.hooks = HookHandler(
                settings,
                registry,
                authenticator,
                PrefetchResolver(settings, fetch_client),
                sync_budget_s,
                audit=trail,
                suppression=suppression,
            )
            app.state.evidence = EvidenceHandler(review_broker, load_knowledge_base())

            async def redis_ready() -> bool:
                return bool(await store.ping())

            checks: dict[str, ReadinessCheck] = {"redis": redis_ready, **(readiness or {})}
            if trail is not None:
                checks["audit"] = audited_readiness(trail, checks.get("audit"))
            app.state.health = HealthHandler(checks)
            app.state.feedback = FeedbackHandler(
                settings,
                registry,
                authenticator,
                feedback_sink or RedisFeedbackSink(store),
                audit=trail,
                suppression=suppression,
            )
            # Start-up objects (models, schemas, handlers) are permanent: freezing them keeps full GC
            # passes, which took ~50 ms on this heap, off the request path.
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="R1 CDS",
        version="0.1.0",
        summary="CDS Hooks 2.0 service: rule cards at once, governed DeepSeek-R1 suggestions after review",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.collect_extra = collect_extra
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(about_router)
    if preview_key is not None:
        install_preview(app, settings, registry, preview_key)
    app.include_router(metrics_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in WIRE_MODELS:
            model_schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
    return app.openapi_schema

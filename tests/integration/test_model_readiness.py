"""The model readiness check as the API wires it: real loopback model servers, a real redis-server's slots."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from cds_hooks.health import HealthHandler
from tests.support.asgi_server import unused_loopback_url
from tests.support.redis_server import RedisHandle
from tests.support.sglang_stand_in import SGLangStandIn, running_sglang
from workers import keys
from workers.semaphore import ModelSlots, in_flight
from workers.settings import ReviewSettings
from workers.wiring import ModelReadiness, model_readiness

pytestmark = pytest.mark.integration

# A database of its own on the session's redis-server: the check counts the production slot key.
DB = 13
LEASE_S = 60.0


@pytest.fixture
def redis_url(redis_server: RedisHandle) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DB}"
    with redis.Redis.from_url(url) as client:
        client.delete(keys.MODEL_SLOTS)
        yield url
        client.delete(keys.MODEL_SLOTS)


@pytest.fixture
def slots(redis_url: str) -> Iterator[ModelSlots]:
    """The workers' semaphore on the same key the readiness check counts."""
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        yield ModelSlots(client, limit=4)


@pytest.fixture
async def api_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The API's hook-path client, as workers.wiring makes it: short timeouts."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
    yield client
    await client.aclose()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A loopback HTTP server that takes each connection, reads the request and never answers: what
    llama-cpp-python's /v1/models does while it decodes (the probe waits on the completion's lock)."""
    writers: list[asyncio.StreamWriter] = []
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(65536)
        await release.wait()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def settings(backend: str, url: str, redis_url: str) -> ReviewSettings:
    return ReviewSettings(model_backend=backend, model_url=url, redis_url=redis_url)  # type: ignore[arg-type]


async def readyz(check: ModelReadiness) -> tuple[int, dict[str, object]]:
    async def audit() -> bool:
        return True

    response = await HealthHandler({"model": check, "audit": audit}).ready()
    return response.status_code, orjson.loads(response.body)


async def test_in_flight_counts_live_leases_across_workers(
    slots: ModelSlots, api_redis: aioredis.Redis
) -> None:
    assert await in_flight(api_redis) == 0
    assert slots.try_acquire("worker-1", LEASE_S) and slots.try_acquire("worker-2", LEASE_S)
    assert await in_flight(api_redis) == 2 == slots.in_use()
    slots.release("worker-1")
    assert await in_flight(api_redis) == 1
    assert slots.try_acquire("worker-3", 0.05)
    await asyncio.sleep(0.15)  # its lease runs out: a worker killed mid-request stops counting
    assert await in_flight(api_redis) == 1 == slots.in_use()


async def test_llamacpp_silent_while_a_review_runs_is_busy_and_ready(
    slots: ModelSlots, api_redis: aioredis.Redis, redis_url: str
) -> None:
    async with silent_server() as url:
        check = model_readiness(settings("llamacpp", url, redis_url), api_redis)
        holder = f"worker-{uuid.uuid4().hex}"
        assert slots.try_acquire(holder, LEASE_S)
        started = time.monotonic()
        assert await readyz(check) == (200, {"status": "ready", "checks": {"audit": "ok", "model": "busy"}})
        assert time.monotonic() - started < 2.0, "within /readyz's time per check"
        slots.release(holder)
        status, body = await readyz(check)
    assert (status, body["checks"]) == (503, {"audit": "ok", "model": "down"}), "silent and idle: hung"


async def test_sglang_answers_ok_and_its_503_is_down_with_reviews_in_flight(
    slots: ModelSlots, api_redis: aioredis.Redis, redis_url: str
) -> None:
    with running_sglang(SGLangStandIn()) as stand_in:
        check = model_readiness(settings("sglang", stand_in.url, redis_url), api_redis)
        assert await readyz(check) == (200, {"status": "ready", "checks": {"audit": "ok", "model": "ok"}})
        assert slots.try_acquire(f"worker-{uuid.uuid4().hex}", LEASE_S)
        stand_in.healthy = False  # starting, shutting down, or its scheduler silent for 20 s
        status, body = await readyz(check)
    assert (status, body["checks"]) == (503, {"audit": "ok", "model": "down"})
    assert stand_in.probes == ["/health", "/health"]


async def test_sglang_silent_under_load_is_busy(
    slots: ModelSlots, api_redis: aioredis.Redis, redis_url: str
) -> None:
    async with silent_server() as url:
        check = model_readiness(settings("sglang", url, redis_url), api_redis)
        assert slots.try_acquire(f"worker-{uuid.uuid4().hex}", LEASE_S)
        assert await check() == "busy"


@pytest.mark.parametrize("backend", ["llamacpp", "sglang", "openai"])
async def test_connection_refused_is_down_even_with_reviews_in_flight(
    backend: str, slots: ModelSlots, api_redis: aioredis.Redis, redis_url: str
) -> None:
    assert slots.try_acquire(f"worker-{uuid.uuid4().hex}", LEASE_S)
    check = model_readiness(settings(backend, unused_loopback_url(), redis_url), api_redis)
    status, body = await readyz(check)
    assert (status, body["checks"]) == (503, {"audit": "ok", "model": "down"})


async def test_silence_with_redis_unreachable_is_down(redis_url: str) -> None:
    dead = aioredis.Redis.from_url(
        unused_loopback_url().replace("http", "redis"), socket_connect_timeout=0.25
    )
    try:
        async with silent_server() as url:
            assert await model_readiness(settings("llamacpp", url, redis_url), dead)() == "down"
    finally:
        await dead.aclose()

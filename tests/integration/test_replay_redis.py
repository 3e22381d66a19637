"""RedisReplayStore against a real redis-server: SET NX EX semantics, TTL, and the memory fallback in an outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cds_hooks.replay import KEY_PREFIX, MemoryReplayStore, RedisReplayStore
from tests.support import redis_server as redis_server_module
from tests.support.redis_server import RedisHandle, RedisServerError, running_redis, server_pid

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.25  # Settings.redis_timeout_s default


def client_for(handle: RedisHandle) -> Redis:
    # No retries: an outage should reach the store at once, as it would with production settings.
    return Redis.from_url(
        handle.url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
def redis_server() -> Iterator[RedisHandle]:
    with running_redis() as handle:
        yield handle


@pytest.fixture
async def client(redis_server: RedisHandle) -> AsyncIterator[Redis]:
    redis = client_for(redis_server)
    yield redis
    await redis.aclose()


def test_running_redis_starts_and_always_stops() -> None:
    started: list[RedisHandle] = []

    def fail_inside() -> None:
        with running_redis() as handle:
            started.append(handle)
            assert server_pid(handle.port) == handle.pid
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail_inside()
    assert not started[0].running
    assert server_pid(started[0].port) is None


def test_a_taken_port_is_a_clear_error(redis_server: RedisHandle) -> None:
    with (
        pytest.raises(RedisServerError, match="exited before answering"),
        running_redis(port=redis_server.port),
    ):
        pass
    assert server_pid(redis_server.port) == redis_server.pid  # the first server is untouched


def test_a_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redis_server_module, "DEFAULT_BINARY", str(tmp_path / "redis-server"))
    with pytest.raises(RedisServerError, match="redis-server not found"), running_redis():
        pass


async def test_first_use_is_true_once_and_sets_a_ttl(client: Redis) -> None:
    store = RedisReplayStore(client)
    assert await store.first_use("https://ehr.example/iss|jti-1", 30)
    assert not await store.first_use("https://ehr.example/iss|jti-1", 30)
    assert await store.first_use("https://ehr.example/iss|jti-2", 30)
    assert await client.get(KEY_PREFIX + "https://ehr.example/iss|jti-1") == b"1"
    ttl = await client.ttl(KEY_PREFIX + "https://ehr.example/iss|jti-1")
    assert 25 <= ttl <= 30
    assert not store.in_outage


async def test_a_second_use_after_the_ttl_is_a_first_use_again(client: Redis) -> None:
    store = RedisReplayStore(client)
    assert await store.first_use("short", 1)
    assert not await store.first_use("short", 1)
    await asyncio.sleep(1.2)
    assert await store.first_use("short", 1)


async def test_zero_or_negative_ttl_still_records_for_a_second(client: Redis) -> None:
    store = RedisReplayStore(client)
    assert await store.first_use("odd-ttl", 0)
    assert not await store.first_use("odd-ttl", -5)
    assert 0 < await client.pttl(KEY_PREFIX + "odd-ttl") <= 1000


async def test_concurrent_first_uses_of_one_key_admit_exactly_one(client: Redis) -> None:
    stores = [RedisReplayStore(client) for _ in range(10)]  # as if ten worker processes
    results = await asyncio.gather(*(s.first_use("race", 30) for s in stores for _ in range(5)))
    assert results.count(True) == 1


async def test_outage_falls_back_to_memory_and_recovery_remembers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fallback = MemoryReplayStore()
    with running_redis() as first:
        port = first.port
        redis = client_for(first)
        try:
            store = RedisReplayStore(redis, fallback=fallback)
            assert await store.first_use("before-outage", 60)

            first.kill()  # SIGKILL by pid: a crash, not a clean shutdown
            with caplog.at_level(logging.INFO, logger="cds_hooks.replay"):
                assert await store.first_use("during-outage", 60)
                assert store.in_outage
                assert not await store.first_use("during-outage", 60)  # replay refused from memory
                for i in range(20):
                    assert await store.first_use(f"load-{i}", 60)
            assert caplog.text.count("redis unavailable") == 1  # once per outage, not per request
            assert "ConnectionError" in caplog.text
            caplog.clear()

            # Redis comes back on the same address, empty (no persistence).
            with running_redis(port=port), caplog.at_level(logging.INFO, logger="cds_hooks.replay"):
                assert not await store.first_use("during-outage", 60)  # still refused
                assert not store.in_outage
                assert "redis is back" in caplog.text
                assert await store.first_use("after-outage", 60)
                assert not await store.first_use("after-outage", 60)
        finally:
            await redis.aclose()
    assert not first.running

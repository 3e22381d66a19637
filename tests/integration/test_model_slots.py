"""ModelSlots, the cross-worker cap on in-flight model requests, against a real redis-server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.redis_server import RedisHandle
from workers.errors import SlotTimeout
from workers.semaphore import ModelSlots

pytestmark = pytest.mark.integration

DEADLINE_S = 10.0


@pytest.fixture
def client(redis_server: RedisHandle) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as connection:
        yield connection


@pytest.fixture
def key() -> str:
    """A sorted set of this test's own, so tests sharing the session's redis-server never meet."""
    return f"test:model-slots:{uuid.uuid4().hex}"


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def poll(predicate: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> float:
    """Seconds until predicate() held; fails after timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_holders_are_capped_at_the_limit_across_independent_clients(
    redis_server: RedisHandle, key: str
) -> None:
    limit, workers = 3, 8
    guard = threading.Lock()
    inside = 0
    most = 0
    done = 0
    refused: dict[int, int] = {}
    gate = threading.Event()
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        nonlocal inside, most, done

        def counted_sleep(seconds: float) -> None:  # hold() sleeps only after a refused attempt
            with guard:
                refused[index] = refused.get(index, 0) + 1
            time.sleep(seconds)

        try:
            with redis.Redis.from_url(redis_server.url, socket_timeout=5) as own:
                slots = ModelSlots(own, limit, key=key, poll_s=0.01, sleep=counted_sleep)
                with slots.hold(f"worker-{index}", lease_s=30, wait_s=DEADLINE_S):
                    with guard:
                        inside += 1
                        most = max(most, inside)
                    gate.wait(DEADLINE_S)
                    with guard:
                        inside -= 1
            with guard:
                done += 1
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), name=f"slot-holder-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        poll(lambda: inside == limit, "the first holders")

        def all_others_refused() -> bool:
            with guard:
                return sum(1 for count in refused.values() if count >= 2) >= workers - limit

        # Every thread without a slot has been refused (twice) while `limit` hold theirs: nobody else got in.
        poll(all_others_refused, "the other workers to be refused")
        with guard:
            assert inside == limit
        with redis.Redis.from_url(redis_server.url, socket_timeout=5) as probe:
            observer = ModelSlots(probe, limit, key=key)
            assert observer.in_use() == limit
            assert observer.try_acquire("latecomer", lease_s=30) is False
    finally:
        gate.set()
        for thread in threads:
            thread.join(DEADLINE_S)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    assert done == workers
    assert most == limit
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as probe:
        assert ModelSlots(probe, limit, key=key).in_use() == 0


def test_renewal_by_the_same_holder_takes_no_second_slot(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 2, key=key)
    assert slots.try_acquire("a", lease_s=5)
    first_expiry = client.zscore(key, "a")
    assert slots.try_acquire("a", lease_s=60)  # renewed, and for longer
    assert slots.in_use() == 1
    assert client.zcard(key) == 1
    renewed_expiry = client.zscore(key, "a")
    assert first_expiry is not None and renewed_expiry is not None
    assert renewed_expiry >= first_expiry + 50_000
    # The second slot is still free for someone else, and then the set is full.
    assert slots.try_acquire("b", lease_s=5)
    assert slots.try_acquire("c", lease_s=5) is False
    # A holder may renew even when every slot is taken: its own slot is the one it renews.
    assert slots.try_acquire("a", lease_s=5)
    assert slots.in_use() == 2


def test_release_frees_a_slot(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 1, key=key)
    assert slots.try_acquire("a", lease_s=30)
    assert slots.try_acquire("b", lease_s=30) is False
    slots.release("a")
    assert slots.in_use() == 0
    assert slots.try_acquire("b", lease_s=30)
    slots.release("nobody")  # releasing a slot one does not hold changes nothing
    assert slots.in_use() == 1


def test_hold_gives_the_slot_back_even_when_the_block_raises(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 1, key=key)
    seen: list[int] = []

    def review_that_fails() -> None:
        with slots.hold("a", lease_s=30, wait_s=1):
            seen.append(slots.in_use())
            raise RuntimeError("model call failed")

    with pytest.raises(RuntimeError, match="model call failed"):
        review_that_fails()
    assert seen == [1]
    assert slots.in_use() == 0
    assert client.zscore(key, "a") is None


def test_a_dead_holders_lease_is_reclaimed_after_it_expires(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 1, key=key)
    lease_s = 0.5
    assert slots.try_acquire("died", lease_s=lease_s)  # and never released
    expiry_ms = client.zscore(key, "died")
    assert expiry_ms is not None
    started = time.monotonic()
    with slots.hold("next", lease_s=30, wait_s=DEADLINE_S):
        waited = time.monotonic() - started
        got_in_ms = server_ms(client)
        assert client.zscore(key, "died") is None
        assert slots.in_use() == 1
    # Not before the dead holder's lease ended (by the server's clock), and not much after it.
    assert got_in_ms >= expiry_ms
    assert 0.3 <= waited < lease_s + 2.0


def test_hold_raises_slot_timeout_when_no_slot_frees_in_time(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 1, key=key)
    assert slots.try_acquire("busy", lease_s=30)
    started = time.monotonic()
    with pytest.raises(SlotTimeout, match=r"limit 1"), slots.hold("waiting", lease_s=30, wait_s=0.3):
        pytest.fail("the block must not run without a slot")
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert client.zscore(key, "waiting") is None
    assert slots.in_use() == 1


def test_in_use_counts_live_leases_only(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 3, key=key)
    assert slots.in_use() == 0
    assert slots.try_acquire("short", lease_s=0.3)
    assert slots.try_acquire("long", lease_s=30)
    assert slots.in_use() == 2
    short_expiry = client.zscore(key, "short")
    assert short_expiry is not None
    # The moment the short lease has passed by the server's clock, it no longer counts (though the
    # expired member is still in the set until the next acquire sweeps it).
    poll(lambda: server_ms(client) > short_expiry, "the short lease to pass")
    assert slots.in_use() == 1
    assert client.zcard(key) == 2
    slots.release("long")
    assert slots.in_use() == 0


def test_the_key_ttl_never_drops_below_a_live_holders_lease(client: redis.Redis, key: str) -> None:
    slots = ModelSlots(client, 2, key=key)
    assert slots.try_acquire("a", lease_s=20)
    assert client.pttl(key) > 15_000
    assert slots.try_acquire("b", lease_s=0.3)  # a short lease must not shorten the key's life
    assert client.pttl(key) > 15_000
    b_expiry = client.zscore(key, "b")
    assert b_expiry is not None
    poll(lambda: server_ms(client) > b_expiry + 100, "b's lease to pass")
    assert client.exists(key) == 1
    assert client.zscore(key, "a") is not None
    assert slots.in_use() == 1
    # A still holds: a newcomer takes the one free slot (b's, reclaimed), and then none is left.
    assert slots.try_acquire("c", lease_s=0.3)
    assert slots.try_acquire("d", lease_s=0.3) is False
    assert client.pttl(key) > 15_000
    a_expiry = client.zscore(key, "a")
    assert a_expiry is not None
    assert client.pttl(key) >= a_expiry - server_ms(client) - 5


def test_a_live_holder_renews_a_short_lease_and_a_hung_one_loses_it(client: redis.Redis, key: str) -> None:
    """Leases as short as one model request (workers.runtime: model timeout plus margin), renewed while the
    review runs, up to the task's own limit: then a hung holder's slot frees itself."""
    slots = ModelSlots(client, 1, key=key)
    other = ModelSlots(client, 1, key=key)
    unblock = threading.Event()

    def hung_review() -> None:
        with slots.hold("hung", lease_s=0.3, wait_s=1, max_hold_s=1.5):
            unblock.wait(DEADLINE_S)

    thread = threading.Thread(target=hung_review)
    thread.start()
    try:
        poll(lambda: client.zscore(key, "hung") is not None, "the holder to take its slot")
        started = time.monotonic()
        time.sleep(0.8)  # more than two leases: renewed, so still held
        assert other.try_acquire("next", lease_s=30) is False
        poll(lambda: other.try_acquire("next", lease_s=30), "the hung holder's lease to lapse")
        assert 1.0 <= time.monotonic() - started < 1.5 + 2.0
        assert thread.is_alive(), "the slot freed itself while its holder still hung"
    finally:
        unblock.set()
        thread.join(DEADLINE_S)
    assert client.zscore(key, "next") is not None  # the hung holder's release took nothing from others

"""Large hook calls (issue 19, item 3): resources counted for the cap, pairs found in linear time, work offloaded."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from cds_hooks.handlers import HookThreads, count_resources
from plugin.catalog import shipped_registry
from plugin.rules.interactions import pair_sides
from plugin.rules.model import Exposure
from plugin.rules.phrasing import handles, names, proposed
from plugin.services import HookCall

pytestmark = pytest.mark.unit

T = TypeVar("T")


def test_resources_are_prefetch_entries_plus_draft_orders() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{}, {}, {}]}
    document = {
        "prefetch": {"patient": {"resourceType": "Patient"}, "meds": bundle, "none": None, "odd": "x"},
        "context": {"patientId": "p1", "draftOrders": {"resourceType": "Bundle", "entry": [{}, {}]}},
    }
    assert count_resources(document) == 1 + 3 + 2
    # Malformed shapes count as nothing: validation refuses them next.
    assert count_resources([]) == 0
    assert count_resources({"prefetch": [1], "context": "x"}) == 0
    assert count_resources({"prefetch": {"b": {"resourceType": "Bundle", "entry": "x"}}}) == 0


def _old_pair_sides(
    left: Iterable[Exposure], right: Iterable[Exposure]
) -> tuple[list[Exposure], list[Exposure]]:
    """The pair loop as it was (quadratic): the reference the linear version must match."""
    right = tuple(right)
    pairs: list[tuple[Exposure, Exposure]] = []
    seen: set[frozenset[str]] = set()
    for a in left:
        for b in right:
            key = frozenset((a.handle, b.handle))
            if a.handle != b.handle and key not in seen:
                seen.add(key)
                pairs.append((a, b))
    return [a for a, _ in pairs], [b for _, b in pairs]


def _exposure(handle: str, name: str, draw: random.Random) -> Exposure:
    return Exposure(handle, name, (name,), frozenset({name}), draw.random() < 0.5)


def test_pair_sides_matches_the_pair_loop_on_random_baskets() -> None:
    draw = random.Random(19)
    for _ in range(3000):
        pool = [_exposure(f"h{n}", draw.choice("abcdef"), draw) for n in range(draw.randrange(0, 9))]
        left = [draw.choice(pool) for _ in range(draw.randrange(0, 8))] if pool else []
        right = [draw.choice(pool) for _ in range(draw.randrange(0, 8))] if pool else []
        old_left, old_right = _old_pair_sides(left, right)
        new_left, new_right = pair_sides(left, right)
        # What findings read of the two sides: drug names in order, handles, proposed handles.
        assert names(new_left) == names(old_left)
        assert names(new_right) == names(old_right)
        assert handles(new_left, new_right) == handles(old_left, old_right)
        assert proposed(new_left, new_right) == proposed(old_left, old_right)
        assert bool(new_left) == bool(old_left)
        # Each drug once per side, in the order of its first pair.
        assert new_left == list(dict.fromkeys(old_left))
        assert new_right == list(dict.fromkeys(old_right))


def test_pair_sides_of_thousands_of_drafts_lists_each_drug_once() -> None:
    draw = random.Random(3)
    left = [_exposure(f"l{n}", "ibuprofen", draw) for n in range(5000)]
    right = [_exposure(f"r{n}", "sertraline", draw) for n in range(5000)]
    lefts, rights = pair_sides(left + right[:10], right + left[:10])
    assert len(lefts) == 5010 and len(rights) == 5010


def test_the_rule_service_builds_the_context_and_runs_the_rules_through_offload() -> None:
    service = shipped_registry(clock=lambda: datetime(2026, 11, 25, tzinfo=UTC)).get("r1-chart-review")
    call = HookCall("r1-chart-review", "patient-view", "i", {"patientId": "p1"}, {"patient": None})
    ran_in: list[int] = []

    async def offload(work: Callable[[], T]) -> T:
        def recorded() -> T:
            ran_in.append(threading.get_ident())
            return work()

        return await asyncio.to_thread(recorded)

    async def main() -> tuple[Any, int]:
        result = await service.answer(call, 0.0, offload=offload)  # type: ignore[attr-defined]
        return result, threading.get_ident()

    result, loop_thread = asyncio.run(main())
    assert ran_in and ran_in[0] != loop_thread
    assert result == service.evaluate(call)


def test_hook_threads_run_work_on_a_worker_thread_and_bound_large_calls() -> None:
    threads = HookThreads(4)
    assert threads.threads.total_tokens == 4 and threads.large.total_tokens == 2
    assert HookThreads(1).large.total_tokens == 1

    async def main() -> tuple[list[bool], int]:
        running: list[int] = []
        peak = 0
        gate = threading.Lock()

        def work() -> bool:
            nonlocal peak
            with gate:
                running.append(1)
                peak = max(peak, len(running))
            threading.Event().wait(0.05)
            with gate:
                running.pop()
            return _on_loop()

        on_loop = await asyncio.gather(*(threads.run(work, large=True) for _ in range(6)))
        return list(on_loop), peak

    on_loop, peak = asyncio.run(main())
    assert on_loop == [False] * 6
    assert peak <= 2  # large calls never take more than half the threads


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


Offload = Callable[[Callable[[], T]], Awaitable[T]]

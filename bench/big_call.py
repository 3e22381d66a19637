"""A large hook call beside small ones (issue 19, item 3): what a 1,500-draft order-select costs everyone else.

One uvicorn process serves the real app (shipped rules, auth off, no AI, override suppression off) over
loopback. Each round sends one large order-select (the largest Synthea chart as prefetch plus N draft
MedicationRequests, `bench.rules.draft_bundle`) and, while it is in flight, small patient-view calls (a
one-patient chart) and `GET /healthz` one after another. Before that, the same small call and /healthz
are timed alone: /healthz is the floor, a trivial request measured in the same run. Every call carries
another `userId`, so no answer comes from the answer cache.

    python -m bench.big_call [--drafts N] [--rounds N] [--on-loop]

`--on-loop` runs the hook's heavy steps on the event loop, as before issue 19 item 3, for comparison.
Prints medians of the rounds (latencies in ms); the verdict: a small call during the large one within
the sync budget (2.5 s by default; DESIGN's 500 ms target for rule cards is shown beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.load import BenchError, Server, clean_env, positive, progress, start_uvicorn, verdict

CONFIG_ENV = "BIG_CALL_BENCH_CONFIG"
BUDGET_MS = 2500.0
RULES_TARGET_MS = 500.0


def app_from_env() -> Any:
    """The `uvicorn --factory` entry point."""
    from cds_hooks.app import create_app
    from cds_hooks.handlers import HookThreads
    from cds_hooks.settings import load_settings

    config = json.loads(os.environ[CONFIG_ENV])
    if config["on_loop"]:

        async def inline(self: HookThreads, work: Any, *, large: bool = False) -> Any:
            return work()

        HookThreads.run = inline  # type: ignore[method-assign]
    settings = load_settings(
        auth_disabled=True,
        redis_url=config["redis_url"],
        public_base_url=config["public_base"],
        override_suppression_hours=0,
        max_body_bytes=64 * 1024 * 1024,
        max_resources_per_call=config["max_resources"],
    )
    return create_app(settings)


def requests(drafts: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.rules import draft_bundle, largest_chart

    _, _, _, patient_id, prefetch = largest_chart()
    large = {
        "hook": "order-select",
        "hookInstance": "3f0c5bd2-5f3b-4c1e-9d0a-7e1c2b8a9f10",
        "context": {
            "userId": "Practitioner/bench-large",
            "patientId": patient_id,
            "draftOrders": draft_bundle(drafts, patient_id),
            "selections": [f"MedicationRequest/draft-{n}" for n in range(drafts)],
        },
        "prefetch": {key: prefetch[key] for key in ORDER_KEYS if key in prefetch},
    }
    small = {
        "hook": "patient-view",
        "hookInstance": "3f0c5bd2-5f3b-4c1e-9d0a-7e1c2b8a9f11",
        "context": {"userId": "Practitioner/bench-small", "patientId": "small-1"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "small-1", "birthDate": "1970-01-01"}},
    }
    return large, small


ORDER_KEYS = ("patient", "conditions", "medications", "statements", "allergies", "labs", "vitals")


def resources_in(request: dict[str, Any]) -> int:
    from cds_hooks.handlers import count_resources

    return count_resources(request)


async def one_round(url: str, large: dict[str, Any], small: dict[str, Any], index: int) -> dict[str, Any]:
    import httpx

    def with_user(request: dict[str, Any], user: str) -> bytes:
        import orjson

        return orjson.dumps({**request, "context": {**request["context"], "userId": f"Practitioner/{user}"}})

    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(trust_env=False, timeout=600.0) as client:

        async def timed(method: str, path: str, body: bytes | None = None) -> float:
            started = time.perf_counter()
            response = await client.request(method, f"{url}{path}", content=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000.0
            if response.status_code != 200:
                raise BenchError(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return elapsed

        alone_small = [
            await timed("POST", "/cds-services/r1-chart-review", with_user(small, f"a{index}-{n}"))
            for n in range(20)
        ]
        floor = [await timed("GET", "/healthz") for _ in range(20)]
        body = with_user(large, f"large-{index}")
        big = asyncio.ensure_future(timed("POST", "/cds-services/r1-order-review", body))
        await asyncio.sleep(0.2)  # the large call is being read and worked on
        during_small: list[float] = []
        during_health: list[float] = []
        n = 0
        while not big.done():
            during_small.append(
                await timed("POST", "/cds-services/r1-chart-review", with_user(small, f"d{index}-{n}"))
            )
            during_health.append(await timed("GET", "/healthz"))
            n += 1
        large_ms = await big
    if not during_small:
        raise BenchError("the large call ended before any small call was sent: use more drafts")
    return {
        "floor_ms": statistics.median(floor),
        "small_alone_ms": statistics.median(alone_small),
        "large_ms": large_ms,
        "small_during_p50_ms": statistics.median(during_small),
        "small_during_max_ms": max(during_small),
        "health_during_max_ms": max(during_health),
        "small_during_count": len(during_small),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.big_call", description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=positive(int), default=1500, help="draft orders in the large call")
    parser.add_argument("--rounds", type=positive(int), default=3)
    parser.add_argument("--on-loop", action="store_true", help="heavy steps on the event loop (as before)")
    args = parser.parse_args(argv)
    from tests.support.asgi_server import unused_loopback_url

    large, small = requests(args.drafts)
    resources = resources_in(large)
    unused_redis = unused_loopback_url().replace("http://", "redis://") + "/0"
    try:
        with ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="big-call-")))

            def env_for_port(port: int) -> dict[str, str]:
                config = {
                    "public_base": f"http://127.0.0.1:{port}",
                    "redis_url": unused_redis,
                    "on_loop": args.on_loop,
                    "max_resources": max(resources, 2000),
                }
                return clean_env({CONFIG_ENV: json.dumps(config)})

            server: Server = start_uvicorn("api", "bench.big_call:app_from_env", env_for_port, workdir, stack)
            rounds = []
            for index in range(args.rounds):
                result = asyncio.run(one_round(server.url, large, small, index))
                progress(
                    f"round {index + 1}/{args.rounds}: {json.dumps({k: round(v, 1) for k, v in result.items()})}"
                )
                rounds.append(result)
    except BenchError as exc:
        print(f"big_call: {exc}", file=sys.stderr)
        return 1

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    where = "on the event loop (--on-loop)" if args.on_loop else "on worker threads"
    print(
        f"R1 CDS big call: order-select with {args.drafts} drafts ({resources} resources, "
        f"{len(json.dumps(large)) / 1e6:.1f} MB) beside small patient-view calls; heavy steps {where}; "
        f"{args.rounds} rounds, medians; {os.cpu_count()} CPUs"
    )
    print(f"{'row':<44} {'ms':>9}")
    rows = {
        "floor: GET /healthz alone": med("floor_ms"),
        "small patient-view alone": med("small_alone_ms"),
        f"large order-select ({args.drafts} drafts)": med("large_ms"),
        "small patient-view during it, p50": med("small_during_p50_ms"),
        "small patient-view during it, max": med("small_during_max_ms"),
        "GET /healthz during it, max": med("health_during_max_ms"),
    }
    for name, value in rows.items():
        print(f"{name:<44} {value:>9.1f}")
    print(f"small calls answered during the large one: {med('small_during_count'):.0f} per round (median)")
    worst = med("small_during_max_ms")
    print(
        verdict(
            worst <= BUDGET_MS,
            f"a small call during the large one: max {worst:.0f} ms (budget {BUDGET_MS:.0f} ms)",
        )
    )
    print(verdict(worst <= RULES_TARGET_MS, f"... and within the {RULES_TARGET_MS:.0f} ms rule-card target"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

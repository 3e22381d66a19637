"""Cold patient-view calls all at once (issue 19, item 4): the share of answers over the sync budget.

One uvicorn process serves the real app (shipped rules, auth off, no AI, override suppression off) over
loopback, as bench.big_call does. Each round opens N keep-alive connections, then sends N patient-view
calls at once, each a Synthea chart's CHART_PREFETCH (the fixtures' charts in turn) under its own
`userId` and `hookInstance`, so no answer comes from the answer cache: every call builds its context and
runs the rules. Before the burst, `GET /healthz` alone is the floor, measured in the same run; one small
patient-view call warms the process (imports, the knowledge base) and is not counted.

    python -m bench.cold_load [--concurrency N] [--rounds N] [--budget-ms MS] [--threads N]

Latency is the client's: from the request's first byte written to its answer's last byte read. Prints
the floor, p50/p95/p99/max of the answers of every round together and the share over the budget, and a
PASS/FAIL line against "0 over budget". Exits non-zero only when the benchmark itself fails (a server
that does not start, an error answer); a missed goal is the FAIL line. Each round ends within a fixed
time (`ROUND_LIMIT_S`), so a hung server cannot hang it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.load import (
    LOOPBACK,
    BenchError,
    Server,
    clean_env,
    cpu_seconds,
    positive,
    post_head,
    progress,
    read_response,
    start_uvicorn,
    verdict,
)
from bench.stats import median, percentile

CONFIG_ENV = "COLD_LOAD_BENCH_CONFIG"
BUDGET_MS = 2500.0  # create_app's sync_budget_s default
ROUND_LIMIT_S = 120.0
PATH = "/cds-services/r1-chart-review"
SMALL = {
    "hook": "patient-view",
    "hookInstance": "8d0f3c52-1b7e-4a58-9f2e-0c6a1d3e5b70",
    "context": {"userId": "Practitioner/cold-warmup", "patientId": "small-1"},
    "prefetch": {"patient": {"resourceType": "Patient", "id": "small-1", "birthDate": "1970-01-01"}},
}


def app_from_env() -> Any:
    """The `uvicorn --factory` entry point."""
    from cds_hooks.app import create_app
    from cds_hooks.settings import load_settings

    config = json.loads(os.environ[CONFIG_ENV])
    overrides: dict[str, Any] = {}
    if config["threads"] is not None:
        overrides["hook_threads"] = config["threads"]
    settings = load_settings(
        auth_disabled=True,
        redis_url=config["redis_url"],
        public_base_url=config["public_base"],
        override_suppression_hours=0,
        max_body_bytes=64 * 1024 * 1024,
        **overrides,
    )
    if not config["ai"]:
        return create_app(settings, sync_budget_s=config["budget_s"])
    from cds_hooks.stack import build_app
    from workers.settings import ReviewSettings

    # The API's AI review path on a real Redis, with no worker: every review is queued and none lands,
    # so every answer waits for the whole budget and is answered with the pending card.
    review = ReviewSettings(
        redis_url=config["redis_url"],
        sync_budget_s=config["budget_s"],
        model_backend="sglang",
        model_url="http://127.0.0.1:9",
        review_samples=1,
        audit_database_url=f"sqlite:///{config['workdir']}/audit.sqlite3",
    )
    return build_app(settings, review)


def charts() -> list[tuple[str, dict[str, Any]]]:
    """(patient id, CHART_PREFETCH answered by its bundle) of every Synthea fixture chart."""
    from bench.rules import FHIR_BASE, SYNTHEA
    from cds_hooks.prefetch import render_template
    from plugin.catalog import CHART_PREFETCH
    from plugin.fhir_search import FhirStore

    found = []
    for path in sorted(SYNTHEA.glob("*.json")):
        store = FhirStore.from_bundles([orjson.loads(path.read_bytes())])
        (patient,) = store.search("Patient", [])
        patient_id = str(patient["id"])
        hook = {"patientId": patient_id}
        found.append(
            (
                patient_id,
                {k: store.query(render_template(t, hook), FHIR_BASE) for k, t in CHART_PREFETCH.items()},
            )
        )
    if not found:
        raise BenchError(f"no Synthea bundles under {SYNTHEA}")
    return found


def cold_calls(
    port: int, chart_list: list[tuple[str, dict[str, Any]]], count: int, label: str
) -> list[bytes]:
    """`count` whole HTTP requests: the charts in turn, each call its own user and hook instance."""
    requests = []
    for n in range(count):
        patient_id, prefetch = chart_list[n % len(chart_list)]
        body = orjson.dumps(
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": f"Practitioner/cold-{label}-{n}", "patientId": patient_id},
                "prefetch": prefetch,
            }
        )
        requests.append(post_head(PATH, port, len(body)) + b"\r\n" + body)
    return requests


async def timed(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> float:
    reader, writer = connection
    started = time.perf_counter()
    writer.write(request)
    status, payload = await read_response(reader)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise BenchError(f"HTTP {status}: {payload[:300]!r}")
    if b'"cards"' not in payload:
        raise BenchError(f"an answer without cards: {payload[:300]!r}")
    return elapsed * 1000.0


async def get_ms(port: int, path: str) -> float:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        started = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n\r\n".encode())
        status, _ = await read_response(reader)
        if status != 200:
            raise BenchError(f"GET {path}: HTTP {status}")
        return (time.perf_counter() - started) * 1000.0
    finally:
        writer.close()


async def one_round(port: int, requests: list[bytes], warmup: bytes) -> dict[str, Any]:
    async with asyncio.timeout(ROUND_LIMIT_S):
        warm = await asyncio.open_connection(LOOPBACK, port)
        await timed(warm, warmup)
        warm[1].close()
        floor = [await get_ms(port, "/healthz") for _ in range(20)]
        connections = [await asyncio.open_connection(LOOPBACK, port) for _ in requests]
        try:
            latencies = await asyncio.gather(
                *(timed(c, r) for c, r in zip(connections, requests, strict=True))
            )
        finally:
            for _, writer in connections:
                writer.close()
    return {"floor_ms": median(floor), "latencies_ms": sorted(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_load", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=positive(int), default=50, help="cold calls sent at once")
    parser.add_argument("--rounds", type=positive(int), default=3)
    parser.add_argument("--budget-ms", type=positive(float), default=BUDGET_MS, help="the sync budget")
    parser.add_argument("--no-ai", action="store_true", help="rule cards only (no review path, no Redis)")
    parser.add_argument(
        "--threads", type=positive(int), default=None, help="R1CDS_HOOK_THREADS (default: its)"
    )
    args = parser.parse_args(argv)
    from tests.support.asgi_server import unused_loopback_url

    try:
        chart_list = charts()
        with ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cold-load-")))
            if args.no_ai:
                redis_url = unused_loopback_url().replace("http://", "redis://") + "/0"
            else:
                from tests.support.redis_server import running_redis

                redis_url = stack.enter_context(running_redis()).url

            def env_for_port(port: int) -> dict[str, str]:
                config = {
                    "public_base": f"http://127.0.0.1:{port}",
                    "redis_url": redis_url,
                    "budget_s": args.budget_ms / 1000.0,
                    "threads": args.threads,
                    "ai": not args.no_ai,
                    "workdir": str(workdir),
                }
                return clean_env({CONFIG_ENV: json.dumps(config)})

            server: Server = start_uvicorn(
                "api", "bench.cold_load:app_from_env", env_for_port, workdir, stack
            )
            rounds = []
            cpu_before, wall_before = cpu_seconds(server.child.process.pid), time.perf_counter()
            for index in range(args.rounds):
                requests = cold_calls(server.port, chart_list, args.concurrency, f"r{index}")
                warmup = orjson.dumps({**SMALL, "hookInstance": str(uuid.uuid4())})
                warmup = post_head(PATH, server.port, len(warmup)) + b"\r\n" + warmup
                result = asyncio.run(one_round(server.port, requests, warmup))
                lat = result["latencies_ms"]
                over = sum(1 for v in lat if v > args.budget_ms)
                progress(
                    f"round {index + 1}/{args.rounds}: floor {result['floor_ms']:.1f} ms, "
                    f"p50 {percentile(lat, 0.5):.0f} ms, max {lat[-1]:.0f} ms, {over}/{len(lat)} over budget"
                )
                rounds.append(result)
            cpu_after, wall_after = cpu_seconds(server.child.process.pid), time.perf_counter()
    except (BenchError, TimeoutError) as exc:
        print(f"cold_load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    latencies = sorted(v for r in rounds for v in r["latencies_ms"])
    over = sum(1 for v in latencies if v > args.budget_ms)
    threads = args.threads if args.threads is not None else "default"
    ai = "rule cards only" if args.no_ai else "AI review queued, no worker: every answer pending"
    print(
        f"R1 CDS cold load: {args.concurrency} concurrent cold patient-view calls ({len(chart_list)} Synthea "
        f"charts in turn, no answer cache hits), {args.rounds} rounds; {ai}; hook threads {threads}; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'row':<36} {'ms':>9}")
    rows = {
        "floor: GET /healthz alone (median)": median(r["floor_ms"] for r in rounds),
        "cold call p50": percentile(latencies, 0.5),
        "cold call p95": percentile(latencies, 0.95),
        "cold call p99": percentile(latencies, 0.99),
        "cold call max": latencies[-1],
    }
    for name, value in rows.items():
        print(f"{name:<36} {value:>9.1f}")
    if cpu_before is not None and cpu_after is not None:
        print(f"server CPU over the run: {(cpu_after - cpu_before) / (wall_after - wall_before):.2f} cores")
    share = over / len(latencies)
    print(f"over the {args.budget_ms:.0f} ms budget: {over}/{len(latencies)} ({share * 100:.1f}%)")
    print(
        verdict(
            over == 0, f"0 answers over the {args.budget_ms:.0f} ms budget at {args.concurrency} concurrent"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

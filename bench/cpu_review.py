"""CPU demo review time: one AI review of each demo patient on the packaged llama.cpp model, compact vs standard.

    python -m bench.cpu_review [--profiles compact,standard] [--patients N]

Starts the packaged Gemma 3 270m GGUF on llama.cpp (as `r1cds up` does), then runs the worker's own review
(workers.runtime.ReviewRuntime's service, built the way each profile builds it) on the preview's demo
patients and prints, per profile, the wall time of each review and how its samples parsed and what
governance kept. The floor measured in the same run is the server's time to decode 64 tokens of free
text: what one generation of the model costs on this machine, with no prompt and no grammar.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from cds_hooks.prefetch import render_template
from cds_hooks.preview.demo import DEMO_PATIENTS, demo_bundle
from inference.llamacpp import LlamaCppModel, LlamaCppServer, ServerConfig, packaged_model_path
from inference.openai_compat import AdapterConfig
from plugin.catalog import CHART_PREFETCH, CHART_REVIEW
from plugin.context.build import build_context
from plugin.fhir_search import FhirStore
from plugin.governance import GovernancePolicy
from plugin.knowledge import load_knowledge_base
from plugin.review import ReviewOutcome, ReviewService
from workers import runtime
from workers.settings import load_review_settings

CONTEXT = 8192  # as cds_hooks.stack starts the server


def _prefetch(store: FhirStore, patient: str) -> dict[str, object]:
    context = {"patientId": patient, "userId": "Practitioner/bench"}
    return {
        k: store.query(render_template(t, context), "https://bench.invalid/fhir")
        for k, t in CHART_PREFETCH.items()
    }


def _service(model: LlamaCppModel, profile: str) -> ReviewService:
    """The worker's own review (workers.runtime.review_service) under `profile`."""
    settings = load_review_settings(model_backend="llamacpp", review_profile=profile)
    service, _ = runtime.review_service(
        settings, model, load_knowledge_base(), GovernancePolicy(), packaged_model_path().name
    )
    return service


def _describe(outcome: ReviewOutcome) -> str:
    parsed = ",".join(s.outcome for s in outcome.samples)
    if outcome.decision is None:
        return f"failed ({outcome.error})"
    decision = outcome.decision
    rejected = ",".join(sorted({r.reason.value for r in decision.rejected})) or "-"
    why = (
        f"abstained ({decision.abstain_reason})"
        if decision.abstained
        else f"accepted {len(decision.accepted)}"
    )
    return f"samples [{parsed}]; {why}; rejected: {rejected}"


async def _floor(client: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    response = await client.post(
        f"{url}/v1/completions", json={"prompt": "The", "max_tokens": 64, "temperature": 0.0}, timeout=120
    )
    response.raise_for_status()
    return time.perf_counter() - started


async def run(profiles: Sequence[str], patients: int) -> None:
    path = packaged_model_path()
    with LlamaCppServer(ServerConfig(model_path=path, n_ctx=CONTEXT)) as server:
        async with httpx.AsyncClient() as client:
            floor = await _floor(client, server.base_url)
            model = LlamaCppModel(
                client, AdapterConfig(base_url=server.base_url, model=str(path), read_timeout_s=900)
            )
            rows: list[tuple[str, str, float, str]] = []
            for profile in profiles:
                service = _service(model, profile)
                for demo in DEMO_PATIENTS[:patients]:
                    bundle = demo_bundle(demo.id)
                    built = build_context(
                        _prefetch(FhirStore.from_bundles([bundle]), demo.id), datetime.now(UTC)
                    )
                    started = time.perf_counter()
                    outcome = await service.review(CHART_REVIEW.id, built, None)
                    rows.append((profile, demo.id, time.perf_counter() - started, _describe(outcome)))
                    print(f"  {profile:8} {demo.id:26} {rows[-1][2]:7.1f} s  {rows[-1][3]}", flush=True)
    print()
    print(f"floor: 64 tokens of free text in {floor:.2f} s")
    print(f"{'profile':10}{'reviews':>8}{'median s':>10}{'max s':>8}{'median x floor':>16}")
    for profile in profiles:
        times = [t for p, _, t, _ in rows if p == profile]
        print(
            f"{profile:10}{len(times):>8}{statistics.median(times):>10.1f}{max(times):>8.1f}"
            f"{statistics.median(times) / floor:>16.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="compact,standard")
    parser.add_argument("--patients", type=int, default=len(DEMO_PATIENTS))
    args = parser.parse_args()
    asyncio.run(run([p for p in args.profiles.split(",") if p], args.patients))


if __name__ == "__main__":
    main()

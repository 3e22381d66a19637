"""Governance latency: 5 samples × 10 suggestions each, governed end to end, against a trivial floor.

The chart is the governance test corpus (warfarin, eGFR 25, potassium, penicillin allergy, an injected
note). Each sample holds 10 suggestions: a mix that passes every step (so consistency, rule evaluation and
FHIR validation run) and ones that fail at different steps. The contract caps a SuggestionSet at 5
suggestions, so the sets are assembled with `model_construct` from validated suggestions: twice the
largest real load. Interleaved round by round, after a warm-up, each row runs `--runs` times:

- floor: iterate every suggestion of every sample and touch its summary, rationale, action and citations;
- govern: `govern(...)` over the 5 samples;
- one sample: `govern(...)` over the first sample alone. Agreeing samples repeat suggestions word for word and
  governance judges a repeated suggestion once per call, so this row shows the cost of 10 distinct
  suggestions (no target; for reading beside the govern row).

    python -m bench.governance [--runs N] [--warmup N]

Exits non-zero only when the benchmark itself fails; a missed target is a FAIL line, not an exit status.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.stats import percentile
from plugin.governance import Decision, GovernancePolicy, govern
from plugin.suggestions import AiSuggestion, SuggestionSet
from tests.support import governance_corpus as corpus

TARGET_P99_MS = 20.0
SAMPLES = 5
PER_SAMPLE = 10


@dataclass(frozen=True, slots=True)
class _Parsed:
    outcome: str
    value: SuggestionSet | None
    detail: str


def _suggestions() -> list[AiSuggestion]:
    warfarin = corpus.handle_of("MedicationRequest/warfarin")
    documents = [
        corpus.clean_inr(),
        corpus.suggestion(
            "Consider reviewing warfarin INR monitoring",
            "Warfarin needs regular INR monitoring.",
            corpus.action(),
            [warfarin],
        ),
        corpus.suggestion(
            "Consider acetaminophen for pain",
            "Acetaminophen avoids the bleeding risk of NSAIDs; keep under the daily maximum.",
            corpus.medication("313782", "Acetaminophen 325 MG Oral Tablet"),
            knowledge_ids=["kb.acetaminophen-daily-maximum"],
        ),
    ]
    documents += [s for case in corpus.cases() for sample in case.samples for s in sample["suggestions"]]
    return [AiSuggestion.model_validate(d) for d in documents[:PER_SAMPLE]]


def _samples() -> list[_Parsed]:
    suggestions = _suggestions()
    samples = []
    for shift in range(SAMPLES):
        # Rotate so each sample lists them in another order; the clean three stay in every sample.
        rotated = suggestions[shift:] + suggestions[:shift]
        value = SuggestionSet.model_construct(
            language="en", abstain=False, abstain_reason=None, suggestions=rotated
        )
        samples.append(_Parsed("ok", value, f"{len(rotated)} suggestion(s)"))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)

    samples = _samples()
    context, knowledge, policy = corpus.context(), corpus.knowledge(), GovernancePolicy()

    def floor() -> object:
        touched = 0
        for sample in samples:
            assert sample.value is not None
            for s in sample.value.suggestions:
                touched += len(s.summary) + len(s.rationale) + len(s.action.type) + len(s.citations.knowledge)
        return touched

    def governed() -> Decision:
        return govern(samples, context, corpus.RETRIEVED, knowledge, policy, corpus.PATIENT)

    decision = governed()

    def one_sample() -> Decision:
        return govern(samples[:1], context, corpus.RETRIEVED, knowledge, policy, corpus.PATIENT)

    rows: dict[str, Callable[[], object]] = {"floor": floor, "govern": governed, "one sample": one_sample}
    for _ in range(args.warmup):
        for run in rows.values():
            run()
    timings: dict[str, list[float]] = {name: [] for name in rows}
    gc.collect()
    for _ in range(args.runs):
        for name, run in rows.items():
            start = time.perf_counter()
            run()
            timings[name].append((time.perf_counter() - start) * 1000.0)

    accepted = len(decision.accepted)
    rejected = len(decision.rejected)
    print(
        f"governance: {SAMPLES} samples × {PER_SAMPLE} suggestions, {accepted} accepted, {rejected} rejected"
    )
    print(f"{'row':<12}{'p50 ms':>10}{'p99 ms':>10}")
    for name, values in timings.items():
        print(f"{name:<12}{percentile(values, 0.5):>10.3f}{percentile(values, 0.99):>10.3f}")
    p99 = percentile(timings["govern"], 0.99)
    verdict = "PASS" if p99 <= TARGET_P99_MS else "FAIL"
    print(f"{verdict}: govern p99 {p99:.3f} ms (target ≤ {TARGET_P99_MS:g} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Context builder vs raw prefetch, per Synthea patient: size reduction, safety-set coverage, build time."""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.stats import percentile
from cds_hooks.prefetch import is_top_n, render_template
from plugin.catalog import CHART_PREFETCH
from plugin.context import codes
from plugin.context.build import build_context
from plugin.context.render import estimate_tokens, render
from plugin.fhir_search import FhirStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = REPO_ROOT.parent / "shared" / "fixtures" / "synthea"
FHIR_BASE = "https://ehr.bench.invalid/fhir/r4"
# Fixed, so ages and offsets ("5 wk ago"; hence the summary and its size) repeat exactly; just after the
# newest record.
NOW = datetime(2022, 4, 1, 12, tzinfo=UTC)
WARMUP = 3
TARGET_REDUCTION = 10.0
TARGET_BUILD_P50_MS = 30.0
REDUCTION = f"reduction >= {TARGET_REDUCTION:g}x for every patient"
NO_DROP = "no safety-set item dropped"
BUILD_P50 = f"build p50 <= {TARGET_BUILD_P50_MS:g} ms"

# The expected safety set is derived from the raw JSON with these rules, not from what the builder kept.
SAFETY_LABEL_BY_LOINC = {code: a.label for a in codes.ANALYTES.values() if a.safety for code in a.loinc}
NOT_AN_ALLERGY = frozenset({"refuted", "entered-in-error"})
CURRENT_REQUEST = frozenset({"active", "on-hold"})
# A section header is a whole line in capitals ending in ':'; data lines start with a handle or a label.
HEADER = re.compile(r"[A-Z][A-Z ,/]*(?: \([^)]*\))?:")


# (title prefix of the section that must show it, what it is, names: any one on a line there shows it)
Expected = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class PatientRow:
    patient: str
    raw_bytes: int
    raw_tokens: int
    summary_bytes: int
    summary_tokens: int
    reduction: float
    parse_p50_ms: float
    build_p50_ms: float
    build_p99_ms: float
    safety_expected: int
    safety_missing: list[str]
    over_budget: bool
    paged_keys: list[str]


def _norm(text: str) -> str:
    # Synthea displays carry zero-width spaces and doubled blanks; the summary may not.
    return " ".join(text.replace("\u200b", "").split())


def _names(concept: Any) -> tuple[str, ...]:
    if not isinstance(concept, Mapping):
        return ()
    found = [c.get("display") for c in concept.get("coding") or () if isinstance(c, Mapping)]
    found.append(concept.get("text"))
    return tuple(dict.fromkeys(n for x in found if isinstance(x, str) and (n := _norm(x))))


def _label(names: tuple[str, ...], reference: str) -> str:
    return f"{names[0]!r} ({reference})" if names else f"{reference} (no name in the chart)"


def _first_code(concept: Any) -> str | None:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return next((str(c["code"]) for c in codings or () if isinstance(c, Mapping) and c.get("code")), None)


def _resources(prefetch: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """By reference, so a resource fetched under two keys counts once."""
    found: dict[str, Mapping[str, Any]] = {}
    for value in prefetch.values():
        if not isinstance(value, Mapping):
            continue
        bundle = value.get("resourceType") == "Bundle"
        for r in [e.get("resource") for e in value.get("entry") or ()] if bundle else [value]:
            if isinstance(r, Mapping):
                found[f"{r.get('resourceType')}/{r.get('id')}"] = r
    return found


def expected_safety(prefetch: Mapping[str, Any]) -> list[Expected]:
    resources = _resources(prefetch)
    items: list[Expected] = []
    analytes: set[str] = set()
    for reference, r in resources.items():
        kind = r.get("resourceType")
        if kind == "AllergyIntolerance":
            if _first_code(r.get("clinicalStatus")) in (None, "active") and (
                _first_code(r.get("verificationStatus")) not in NOT_AN_ALLERGY
            ):
                names = _names(r.get("code"))
                items.append(("ALLERGIES", f"allergy {_label(names, reference)}", names))
        elif kind == "MedicationRequest" and r.get("status") in CURRENT_REQUEST:
            concept = r.get("medicationCodeableConcept")
            if concept is None:  # a Medication resource, if the prefetch happens to carry it
                target = (r.get("medicationReference") or {}).get("reference", "")
                concept = (resources.get(target) or {}).get("code")
            names = _names(concept)
            items.append(("CURRENT MEDICATIONS", f"medication {_label(names, reference)}", names))
        elif kind == "Observation":
            analytes.update(
                SAFETY_LABEL_BY_LOINC[c["code"]]
                for c in (r.get("code") or {}).get("coding") or ()
                if c.get("system") == "http://loinc.org" and c.get("code") in SAFETY_LABEL_BY_LOINC
            )
    # A series line opens with its label, then its unit in brackets when it has one ("eGFR (mL/min/1.73m2): ...").
    items += [("RENAL", f"analyte {label}", (f"{label}:", f"{label} (")) for label in sorted(analytes)]
    return items


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if HEADER.fullmatch(line):
            current = sections.setdefault(line[:-1], [])
        else:
            current.append(line)
    return sections


def missing_items(text: str, expected: list[Expected]) -> list[str]:
    """Each item needs a line of its own in its section, so two identical requests need two lines."""
    sections = _sections(text)
    missing: list[str] = []
    # Longest names first, so a short name cannot take the line a longer one alone can match.
    for section, what, names in sorted(expected, key=lambda e: -max(map(len, e[2]), default=0)):
        lines = next((body for title, body in sections.items() if title.startswith(section)), [])
        hit = next((i for i, line in enumerate(lines) if any(n in line for n in names)), None)
        if hit is None:
            missing.append(what)
        else:
            lines[hit] = ""  # taken
    return missing


def _samples_ms(work: Callable[[], object], repeat: int) -> list[float]:
    for _ in range(WARMUP):
        work()
    gc.collect()  # so the previous patient's garbage is not collected inside this one's samples
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        work()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return sorted(samples)


def measure(label: str, store: FhirStore, patient_id: str, repeat: int, budget: int) -> PatientRow:
    # As an EHR fills the chart-review service's prefetch: each template rendered, run on its FHIR server.
    context = {"patientId": patient_id}
    prefetch = {key: store.query(render_template(t, context), FHIR_BASE) for key, t in CHART_PREFETCH.items()}
    raw = orjson.dumps(prefetch)
    summary = render(build_context(prefetch, NOW).context, budget)
    parse = _samples_ms(lambda: orjson.loads(raw), repeat)
    build = _samples_ms(lambda: render(build_context(prefetch, NOW).context, budget), repeat)
    # Keys whose template is a top-N query ("_sort" and "_count") are complete after one page.
    paged = [
        k
        for k, v in prefetch.items()
        if v and any(x["relation"] == "next" for x in v.get("link", ())) and not is_top_n(CHART_PREFETCH[k])
    ]
    summary_bytes = len(summary.text.encode())
    expected = expected_safety(orjson.loads(raw))  # from the bytes an EHR would send, not our dict
    return PatientRow(
        patient=label,
        raw_bytes=len(raw),
        raw_tokens=estimate_tokens(raw.decode()),
        summary_bytes=summary_bytes,
        summary_tokens=summary.estimated_tokens,
        reduction=len(raw) / summary_bytes,
        parse_p50_ms=percentile(parse, 0.5),
        build_p50_ms=percentile(build, 0.5),
        build_p99_ms=percentile(build, 0.99),
        safety_expected=len(expected),
        safety_missing=missing_items(summary.text, expected),
        over_budget=summary.over_budget,
        paged_keys=paged,
    )


def report(rows: list[PatientRow], args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    lines = [
        f"context bench: {len(rows)} patients, CHART_PREFETCH, now {NOW:%Y-%m-%d}, budget {args.budget} "
        f"tokens, {args.repeat} runs after {WARMUP} warm-ups (p99 of {args.repeat} runs is near the max)",
        f"{'patient':<22} {'raw B':>8} {'raw tok':>8} {'sum B':>6} {'sum tok':>7} {'reduce':>7} "
        f"{'parse p50':>9} {'build p50':>9} {'build p99':>9} {'safety':>7}",
    ]
    for r in rows:
        safety = f"{r.safety_expected - len(r.safety_missing)}/{r.safety_expected}"
        lines.append(
            f"{r.patient[:22]:<22} {r.raw_bytes:>8} {r.raw_tokens:>8} {r.summary_bytes:>6} "
            f"{r.summary_tokens:>7} {r.reduction:>6.1f}x {r.parse_p50_ms:>9.2f} {r.build_p50_ms:>9.2f} "
            f"{r.build_p99_ms:>9.2f} {safety:>7}"
        )
    lines.append("(B: bytes; tok: estimate_tokens; times in ms; parse: orjson.loads of the raw prefetch)")
    lines += [f"missing  {r.patient}: {', '.join(r.safety_missing)}" for r in rows if r.safety_missing]
    if over := [r.patient for r in rows if r.over_budget]:
        lines.append(f"note: the safety set alone exceeds the budget for: {', '.join(over)}")
    paged = sorted({key for r in rows for key in r.paged_keys})
    if paged:
        counts = ", ".join(f"{k} ({sum(k in r.paged_keys for r in rows)})" for k in paged)
        lines.append(f"note: first pages only, as sent; the resolver would fetch the rest of: {counts}")
    low = min(rows, key=lambda r: r.reduction)
    leak = max(rows, key=lambda r: len(r.safety_missing))
    slow = max(rows, key=lambda r: r.build_p50_ms)
    leaker = leak.patient if leak.safety_missing else "none"
    dropped = f"{len(leak.safety_missing)} missing of {sum(r.safety_expected for r in rows)} checked"
    verdicts = [
        (REDUCTION, low.reduction >= TARGET_REDUCTION, low.patient, f"{low.reduction:.1f}x"),
        (NO_DROP, not leak.safety_missing, leaker, dropped),
        (BUILD_P50, slow.build_p50_ms <= TARGET_BUILD_P50_MS, slow.patient, f"{slow.build_p50_ms:.2f} ms"),
    ]
    lines += [f"{'PASS' if ok else 'FAIL'}  {t} (worst: {who}, {v})" for t, ok, who, v in verdicts]
    keys = ("target", "passed", "worst", "value")
    return lines, [dict(zip(keys, v, strict=True)) for v in verdicts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.context", description=__doc__)
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per patient (default 30)")
    parser.add_argument("--budget", type=int, default=2000, help="render budget in tokens (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the rows and verdicts here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.budget < 1:
        parser.error("--repeat and --budget must be at least 1")
    files = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
    if not files:
        sys.exit(f"bench.context: no Synthea bundles in {SYNTHEA}; the shared fixtures are needed")
    rows: list[PatientRow] = []
    for path in files:
        store = FhirStore.from_bundles([orjson.loads(path.read_bytes())])
        patients = store.search("Patient", [])
        name = re.sub(r"_[0-9a-f-]{36}$", "", path.stem)
        for patient in patients:
            label = name if len(patients) == 1 else f"{name}/{patient['id'][:8]}"
            print(f"measuring {label}", file=sys.stderr, flush=True)
            rows.append(measure(label, store, str(patient["id"]), args.repeat, args.budget))
    lines, verdicts = report(rows, args)
    print("\n".join(lines))
    if args.json:
        settings = {"now": NOW.isoformat(), "repeat": args.repeat, "warmup": WARMUP, "budget": args.budget}
        document = {**settings, "patients": [asdict(r) for r in rows], "verdicts": verdicts}
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

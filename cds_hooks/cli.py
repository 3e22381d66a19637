"""The `r1cds` command: `serve` (API), `worker`, `up` (whole stack), `fire`, `rules-report`, `replay`, `audit`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from cds_hooks.fire import (
    ORDER_HOOKS,
    FireError,
    Signer,
    build_context,
    build_prefetch,
    build_request,
    load_bundle,
    pick_patient,
    service_templates,
)
from cds_hooks.logs import configure_logging
from plugin.feedback_analytics import EXPORT_FIELDS
from plugin.fhir_search import FhirStore


def _uvicorn(app: Any, settings: Any) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # access lines carry query strings; the audit trail records calls instead
        log_config=None,  # uvicorn logs through our root handler (cds_hooks.logs), JSON included
    )


def _settings(args: argparse.Namespace) -> tuple[Any, Any]:
    from cds_hooks.settings import load_settings
    from workers.settings import load_review_settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    return settings, load_review_settings()


def _serve(args: argparse.Namespace) -> int:
    from cds_hooks.stack import build_app, metrics_dir

    settings, review = _settings(args)
    # uvicorn re-raises SIGTERM once it has shut down: as in `r1cds up`, it unwinds like Ctrl-C instead of
    # killing the process, so that the private metrics directory is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    # R1CDS_METRICS_DIR, shared with the workers; unset, a private directory for this process's own metrics.
    with metrics_dir(review, empty=False) as review, contextlib.suppress(KeyboardInterrupt):
        _uvicorn(build_app(settings, review), settings)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _worker(args: argparse.Namespace) -> int:
    from cds_hooks.settings import load_settings
    from cds_hooks.stack import run_worker
    from workers.settings import load_review_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return run_worker(load_review_settings(), args.pool)


def _up(args: argparse.Namespace) -> int:
    from cds_hooks.stack import StackError, run_up

    settings, review = _settings(args)
    try:
        return run_up(settings, review, _uvicorn)
    except StackError as exc:
        print(f"r1cds up: {exc}", file=sys.stderr)
        return 2


def _fire(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    bundle = load_bundle(args.bundle)
    store = FhirStore.from_bundles([bundle])
    patient_id = pick_patient(store, args.patient)
    draft_orders = orjson.loads(args.draft_orders.read_bytes()) if args.draft_orders else None
    context = build_context(args.hook, store, patient_id, args.user, args.encounter, draft_orders)
    with httpx.Client(timeout=args.timeout) as client:
        prefetch = None
        if args.prefetch != "none":
            templates = service_templates(client, base, args.service, args.hook)
            fhir_base = args.fhir_server or "https://bundle.r1cds-fire.invalid/fhir"
            skip = args.omit or ()
            prefetch = build_prefetch(templates, context, store, fhir_base, skip=skip)
        request = build_request(args.hook, context, prefetch, args.fhir_server, args.access_token, patient_id)
        endpoint = f"{base}/cds-services/{args.service}"
        headers = {"Content-Type": "application/json"}
        if args.key:
            signer = Signer.from_file(args.key, issuer=args.iss, kid=args.kid, jku=args.jku)
            headers["Authorization"] = f"Bearer {signer.token(args.aud or endpoint)}"
        response = client.post(endpoint, content=orjson.dumps(request), headers=headers)
    print(f"HTTP {response.status_code}", file=sys.stderr)
    if response.content:
        try:
            print(orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode())
        except ValueError:
            print(response.text)
    return 0 if response.status_code == 200 else 1


def _rules_report(args: argparse.Namespace) -> int:
    from cds_hooks.rules_report import format_rows, report
    from plugin.catalog import shipped_registry

    folder: Path = args.bundles
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else [folder]
    if not paths:
        raise FireError(f"no FHIR Bundle files in {folder}")
    drafts = orjson.loads(args.draft_orders.read_bytes()) if args.draft_orders else None
    registry = shipped_registry(clock=lambda: args.as_of) if args.as_of else shipped_registry()
    rows = report(paths, registry, drafts)
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_rows(rows))
    return 0


def _replay(args: argparse.Namespace) -> int:
    # The console command is the composition root, the one place where edges are wired together
    # (tests/unit/test_layering.py names it as the exception); the replay logic itself stays edge-free.
    from cds_hooks.recorded_replay import replay
    from inference import recorded

    try:
        samples = recorded.load_samples(args.model_output)
        hook_context = orjson.loads(args.context.read_bytes()) if args.context else None
        drafts = orjson.loads(args.draft_orders.read_bytes()) if args.draft_orders else None
    except (OSError, ValueError) as exc:
        raise FireError(str(exc)) from exc
    if hook_context is not None and not isinstance(hook_context, dict):
        raise FireError("the --context file must hold a JSON object")
    document = replay(
        args.bundle,
        args.hook,
        samples,
        recorded.RecordedModel(samples, args.model),
        recorded.PROMPTS,
        recorded.PARSER,
        args.as_of or datetime.now(UTC),
        model_id=args.model,
        service_id=args.service,
        hook_context=hook_context,
        patient_id=args.patient,
        draft_orders=drafts,
    )
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    return 0


def _audit_url(args: argparse.Namespace) -> str:
    from workers.audit_store import database_url

    if args.database_url:
        return str(args.database_url)
    from pydantic import ValidationError

    from workers.settings import load_review_settings

    try:
        return database_url(load_review_settings().audit_database_url)
    except ValidationError as exc:
        raise FireError(f"settings: {exc}") from exc


def _audit_store(args: argparse.Namespace) -> Any:
    """The store behind the configured URL, without creating a database that is not there."""
    from workers.audit_store import AuditStore, sqlite_path

    url = _audit_url(args)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FireError(f"no audit database at {path}")
    store = AuditStore(url)
    if not store.has_schema():
        store.close()
        raise FireError("the audit database has no audit tables yet: run `r1cds audit migrate`")
    return store


def _audit_migrate(args: argparse.Namespace) -> int:
    from workers.audit_store import migrate

    migrate(_audit_url(args))
    print("audit database at the newest schema")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    with _audit_store(args) as store:
        result = store.verify()
    if result.broken is not None:
        print(
            f"audit chain BROKEN at {result.broken.describe()}; {result.count} record(s) before it verify",
            file=sys.stderr,
        )
        return 1
    print(f"audit chain intact: {result.count} record(s), head seq {result.head_seq} hash {result.head_hash}")
    return 0


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not YYYY-MM-DD[THH:MM]: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _audit_export(args: argparse.Namespace) -> int:
    from plugin.audit import fhir_export

    count = 0
    with _audit_store(args) as store:
        out = args.out.open("wb") if args.out else sys.stdout.buffer
        try:
            for resource in fhir_export(store.records(args.since)):
                out.write(orjson.dumps(resource) + b"\n")
                count += 1
        finally:
            if args.out:
                out.close()
            else:
                out.flush()
    print(f"exported {count} resource(s)", file=sys.stderr)
    return 0


def _write_feedback_export(path: Path, rows: Sequence[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        if path.suffix != ".csv":
            out.writelines(orjson.dumps(row).decode() + "\n" for row in rows)
            return
        writer = csv.DictWriter(out, fieldnames=list(EXPORT_FIELDS))
        writer.writeheader()
        for row in rows:
            suggestions = row["accepted_suggestions"]
            joined = " ".join(str(s) for s in suggestions) if isinstance(suggestions, list) else ""
            writer.writerow({**row, "accepted_suggestions": joined})


def _audit_feedback(args: argparse.Namespace) -> int:
    from plugin.audit import parse_record
    from plugin.feedback_analytics import analyse

    with _audit_store(args) as store:
        analytics = analyse((parse_record(r.body) for r in store.records()), since=args.since)
    if args.export is not None:
        events = [event.as_dict() for event in analytics.export()]
        _write_feedback_export(args.export, events)
        print(f"exported {len(events)} feedback event(s) to {args.export}", file=sys.stderr)
    table = analytics.rates()
    if args.format == "json":
        print(orjson.dumps([row.as_dict() for row in table], option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"{'by':<8} {'key':<40} {'issued':>6} {'fed back':>8} {'accepted':>8} {'overridden':>10} {'accept %':>8}"
    )
    for row in table:
        rate = "-" if row.acceptance_rate is None else f"{100 * row.acceptance_rate:.0f}%"
        print(
            f"{row.grouping:<8} {row.key:<40} {row.cards_issued:>6} {row.cards_with_feedback:>8} "
            f"{row.accepted:>8} {row.overridden:>10} {rate:>8}"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="r1cds", description="R1 CDS: CDS Hooks 2.0 decision support")
    commands = top.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the CDS Hooks API (settings from R1CDS_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker", help="run a review worker (Celery) on every queue, most urgent first"
    )
    worker.add_argument(
        "--pool", choices=("prefork", "threads", "solo"), help="Celery pool (default prefork)"
    )
    worker.set_defaults(run=_worker)

    up = commands.add_parser(
        "up", help="run the whole stack on this machine: redis-server, model server, worker and API"
    )
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.set_defaults(run=_up)

    fire = commands.add_parser("fire", help="send one hook call built from a FHIR Bundle file")
    fire.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the CDS service")
    fire.add_argument("--service", required=True, help="service id, e.g. r1-chart-review")
    fire.add_argument("--hook", default="patient-view")
    fire.add_argument("--bundle", type=Path, required=True, help="FHIR R4 Bundle holding the patient")
    fire.add_argument("--patient", help="Patient id in the bundle (default: the only Patient)")
    fire.add_argument("--user", default="Practitioner/r1cds-fire", help="context.userId")
    fire.add_argument("--encounter", help="context.encounterId (default for encounter hooks: latest)")
    fire.add_argument(
        "--draft-orders",
        type=Path,
        help=f"Bundle or resource of draft orders ({', '.join(sorted(ORDER_HOOKS))})",
    )
    fire.add_argument(
        "--prefetch",
        choices=("all", "none"),
        default="all",
        help="'none' leaves every key out so the service fetches back from --fhir-server",
    )
    fire.add_argument("--omit", action="append", help="leave this prefetch key out (repeatable)")
    fire.add_argument("--fhir-server", help="fhirServer to send, for fetch-back")
    fire.add_argument("--access-token", help="bearer token for fhirAuthorization")
    fire.add_argument(
        "--key", type=Path, help="private key (JWK JSON or PEM) to sign the call, ES384 or RS384"
    )
    fire.add_argument("--iss", default="https://r1cds-fire.invalid", help="JWT issuer")
    fire.add_argument("--kid", help="JWT kid (default: the JWK's kid or thumbprint)")
    fire.add_argument("--jku", help="JWT jku header")
    fire.add_argument("--aud", help="JWT audience (default: the service endpoint)")
    fire.add_argument("--timeout", type=float, default=30.0)
    fire.set_defaults(run=_fire)

    rules = commands.add_parser(
        "rules-report", help="list the rule cards the shipped services give per Bundle"
    )
    rules.add_argument(
        "bundles",
        type=Path,
        nargs="?",
        default=Path("../shared/fixtures/synthea"),
        help="a Bundle file or a folder",
    )
    rules.add_argument(
        "--draft-orders", type=Path, help="Bundle or resource of draft orders for the order hooks"
    )
    rules.add_argument("--json", action="store_true", help="JSON rows instead of a table")
    rules.add_argument(
        "--as-of",
        type=lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC),
        help="evaluate as if the hook fired on this date (YYYY-MM-DD); default: now",
    )
    rules.set_defaults(run=_rules_report)

    replay = commands.add_parser(
        "replay", help="govern recorded model output for a hook built from a FHIR Bundle; print cards and log"
    )
    replay.add_argument("--bundle", type=Path, required=True, help="FHIR R4 Bundle holding the patient")
    replay.add_argument("--hook", required=True, help="patient-view, order-sign, encounter-discharge, ...")
    replay.add_argument("--service", help="AI review service id (default: the one serving --hook)")
    replay.add_argument("--context", type=Path, help="JSON hook context to use instead of building one")
    replay.add_argument(
        "--model-output",
        type=Path,
        action="append",
        required=True,
        help='one recorded sample: the answer text, or {"content": ..., "reasoning": ...} (repeatable)',
    )
    replay.add_argument("--model", default="recorded", help="model id the recording came from")
    replay.add_argument("--patient", help="Patient id in the bundle (default: the only Patient)")
    replay.add_argument(
        "--as-of",
        type=lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC),
        help="build the context as if the hook fired on this date (YYYY-MM-DD); default: now",
    )
    replay.add_argument(
        "--draft-orders", type=Path, help="Bundle or resource of draft orders for the order hooks"
    )
    replay.set_defaults(run=_replay)

    audit = commands.add_parser("audit", help="the audit chain: verify it, export it as FHIR, migrate it")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url", help="audit database URL (default: R1CDS_AUDIT_DATABASE_URL or the data-dir file)"
    )
    verify = audit_commands.add_parser(
        "verify",
        parents=[database],
        help="check every link of the chain; exit 1 naming the first broken record",
    )
    verify.set_defaults(run=_audit_verify)
    export = audit_commands.add_parser(
        "export",
        parents=[database],
        help="NDJSON of FHIR R4 AuditEvent (per hook call) and Provenance (per AI card) resources",
    )
    export.add_argument(
        "--since",
        type=_since,
        required=True,
        help="records at or after this time, YYYY-MM-DD[THH:MM] (UTC unless an offset is given)",
    )
    export.add_argument("--out", type=Path, help="write to this file instead of standard output")
    export.set_defaults(run=_audit_export)
    feedback = audit_commands.add_parser(
        "feedback",
        parents=[database],
        help="acceptance and override rates per service, rule and AI suggestion kind; --export the events",
    )
    feedback.add_argument("--since", type=_since, help="count calls and feedback at or after this time")
    feedback.add_argument("--format", choices=("table", "json"), default="table")
    feedback.add_argument(
        "--export",
        type=Path,
        help="write every feedback event (intervention, action taken, feedback, user, date, location): "
        "CSV when the name ends in .csv, else NDJSON",
    )
    feedback.set_defaults(run=_audit_feedback)
    migrate = audit_commands.add_parser(
        "migrate",
        parents=[database],
        help="create or upgrade the audit tables (the services do this at start)",
    )
    migrate.set_defaults(run=_audit_migrate)

    from evals.cli import add_commands as add_eval_commands

    add_eval_commands(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except FireError as exc:
        print(f"r1cds: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"r1cds: could not reach the service: {type(exc).__name__}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())

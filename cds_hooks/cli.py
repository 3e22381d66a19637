"""The `r1cds` command: `serve` (API), `worker`, `up` (whole stack), `fire`, `rules-report`, `replay`, `audit`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import re
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import orjson
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

from cds_hooks.fire import (
    ORDER_HOOKS,
    FireError,
    ServiceError,
    Signer,
    build_context,
    build_prefetch,
    build_request,
    load_bundle,
    load_draft_orders,
    origin,
    os_reason,
    pick_patient,
    read_json,
    service_templates,
    service_url,
    transport_reason,
)
from cds_hooks.logs import configure_logging
from plugin.feedback_analytics import EXPORT_FIELDS
from plugin.fhir_search import FhirStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from plugin.model_port import Sample


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
    configure_logging(settings.log_level, settings.log_format, settings.log_repeat_s)
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
    configure_logging(settings.log_level, settings.log_format, settings.log_repeat_s)
    return run_worker(load_review_settings(), args.pool)


def _up(args: argparse.Namespace) -> int:
    from cds_hooks.stack import StackError, run_up

    settings, review = _settings(args)
    try:
        return run_up(settings, review, _uvicorn)
    except StackError as exc:
        raise FireError(str(exc)) from exc


def _signer(args: argparse.Namespace) -> Signer | None:
    if not args.key:
        return None
    from joserfc.errors import JoseError

    try:
        return Signer.from_file(args.key, issuer=args.iss, kid=args.kid, jku=args.jku)
    except OSError as exc:
        raise FireError(f"cannot read the --key file {args.key}: {os_reason(exc)}") from None
    except (ValueError, TypeError, KeyError, JoseError):
        # The key's own text is never echoed: it is a private key.
        raise FireError(f"{args.key} is not a private key (JWK JSON or PEM, EC or RSA)") from None


def _fire(args: argparse.Namespace) -> int:
    # Everything given is checked before the first request, so that a typo costs no round trip.
    base = service_url(args.url)
    if args.fhir_server:
        service_url(args.fhir_server, "--fhir-server")
    bundle = load_bundle(args.bundle, "the --bundle file")
    store = FhirStore.from_bundles([bundle])
    patient_id = pick_patient(store, args.patient)
    draft_orders = load_draft_orders(args.draft_orders) if args.draft_orders else None
    context = build_context(args.hook, store, patient_id, args.user, args.encounter, draft_orders)
    signer = _signer(args)
    try:
        with httpx.Client(timeout=args.timeout) as client:
            prefetch = None
            if args.prefetch != "none":
                templates = service_templates(client, base, args.service, args.hook)
                fhir_base = args.fhir_server or "https://bundle.r1cds-fire.invalid/fhir"
                skip = args.omit or ()
                prefetch = build_prefetch(templates, context, store, fhir_base, skip=skip)
            request = build_request(
                args.hook, context, prefetch, args.fhir_server, args.access_token, patient_id
            )
            endpoint = f"{base}/cds-services/{args.service}"
            headers = {"Content-Type": "application/json"}
            if signer is not None:
                headers["Authorization"] = f"Bearer {signer.token(args.aud or endpoint)}"
            response = client.post(endpoint, content=orjson.dumps(request), headers=headers)
    except httpx.TransportError as exc:
        reason = transport_reason(exc, args.timeout)
        raise ServiceError(f"could not reach the CDS service at {origin(base)}: {reason}") from None
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
    drafts = load_draft_orders(args.draft_orders) if args.draft_orders else None
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

    samples = tuple(_recorded_sample(recorded.load_sample, path) for path in args.model_output)
    hook_context = read_json(args.context, "the --context file") if args.context else None
    drafts = load_draft_orders(args.draft_orders) if args.draft_orders else None
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


def _recorded_sample(load: Callable[[Path], Sample], path: Path) -> Sample:
    try:
        return load(path)
    except OSError as exc:
        raise FireError(f"cannot read the --model-output file {path}: {os_reason(exc)}") from None
    except ValueError as exc:  # a malformed sample document, or a file that is not UTF-8 text
        text = str(exc)
        raise FireError(text if text.startswith(str(path)) else f"{path}: {text}") from None


def _audit_url(args: argparse.Namespace) -> str:
    from workers.audit_store import database_url

    if args.database_url:
        return str(args.database_url)
    from workers.settings import load_review_settings

    return database_url(load_review_settings().audit_database_url)


def _audit_store(args: argparse.Namespace) -> Any:
    """The store behind the configured URL, without creating a database that is not there."""
    from workers.audit_store import AuditStore, sqlite_path

    url = _audit_url(args)
    with _audit_database():
        path = sqlite_path(url)
        if path is not None and not path.is_file():
            raise FireError(f"no audit database at {path}")
        store = AuditStore(url)
        try:
            schema = store.has_schema()
        except Exception:
            store.close()
            raise
    if not schema:
        store.close()
        raise FireError("the audit database has no audit tables yet: run `r1cds audit migrate`")
    return store


@contextlib.contextmanager
def _audit_database() -> Any:
    """SQLAlchemy's and the store's refusals as one-line errors that never repeat the URL (it may hold a
    password)."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    from workers.audit_store import AuditStoreError

    try:
        yield
    except ArgumentError:
        raise FireError(
            "the audit database URL (--database-url or R1CDS_AUDIT_DATABASE_URL) is not a URL"
        ) from None
    except AuditStoreError as exc:
        raise FireError(str(exc)) from None
    except OperationalError as exc:
        lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise ServiceError(f"cannot open the audit database: {reason}") from None


def _audit_migrate(args: argparse.Namespace) -> int:
    from workers.audit_store import migrate

    url = _audit_url(args)
    with _audit_database():
        migrate(url)
    print("audit database at the newest schema")
    return 0


def _anchor_path(args: argparse.Namespace) -> tuple[Path | None, Any]:
    """The anchor file (--anchor, else R1CDS_AUDIT_ANCHOR_PATH; None: neither) and the key (a SecretStr)."""
    from workers.settings import load_review_settings

    settings = load_review_settings()
    configured = Path(settings.audit_anchor_path) if settings.audit_anchor_path else None
    return (args.anchor or configured), settings.audit_anchor_key


def _audit_verify(args: argparse.Namespace) -> int:
    """The chain's links, then the anchor's checkpoints: without them a truncated chain still links up."""
    from workers.audit_store import AnchorCheck, check_anchor

    anchor, key = _anchor_path(args)
    if anchor is not None and key is None:
        raise FireError(f"checking the anchor file {anchor} needs its key: set R1CDS_AUDIT_ANCHOR_KEY")
    checked: AnchorCheck | None = None
    missing = False
    with _audit_store(args) as store:
        result = store.verify()
        if anchor is not None:
            try:
                checked = check_anchor(store, anchor, key)
            except FileNotFoundError:
                missing = True
            except OSError as exc:
                raise FireError(f"cannot read the anchor file {anchor}: {os_reason(exc)}") from None
    failed = result.broken is not None
    if result.broken is not None:
        print(
            f"audit chain BROKEN at {result.broken.describe()}; {result.count} record(s) before it verify",
            file=sys.stderr,
        )
    if missing:
        print(
            f"audit anchor FAILED: no anchor file at {anchor}; truncation cannot be checked", file=sys.stderr
        )
        failed = True
    if checked is not None:
        for failure in checked.failures:
            print(f"audit anchor FAILED at {failure}", file=sys.stderr)
        failed = failed or not checked.ok
        if checked.torn:
            print(
                f"audit anchor: the last line of {anchor} was cut short and is not checked", file=sys.stderr
            )
    if failed:
        return 1
    if anchor is None:
        truncation = "truncation NOT checked: no anchor file (R1CDS_AUDIT_ANCHOR_PATH or --anchor)"
    elif checked is None or checked.newest is None:
        truncation = f"truncation NOT checked: the anchor file {anchor} holds no checkpoint yet"
    else:
        newest = checked.newest
        truncation = f"anchored: {checked.checkpoints} checkpoint(s) hold, the newest at seq {newest.seq}"
        if result.head_seq > newest.seq:
            truncation += f", {result.head_seq - newest.seq} record(s) after it not yet anchored"
    print(
        f"audit chain intact: {result.count} record(s), head seq {result.head_seq} hash {result.head_hash}; "
        + truncation
    )
    unchecked = checked is None or checked.newest is None
    if args.require_anchor and unchecked:
        print("audit anchor FAILED: --require-anchor, and no checkpoint was checked", file=sys.stderr)
        return 1
    return 0


def _audit_anchors(args: argparse.Namespace) -> int:
    """The anchor file's checkpoints as NDJSON (to keep a copy elsewhere, or compare with one)."""
    from workers.audit_store import read_anchor

    anchor, _ = _anchor_path(args)
    if anchor is None:
        raise FireError("no anchor file: pass --anchor or set R1CDS_AUDIT_ANCHOR_PATH")
    try:
        lines, torn = read_anchor(anchor)
    except OSError as exc:
        raise FireError(f"cannot read the anchor file {anchor}: {os_reason(exc)}") from None
    checkpoints = [line.checkpoint for line in lines if line.checkpoint is not None]
    body = b"".join(checkpoint.line() for checkpoint in checkpoints)
    if args.out:
        args.out.write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    print(f"exported {len(checkpoints)} checkpoint(s)", file=sys.stderr)
    bad = [line.number for line in lines if line.checkpoint is None]
    if bad or torn:
        where = ", ".join(map(str, bad)) + (" and a last line cut short" if torn else "")
        print(f"not exported: anchor line(s) {where.lstrip(', ')} (not checkpoints)", file=sys.stderr)
    return 1 if bad else 0


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not YYYY-MM-DD[THH:MM]: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _audit_export(args: argparse.Namespace) -> int:
    from plugin.audit import fhir_export
    from plugin.model_card import ABOUT_JSON_PATH

    count = 0
    with _audit_store(args) as store:
        out = args.out.open("wb") if args.out else sys.stdout.buffer
        try:
            card_url = (
                f"{args.public_base_url.rstrip('/')}{ABOUT_JSON_PATH}" if args.public_base_url else None
            )
            for resource in fhir_export(store.records(args.since), model_card_url=card_url):
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
    status = analytics.status_cards()
    if status:
        # On stderr, so that the table and the JSON stay the interventions alone.
        by_code = ", ".join(f"{group.code} {group.cards_shown}" for group in status if group.cards_shown)
        shown = sum(group.cards_shown for group in status)
        set_aside = sum(group.feedback_events for group in status)
        print(
            f"not counted: {shown} AI review status card(s) shown"
            + (f" ({by_code})" if by_code else "")
            + f", {set_aside} feedback event(s) on them set aside",
            file=sys.stderr,
        )
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


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        # Sub-parsers are made with the parent's class, so `r1cds fire` and `r1cds eval qa` say this too.
        self.exit(2, f"r1cds: error: {message} (see `{self.prog} --help`)\n")


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return port


def _as_of(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not YYYY-MM-DD: {text!r}") from None


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="r1cds", description="R1 CDS: CDS Hooks 2.0 decision support")
    commands = top.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the CDS Hooks API (settings from R1CDS_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=_port)
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
    up.add_argument("--port", type=_port)
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
        type=_as_of,
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
        type=_as_of,
        help="build the context as if the hook fired on this date (YYYY-MM-DD); default: now",
    )
    replay.add_argument(
        "--draft-orders", type=Path, help="Bundle or resource of draft orders for the order hooks"
    )
    replay.set_defaults(run=_replay)

    audit = commands.add_parser("audit", help="the audit chain: verify it, export it as FHIR, migrate it")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    database = _Parser(add_help=False)
    database.add_argument(
        "--database-url", help="audit database URL (default: R1CDS_AUDIT_DATABASE_URL or the data-dir file)"
    )
    anchor = _Parser(add_help=False)
    anchor.add_argument(
        "--anchor",
        type=Path,
        help="the anchor file of signed checkpoints (default: R1CDS_AUDIT_ANCHOR_PATH)",
    )
    verify = audit_commands.add_parser(
        "verify",
        parents=[database, anchor],
        help="check every link of the chain, and the anchor's checkpoints against it (truncation); "
        "exit 1 naming the first broken record or failed checkpoint",
    )
    verify.add_argument(
        "--require-anchor",
        action="store_true",
        help="exit 1 too when no checkpoint was checked (no anchor file configured, or none in it yet)",
    )
    verify.set_defaults(run=_audit_verify)
    anchors = audit_commands.add_parser(
        "anchors",
        parents=[anchor],
        help="NDJSON of the anchor file's signed checkpoints (seq, hash, time, signature)",
    )
    anchors.add_argument("--out", type=Path, help="write to this file instead of standard output")
    anchors.set_defaults(run=_audit_anchors)
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
    export.add_argument(
        "--public-base-url",
        help="the deployment's R1CDS_PUBLIC_BASE_URL: the Provenance's model card then links to its /about.json",
    )
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


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _settings_classes() -> set[str]:
    names: set[str] = set()
    todo: list[type[BaseSettings]] = [BaseSettings]
    while todo:
        for subclass in todo.pop().__subclasses__():
            names.add(subclass.__name__)
            todo.append(subclass)
    return names


def settings_problem(exc: ValidationError) -> str:
    """Which R1CDS_ variable is wrong and why, on one line, never repeating the value (it may be a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        location = error["loc"]
        if not location:
            problems.append(message)  # a check across variables, whose message names them
            continue
        inner = ".".join(str(part) for part in location[1:])
        problems.append(f"R1CDS_{str(location[0]).upper()}{f' ({inner})' if inner else ''}: {message}")
    return "invalid R1CDS_* settings: " + "; ".join(problems)


def user_error(exc: Exception) -> tuple[str, int] | None:
    """The one-line message and exit status for a failure the user can cause and fix; None for a bug."""
    if isinstance(exc, FireError):
        cause = exc.__cause__
        if isinstance(cause, ValidationError) and cause.title in _settings_classes():
            return settings_problem(cause), exc.exit_code  # cds_hooks.recorded_replay wraps these
        return _one_line(str(exc)), exc.exit_code
    if isinstance(exc, ValidationError):
        return (settings_problem(exc), 2) if exc.title in _settings_classes() else None
    if isinstance(exc, SettingsError):
        # pydantic-settings names the field, not the variable: 'error parsing value for field "tenants" ...'
        field = re.search(r'field "([^"]+)"', str(exc))
        if field is None:
            return f"invalid R1CDS_* settings: {_one_line(str(exc))}", 2
        return f"invalid R1CDS_* settings: R1CDS_{field.group(1).upper()} is not valid JSON", 2
    if isinstance(exc, httpx.TransportError):
        try:
            where = origin(str(exc.request.url))
        except RuntimeError:  # raised without a request
            where = "the server"
        return f"could not reach {where}: {transport_reason(exc)}", 1
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {os_reason(exc)}", 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except Exception as exc:
        problem = user_error(exc)
        if problem is None:
            raise  # a bug: its traceback is what a report needs
        message, status = problem
        print(f"r1cds: error: {message}", file=sys.stderr)
        return status
    return code


if __name__ == "__main__":
    raise SystemExit(main())

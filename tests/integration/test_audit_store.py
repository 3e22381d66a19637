"""The audit store on real databases: concurrent writer processes, tampering, `r1cds audit`, migrations.

SQLite always (a file in tmp_path). PostgreSQL when Debian's server is installed
(/usr/lib/postgresql/*/bin): a throwaway cluster in a private temp dir on a free loopback port, run as the
`postgres` user when the tests run as root (the server refuses root), stopped and removed afterwards.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pwd
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.provenance import Provenance
from sqlalchemy.exc import OperationalError

from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin.audit import (
    AiRunRecord,
    AuditRecord,
    CardFeedbackRecord,
    HookCallRecord,
    ai_run_record,
    feedback_audit_record,
)
from plugin.cards import Coding
from plugin.feedback import FeedbackRecord
from plugin.governance import GovernancePolicy
from plugin.model_port import SamplingParameters, ScriptedModel
from plugin.review import ReviewService
from tests.support import governance_corpus as corpus
from tests.support.charts import NOW
from workers.audit_store import AuditStore, migrate

pytestmark = pytest.mark.integration

R1CDS = [sys.executable, "-m", "cds_hooks.cli"]
SERVICE = "r1-chart-review"
FP = "5e" * 32
WRITERS = 4
PER_WRITER = 40


def call(n: int, writer: int = 0, **changes: Any) -> HookCallRecord:
    fields: dict[str, Any] = {
        "at": NOW + timedelta(seconds=n),
        "hook_instance": str(uuid.uuid4()),
        "service_id": SERVICE,
        "hook": "patient-view",
        "tenant": f"ehr-{writer}",
        "fingerprint": FP,
        "timings_ms": {"total": 12.5 + abs(n) % 100},
        "http_status": 200,
        "outcome": "ai-pending",
        "card_uuids": (str(uuid.uuid4()),),
    }
    return HookCallRecord(**(fields | changes))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "audit" / "audit.sqlite3"
    return sqlite_url(path), path


def r1cds(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "R1CDS_AUDIT_DATABASE_URL": url}
    return subprocess.run(
        [*R1CDS, "audit", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def filled(url: str, count: int) -> AuditStore:
    migrate(url)
    store = AuditStore(url)
    for n in range(count):
        store.write(call(n))
    return store


# --- several writer processes ------------------------------------------------------------------------------


def _writer(url: str, writer: int, count: int, barrier: Any, results: Any) -> None:
    """One process: migrate (all at once, on a fresh database), wait for the others, then append."""
    migrate(url)
    barrier.wait(timeout=120)
    with AuditStore(url) as store:
        seqs = [store.write(call(n, writer)).seq for n in range(count)]
    results.put((writer, seqs))


def run_writers(url: str, writers: int = WRITERS, count: int = PER_WRITER) -> dict[int, list[int]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, w, count, barrier, results), name=f"audit-writer-{w}")
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    try:
        found = dict(results.get(timeout=180) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():  # only ours, by object: never a broad kill
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * writers
    return found


def assert_one_chain(url: str, seqs: dict[int, list[int]], writers: int, count: int) -> None:
    every = sorted(s for per in seqs.values() for s in per)
    assert every == list(range(1, writers * count + 1))  # no gap, no position taken twice
    assert all(per == sorted(per) for per in seqs.values())
    with AuditStore(url) as store:
        result = store.verify()
        assert result.intact, result.broken
        assert (result.count, result.head_seq) == (writers * count, writers * count)
        tenants = [json.loads(s.body)["tenant"] for s in store.records()]
    assert sorted(set(tenants)) == [f"ehr-{w}" for w in range(writers)]


def test_concurrent_writer_processes_make_one_unbroken_chain(db: tuple[str, Path]) -> None:
    url, _ = db
    seqs = run_writers(url)
    assert_one_chain(url, seqs, WRITERS, PER_WRITER)


async def test_async_appends_from_many_tasks_make_one_chain(db: tuple[str, Path]) -> None:
    """The AuditSink port: appends run on threads, so an event loop never waits on the write lock."""
    import asyncio

    url, _ = db
    migrate(url)
    with AuditStore(url) as store:
        await asyncio.gather(*(store.append(call(n)) for n in range(60)))
        result = store.verify()
    assert result.intact and result.count == 60


# --- migrations and the append-only schema -----------------------------------------------------------------


def test_migrations_are_idempotent_and_keep_the_records(db: tuple[str, Path]) -> None:
    url, path = db
    store = filled(url, 3)
    before = store.head()
    store.close()
    migrate(url)
    migrate(url)
    with sqlite3.connect(path) as connection:
        versions = connection.execute("SELECT version_num FROM r1cds_audit_alembic_version").fetchall()
        heads = connection.execute("SELECT id, seq FROM audit_chain_head").fetchall()
        mode = connection.execute("PRAGMA journal_mode").fetchone()
    assert versions == [("0002",)]
    assert heads == [(1, 3)]
    assert mode == ("wal",)
    with AuditStore(url) as store:
        assert store.head() == before
        assert store.verify().intact
    assert r1cds(url, "migrate").returncode == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET body = '{}' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 3",
        "DELETE FROM audit_chain_head",
        "UPDATE audit_chain_head SET seq = 1",
        "INSERT INTO audit_records (seq, at, kind, prev_hash, hash, body) VALUES (9, 'x', 'x', 'x', 'y', '{}')",
    ],
)
def test_the_schema_refuses_changes_the_store_never_makes(db: tuple[str, Path], statement: str) -> None:
    url, path = db
    filled(url, 3).close()
    connection = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|chain head"):
            connection.execute(statement)
    finally:
        connection.close()


# --- tampering and `r1cds audit verify` ---------------------------------------------------------------------

DROP_TRIGGERS = (
    "DROP TRIGGER audit_records_no_update",
    "DROP TRIGGER audit_records_no_delete",
    "DROP TRIGGER audit_chain_head_advance",
)


def tamper(path: Path, *statements: str) -> None:
    """Raw SQL as someone with write access to the file would run it, triggers dropped first."""
    connection = sqlite3.connect(path)
    try:
        for statement in (*DROP_TRIGGERS, *statements):
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def test_verify_reports_an_intact_chain_in_one_line(db: tuple[str, Path]) -> None:
    url, _ = db
    filled(url, 10).close()
    result = r1cds(url, "verify")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("audit chain intact: 10 record(s), head seq 10 hash ")


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        (
            ["UPDATE audit_records SET body = replace(body, 'ai-pending', 'ai-ready') WHERE seq = 5"],
            "record seq 5 (hash)",
        ),
        (["DELETE FROM audit_records WHERE seq = 5"], "record seq 6 (prev-hash)"),
        (
            [
                "DELETE FROM audit_records WHERE seq = 5",
                "UPDATE audit_records SET seq = seq - 1 WHERE seq > 5",
            ],
            "record seq 5 (prev-hash)",
        ),
        (["DELETE FROM audit_records WHERE seq >= 9"], "record seq 9 (head)"),
        (
            ["UPDATE audit_records SET at = '2020-01-01T00:00:00.000000Z' WHERE seq = 7"],
            "record seq 7 (index)",
        ),
        (["UPDATE audit_records SET kind = 'feedback' WHERE seq = 2"], "record seq 2 (index)"),
    ],
    ids=["edit", "delete", "delete-renumber", "truncate", "time-column", "kind-column"],
)
def test_verify_names_the_first_broken_record(
    db: tuple[str, Path], statements: list[str], named: str
) -> None:
    url, path = db
    filled(url, 10).close()
    tamper(path, *statements)
    result = r1cds(url, "verify")
    assert result.returncode == 1, result.stdout
    assert named in result.stderr
    assert "BROKEN" in result.stderr


def test_verify_without_a_database_says_so(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "absent.sqlite3")
    result = r1cds(url, "verify")
    assert result.returncode == 2
    assert "no audit database" in result.stderr
    assert not (tmp_path / "absent.sqlite3").exists()


# --- export -------------------------------------------------------------------------------------------------


async def governed_run() -> AiRunRecord:
    model = ScriptedModel([ScriptedModel.answer(*[json.dumps(corpus.answer(corpus.clean_inr()))] * 3)])
    service = ReviewService(
        model, build_prompt, parse_sample, corpus.knowledge(), GovernancePolicy(), samples=3
    )
    outcome = await service.review(SERVICE, corpus.built(), corpus.PATIENT)
    return ai_run_record(
        outcome,
        fingerprint=FP,
        knowledge_base_version=corpus.knowledge().version,
        sampling=SamplingParameters(n=3),
        at=NOW + timedelta(minutes=1),
    )


def feedback_on(card: str) -> CardFeedbackRecord:
    item = FeedbackRecord(
        service_id=SERVICE,
        card_uuid=card,
        outcome="overridden",
        outcome_timestamp="2026-11-25T12:10:00Z",
        override_reason=Coding("not-relevant", "urn:r1cds:override-reason"),
    )
    return feedback_audit_record(item, at=NOW + timedelta(minutes=10), user="Practitioner/x")


async def test_export_writes_ndjson_that_validates_line_by_line(db: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = db
    run = await governed_run()
    assert len(run.card_uuids) == 1
    earlier: list[AuditRecord] = [
        call(n, outcome="rules-only") for n in range(-7200, -7197)
    ]  # two hours before
    window: list[AuditRecord] = [
        call(0),
        run,
        call(120, outcome="ai-ready", card_uuids=run.card_uuids),
        feedback_on(run.card_uuids[0]),
        call(130, http_status=412, outcome="error", card_uuids=()),
    ]
    migrate(url)
    with AuditStore(url) as store:
        store.write_many(earlier)
        for record in window:
            store.write(record)
    out = tmp_path / "export.ndjson"
    result = r1cds(url, "export", "--since", "2026-11-25T12:00", "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_bytes().splitlines()
    resources = [json.loads(line) for line in lines]
    assert [r["resourceType"] for r in resources] == ["AuditEvent", "Provenance", "AuditEvent", "AuditEvent"]
    for resource in resources:
        model = AuditEvent if resource["resourceType"] == "AuditEvent" else Provenance
        model.model_validate(resource)
    assert len({r["id"] for r in resources}) == len(resources)
    assert resources[1]["target"][0]["identifier"]["value"] == f"urn:uuid:{run.card_uuids[0]}"
    assert [r["outcome"] for r in resources if r["resourceType"] == "AuditEvent"] == ["0", "0", "8"]
    assert "exported 4 resource(s)" in result.stderr
    # Standard output by default; an earlier --since brings the earlier calls in; ids are stable.
    everything = r1cds(url, "export", "--since", "2026-11-25")
    assert everything.returncode == 0
    again = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(again) == 7
    assert [r["id"] for r in again[3:]] == [r["id"] for r in resources]


def test_export_refuses_a_malformed_since(db: tuple[str, Path]) -> None:
    url, _ = db
    filled(url, 1).close()
    result = r1cds(url, "export", "--since", "last tuesday")
    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_postgresql() -> Iterator[str]:
    """A throwaway cluster: initdb in a private temp dir, pg_ctl start on loopback, stop and remove."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("Debian's postgresql is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    bin_dir = bins[-1].parent
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # the server refuses to run as root
        setpriv = shutil.which("setpriv")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if owner is None or setpriv is None:
            pytest.skip("running as root, and no postgres user or setpriv to run the server as")
        run_as = [setpriv, f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", "--"]
    base = Path(tempfile.mkdtemp(prefix="r1cds-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, log, password = base / "data", base / "server.log", secrets.token_hex(16)
    password_file = base / "password"
    password_file.write_text(password)
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def pg(*args: str | Path, timeout: float = 120) -> None:
        subprocess.run([*run_as, *map(str, args)], cwd=base, check=True, capture_output=True, timeout=timeout)

    started = False
    try:
        pg(bin_dir / "initdb", "-D", data, "-U", "r1cds", "--auth=scram-sha-256", f"--pwfile={password_file}")
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg(bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        started = True
        yield f"postgresql://r1cds:{password}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            pg(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_concurrent_writers_migrations_and_tampering() -> None:
    with running_postgresql() as url:
        seqs = run_writers(url)
        assert_one_chain(url, seqs, WRITERS, PER_WRITER)
        migrate(url)  # once more, after the concurrent first runs
        assert r1cds(url, "verify").returncode == 0
        import psycopg

        with psycopg.connect(url) as connection:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                connection.execute("DELETE FROM audit_records WHERE seq = 3")
            connection.rollback()
            connection.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change")
            connection.execute(
                "UPDATE audit_records SET body = replace(body, 'ai-pending', 'ai-ready') WHERE seq = 17"
            )
            connection.commit()
        result = r1cds(url, "verify")
        assert result.returncode == 1
        assert "record seq 17 (hash)" in result.stderr


async def test_readiness_needs_a_migrated_database(tmp_path: Path) -> None:
    migrated = tmp_path / "ready.sqlite3"
    migrate(sqlite_url(migrated))
    with AuditStore(sqlite_url(migrated)) as store:
        assert await store.ready() is True
    # A database nobody migrated (or another one behind the URL) is not ready: the probe fails, it never
    # creates the tables.
    with AuditStore(sqlite_url(tmp_path / "empty.sqlite3")) as store, pytest.raises(OperationalError):
        await store.ready()

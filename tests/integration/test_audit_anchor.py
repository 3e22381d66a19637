"""Issue 19 item 7: truncation caught by the signed anchor, and one record per call after a redelivery.

SQLite files in tmp_path; PostgreSQL when Debian's server is installed (a throwaway loopback cluster, as in
test_audit_store); a real redis-server on loopback where the relay is involved. `r1cds audit` runs in
process (cds_hooks.cli.main) with its settings from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from alembic import command
from alembic.config import Config

from cds_hooks.cli import main
from cds_hooks.stack import open_audit_store
from plugin.audit import HookCallRecord, canonical, chain_hash, link
from tests.integration.test_audit_store import running_postgresql
from tests.support.redis_server import RedisHandle, running_redis
from workers import keys
from workers.audit_relay import AuditRelayConsumer, RedisAuditRelay
from workers.audit_store import AnchorLog, AuditStore, AuditStoreError, ChainEntry, check_anchor, migrate
from workers.settings import load_review_settings

pytestmark = pytest.mark.integration

KEY = "anchor-key-" + "f00d" * 8  # 43 bytes
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def call(n: int) -> HookCallRecord:
    return HookCallRecord(
        at=T0 + timedelta(seconds=n),
        hook_instance=f"instance-{n}",
        service_id="r1-chart-review",
        hook="patient-view",
        tenant="ehr",
        fingerprint=None,
        timings_ms={"total": 3.0},
        http_status=200,
        outcome="rules-only",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, Path, Path]:
    """A SQLite chain and an anchor file elsewhere, named in the settings `r1cds audit` reads."""
    db = tmp_path / "db" / "audit.sqlite3"
    anchor = tmp_path / "elsewhere" / "anchor.jsonl"
    url = f"sqlite:///{db}"
    monkeypatch.setenv("R1CDS_AUDIT_DATABASE_URL", url)
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_PATH", str(anchor))
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_KEY", KEY)
    return url, db, anchor


def fill(url: str, anchor: Path, count: int, every: int) -> list[str]:
    """`count` records through a store that checkpoints every `every` and once more when closed."""
    migrate(url)
    with AuditStore(url, AnchorLog(anchor, KEY, every=every)) as store:
        return [store.write(call(n)).hash for n in range(count)]


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["audit", "verify", *args])
    out, err = capsys.readouterr()
    return status, out, err


def truncate(db: Path, keep: int, head_hash: str) -> None:
    """Delete the records after `keep` and move the head back, as someone with the file and its schema can."""
    connection = sqlite3.connect(db)
    try:
        for trigger in ("audit_records_no_delete", "audit_chain_head_advance"):
            connection.execute(f"DROP TRIGGER {trigger}")
        connection.execute("DELETE FROM audit_records WHERE seq > ?", (keep,))
        connection.execute("UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1", (keep, head_hash))
        connection.commit()
    finally:
        connection.close()


# --- truncation and the anchor ------------------------------------------------------------------------------


def test_truncation_that_links_up_is_caught_by_the_anchor(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, db, anchor = env
    hashes = fill(url, anchor, 10, every=4)
    status, out, _ = verify(capsys)
    assert status == 0
    assert out.startswith("audit chain intact: 10 record(s), head seq 10 hash ")
    assert "anchored: 3 checkpoint(s) hold, the newest at seq 10" in out  # seq 4, 8 and 10 (the close)

    truncate(db, 7, hashes[6])
    with AuditStore(url) as store:
        assert store.verify().intact, "what is left links up: the chain alone cannot tell"
    status, out, err = verify(capsys)
    assert status == 1 and out == ""
    assert "checkpoint of seq 8 (anchor line 2" in err and "checkpoint of seq 10 (anchor line 3" in err
    assert "the chain ends at seq 7" in err
    assert "seq 4" not in err, "the checkpoint the chain still holds is no failure"


def test_a_rewritten_suffix_differs_at_a_checkpoint(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, db, anchor = env
    hashes = fill(url, anchor, 6, every=3)
    # Record 5 edited and every hash from it on recomputed, head included: a valid chain of other content.
    connection = sqlite3.connect(db)
    try:
        for trigger in ("audit_records_no_update", "audit_chain_head_advance"):
            connection.execute(f"DROP TRIGGER {trigger}")
        prev = hashes[3]
        for seq in (5, 6):
            body = canonical(call(seq - 1).model_copy(update={"http_status": 500 if seq == 5 else 200}))
            digest = chain_hash(prev, body)
            connection.execute(
                "UPDATE audit_records SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (body, prev, digest, seq),
            )
            prev = digest
        connection.execute("UPDATE audit_chain_head SET hash = ? WHERE id = 1", (prev,))
        connection.commit()
    finally:
        connection.close()
    with AuditStore(url) as store:
        assert store.verify().intact
    status, _, err = verify(capsys)
    assert status == 1
    assert "checkpoint of seq 6 (anchor line 2" in err and "has another hash" in err
    assert "seq 3" not in err


def test_forged_and_unreadable_checkpoints_fail_by_line(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, anchor = env
    fill(url, anchor, 4, every=2)  # lines 1 (seq 2) and 2 (seq 4)
    forger = AnchorLog(anchor, "a different key, also 32 bytes or more")
    forger.append(4, "00" * 32)
    with anchor.open("ab") as out:
        out.write(b"not a checkpoint\n")
    status, _, err = verify(capsys)
    assert status == 1
    assert "anchor line 3, checkpoint of seq 4: the signature does not match" in err
    assert "anchor line 4 is not a checkpoint" in err


def test_a_removed_anchor_file_fails_and_an_empty_one_says_so(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, anchor = env
    fill(url, anchor, 3, every=100)
    anchor.write_bytes(b"")
    status, out, _ = verify(capsys)
    assert status == 0 and "truncation NOT checked: the anchor file" in out and "holds no checkpoint" in out
    assert verify(capsys, "--require-anchor")[0] == 1
    anchor.unlink()
    status, _, err = verify(capsys)
    assert status == 1 and f"no anchor file at {anchor}" in err


def test_without_an_anchor_verify_says_truncation_was_not_checked(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, anchor = env
    fill(url, anchor, 2, every=1)
    monkeypatch.delenv("R1CDS_AUDIT_ANCHOR_PATH")
    status, out, _ = verify(capsys)
    assert status == 0
    [line] = out.splitlines()
    assert line.startswith("audit chain intact: 2 record(s)")
    assert line.endswith("truncation NOT checked: no anchor file (R1CDS_AUDIT_ANCHOR_PATH or --anchor)")
    status, _, err = verify(capsys, "--require-anchor")
    assert status == 1 and "--require-anchor" in err
    status, out, _ = verify(capsys, "--anchor", str(anchor))
    assert status == 0 and "anchored: 2 checkpoint(s) hold" in out
    monkeypatch.delenv("R1CDS_AUDIT_ANCHOR_KEY")
    assert main(["audit", "verify", "--anchor", str(anchor)]) == 2
    assert "needs its key" in capsys.readouterr().err


def test_anchors_exports_the_checkpoints(
    env: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, _, anchor = env
    fill(url, anchor, 5, every=2)
    out = tmp_path / "copy.jsonl"
    assert main(["audit", "anchors", "--out", str(out)]) == 0
    assert "exported 3 checkpoint(s)" in capsys.readouterr().err
    assert out.read_bytes() == anchor.read_bytes()
    assert main(["audit", "anchors"]) == 0
    exported = capsys.readouterr().out.splitlines()
    assert [line.split('"seq":')[1].split(",")[0] for line in exported] == ["2", "4", "5"]


# --- when checkpoints are written -------------------------------------------------------------------------


def test_checkpoints_every_n_records_after_t_seconds_and_at_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate(url)
    path = tmp_path / "anchor.jsonl"
    clock = Clock()
    store = AuditStore(url, AnchorLog(path, KEY, every=5, interval_s=30), clock=clock)
    store.write_many([call(n) for n in range(4)])
    assert store.checkpoint_if_due() is None and path.read_bytes() == b""
    store.write(call(4))
    assert path.read_bytes().count(b"\n") == 1, "the fifth record"
    store.write(call(5))
    clock.now += 29
    assert store.checkpoint_if_due() is None
    clock.now += 1
    made = store.checkpoint_if_due()
    assert made is not None and made.seq == 6, "30 s after its first unanchored record"
    assert store.checkpoint_if_due() is None, "nothing new since"
    store.write(call(6))
    store.close()
    lines = path.read_bytes().splitlines()
    assert [line.split(b'"seq":')[1].split(b",")[0] for line in lines] == [b"5", b"6", b"7"]


def test_a_failing_anchor_never_costs_a_record_nor_shows_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate(url)
    path = tmp_path / "anchor.jsonl"
    clock = Clock()
    with AuditStore(url, AnchorLog(path, KEY, every=1, interval_s=10), clock=clock) as store:
        path.unlink()
        path.mkdir()  # the anchor's disk "fails": the file cannot be opened for appending any more
        with caplog.at_level(logging.WARNING, logger="workers.audit_store"):
            stored = [store.write(call(n)).seq for n in range(3)]
        assert stored == [1, 2, 3] and store.verify().intact
        warnings = [r for r in caplog.records if "no checkpoint written" in r.getMessage()]
        assert len(warnings) == 1, "then it waits the interval before trying again"
        path.rmdir()
        clock.now += 10
        store.write(call(3))
        assert path.read_bytes().count(b"\n") == 1
    assert KEY not in caplog.text


def test_a_start_with_a_short_anchor_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_AUDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_PATH", str(tmp_path / "anchor.jsonl"))
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_KEY", "thirty-one bytes, one too few!!")
    with pytest.raises(AuditStoreError, match="at least 32 bytes"):
        open_audit_store(load_review_settings())
    monkeypatch.setenv("R1CDS_AUDIT_ANCHOR_KEY", KEY)
    store = open_audit_store(load_review_settings())
    try:
        store.write(call(0))
    finally:
        store.close()
    assert (tmp_path / "anchor.jsonl").read_bytes().count(b"\n") == 1, "the shutdown checkpoint"


# --- one record per call: idempotency keys ---------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RedisHandle]:
    with running_redis() as handle:
        yield handle


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate(url)
    with AuditStore(url) as opened:
        yield opened


def instances(store: AuditStore) -> list[str]:
    return [s.record.hook_instance for s in store.records() if isinstance(s.record, HookCallRecord)]


async def test_a_redelivered_relay_message_is_stored_once(server: RedisHandle, store: AuditStore) -> None:
    client = aioredis.Redis.from_url(server.url)
    try:
        await RedisAuditRelay(client, fallback=None).append_documents(
            [call(n).model_dump(mode="json") for n in range(3)]
        )
    finally:
        await client.aclose()
    sync = redis.Redis.from_url(server.url)

    class CrashesAfterCommit:
        """The worker commits the batch, then dies before acknowledging it."""

        def write_many(self, batch: object) -> None:
            raise AssertionError("not used by the consumer")

        def write_entries(self, entries: Sequence[ChainEntry]) -> None:
            store.write_entries(entries)
            raise RuntimeError("the worker died between commit and acknowledgement")

    try:
        with pytest.raises(RuntimeError, match="between commit"):
            AuditRelayConsumer(sync, CrashesAfterCommit(), name="dead", block_ms=100).drain_once()
        assert instances(store) == ["instance-0", "instance-1", "instance-2"]
        survivor = AuditRelayConsumer(sync, store, name="alive", block_ms=100, claim_idle_ms=100)
        await asyncio.sleep(0.2)
        assert survivor.drain_once() == 0, "the same message again: nothing new written"
        assert sync.xlen(keys.AUDIT_STREAM) == 0, "and acknowledged this time"
    finally:
        sync.close()
    assert instances(store) == ["instance-0", "instance-1", "instance-2"]
    result = store.verify()
    assert result.intact and result.count == result.head_seq == 3


async def test_a_batch_written_both_ways_after_a_redis_stall_is_stored_once(store: AuditStore) -> None:
    with running_redis(extra_args=("--enable-debug-command", "local")) as server:
        sync = redis.Redis.from_url(server.url)
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.2)
        try:
            await client.ping()
            # Redis stalls for a second: the API's XADD times out, so the relay writes the batch straight
            # to the store; the XADD had been sent all the same, and lands when the stall ends.
            stall = asyncio.create_task(
                asyncio.to_thread(redis.Redis.from_url(server.url).execute_command, "DEBUG", "SLEEP", "1")
            )
            await asyncio.sleep(0.1)
            await RedisAuditRelay(client, fallback=store).append_documents(
                [call(n).model_dump(mode="json") for n in range(2)]
            )
            assert instances(store) == ["instance-0", "instance-1"]
            await stall
            assert sync.xlen(keys.AUDIT_STREAM) == 1, "the stalled XADD landed too"
            assert AuditRelayConsumer(sync, store, block_ms=100).drain_once() == 0
        finally:
            await client.aclose()
            sync.close()
    assert instances(store) == ["instance-0", "instance-1"]
    assert store.verify().intact


def test_keys_make_direct_writes_idempotent_and_keyless_ones_are_not(store: AuditStore) -> None:
    first = store.write_entries([ChainEntry.of(call(n), f"batch:{n}") for n in range(3)])
    again = store.write_entries([ChainEntry.of(call(n), f"batch:{n}") for n in range(2, 5)])
    assert [s.seq for s in first] == [1, 2, 3]
    assert [s.seq for s in again] == [4, 5], "batch:2 was stored already; the others extend the chain"
    keyless = store.write_entries([ChainEntry.of(call(9)), ChainEntry.of(call(9))])
    assert len(keyless) == 2
    assert store.verify().intact and store.head()[0] == 7


def test_a_chain_written_before_keys_verifies_after_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    config = Config()
    config.set_main_option("script_location", "workers:audit_migrations")
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0001")
    # Records as the store wrote them at revision 0001 (no key column yet).
    connection = sqlite3.connect(tmp_path / "audit.sqlite3")
    try:
        previous = None
        for n in range(5):
            stored = link(call(n), previous)
            connection.execute(
                "INSERT INTO audit_records (seq, at, kind, prev_hash, hash, body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stored.seq,
                    (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "hook-call",
                    stored.prev_hash,
                    stored.hash,
                    stored.body,
                ),
            )
            connection.execute(
                "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1", (stored.seq, stored.hash)
            )
            previous = stored
        connection.commit()
    finally:
        connection.close()
    migrate(url)
    with AuditStore(url) as store:
        before = store.verify()
        assert before.intact and before.count == 5
        store.write_entries([ChainEntry.of(call(5), "k:0"), ChainEntry.of(call(5), "k:0")])
        after = store.verify()
    assert after.intact and after.count == 6


def test_postgresql_idempotent_inserts_and_anchor(tmp_path: Path) -> None:
    with running_postgresql() as url:
        migrate(url)
        anchor = tmp_path / "anchor.jsonl"
        with AuditStore(url, AnchorLog(anchor, KEY, every=3)) as store:
            written = store.write_entries([ChainEntry.of(call(n), f"pg:{n}") for n in range(6)])
            again = store.write_entries([ChainEntry.of(call(n), f"pg:{n}") for n in range(4, 8)])
            assert [s.seq for s in written] == [1, 2, 3, 4, 5, 6] and [s.seq for s in again] == [7, 8]
            assert store.verify().intact
        with psycopg.connect(url) as connection:
            for table, trigger in (
                ("audit_records", "audit_records_no_change"),
                ("audit_chain_head", "audit_chain_head_advance"),
            ):
                connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            connection.execute("DELETE FROM audit_records WHERE seq > 5")
            connection.execute(
                "UPDATE audit_chain_head SET seq = 5, hash = (SELECT hash FROM audit_records WHERE seq = 5)"
            )
            connection.commit()
        with AuditStore(url) as store:
            assert store.verify().intact
        with AuditStore(url) as store:
            checked = check_anchor(store, anchor, KEY)
        assert not checked.ok
        assert any("checkpoint of seq 6" in f and "chain ends at seq 5" in f for f in checked.failures)
        assert any("checkpoint of seq 8" in f for f in checked.failures)

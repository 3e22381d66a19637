"""The audit store: plugin.audit's hash chain in SQLite (the default) or PostgreSQL, append-only.

Where: `R1CDS_AUDIT_DATABASE_URL`. Unset, it is a SQLite file in the user's data directory,
`$XDG_DATA_HOME/r1cds/audit.sqlite3` (`~/.local/share/r1cds/audit.sqlite3` when XDG_DATA_HOME is unset):
one place for every process of the same user, whatever directory it starts in (a path relative to the
working directory would give an API and a worker started elsewhere two separate chains). Several machines
or containers must share one PostgreSQL database instead: `postgresql://user:pass@host/db` (the psycopg 3
driver is used whatever driver the URL names).

Appending. There is no update or delete API, and triggers (see audit_migrations) refuse both. A write is
one transaction: lock the chain head row, take its seq and hash, insert the record as seq + 1 linked to
that hash, advance the head. The lock is what keeps concurrent writers (several API and worker processes)
from forking the chain:

- SQLite: the transaction starts with BEGIN IMMEDIATE, which takes the database's write lock before the
  head is read; other writers wait (busy timeout 30 s) and then read the new head. WAL journal, so readers
  (verify, export) never block writers, and synchronous=FULL, so a committed record survives power loss.
- PostgreSQL: SELECT ... FOR UPDATE on the head row; a waiting writer re-reads the row once the first
  commits (READ COMMITTED), so it links to the record that just landed.

Migrations run from `migrate(url)`, once at every start, inside the same kind of lock (BEGIN IMMEDIATE,
or a transaction-scoped advisory lock on PostgreSQL), so processes starting together apply them once.

`AuditStore.append` is the async `plugin.audit.AuditSink` port: it runs the blocking write on a thread so
that waiting for the lock never blocks an event loop. `write` is the same, synchronous.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url

from plugin.audit import (
    GENESIS,
    AuditRecord,
    ChainBreak,
    ChainVerifier,
    StoredRecord,
    canonical,
    chain_hash,
    parse_record,
    timestamp_text,
)

__all__ = [
    "AuditStore",
    "AuditStoreError",
    "ChainEntry",
    "Verification",
    "database_url",
    "default_database_url",
    "migrate",
    "sqlite_path",
]

BUSY_TIMEOUT_S: Final = 30.0
MIGRATION_LOCK: Final = 0x7231_6364_7341_7564  # "r1cdsAud": pg_advisory_xact_lock key of migrate()
_WRITE: Final = "r1cds_audit_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)

metadata = MetaData()
records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("body", Text(), nullable=False),
)
head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("seq", BigInteger(), nullable=False),
    Column("hash", String(64), nullable=False),
)
_INSERT_RECORD: Final = insert(records)
_ADVANCE_HEAD: Final = (
    update(head).where(head.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


class _DriverStatement:
    """A statement compiled once for the engine's driver, run on a DBAPI cursor in its paramstyle."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._defaults = dict(compiled.params)  # literal bound values, e.g. the head row's id
        self._order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None

    def execute(self, cursor: Any, **values: object) -> None:
        params = {**self._defaults, **values}
        cursor.execute(self._sql, tuple(params[name] for name in self._order) if self._order else params)


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One record as the chain stores it: its canonical text (hashed as is) and its indexed columns."""

    at: str  # timestamp_text of the record's time
    kind: str
    body: str

    @classmethod
    def of(cls, record: AuditRecord) -> ChainEntry:
        return cls(timestamp_text(record.at), record.kind, canonical(record))


class AuditStoreError(RuntimeError):
    """The store cannot be used as configured (unsupported URL, missing schema, missing head row)."""


def default_database_url() -> str:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data) / 'r1cds' / 'audit.sqlite3'}"


def database_url(configured: str | None) -> str:
    """The URL to use: the configured one, or the default SQLite file."""
    return configured or default_database_url()


def _normalised(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise AuditStoreError(f"SQLite through {parsed.drivername} is not supported; use sqlite:///path")
        return parsed
    if backend == "postgresql" or parsed.drivername == "postgres":
        return parsed.set(drivername="postgresql+psycopg")
    raise AuditStoreError(
        f"unsupported audit database {parsed.drivername!r}: use sqlite:/// or postgresql://"
    )


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (below); sqlite3's own transaction handling would begin too late.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(_WRITE) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


def _engine(url: str) -> Engine:
    parsed = _normalised(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock (SQLite) from its first statement; commits on success."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


def migrate(url: str) -> None:
    """Bring the schema to the newest revision; safe to run from several processes at once, and again."""
    from alembic import command
    from alembic.config import Config

    engine = _engine(url)
    try:
        with _writing(engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", "workers:audit_migrations")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


@dataclass(frozen=True, slots=True)
class Verification:
    count: int  # records that verified before the break (all of them when intact)
    head_seq: int
    head_hash: str
    broken: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.broken is None


class AuditStore:
    """The chain in one database. Open with the URL after `migrate(url)`; share one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _engine(url)
        self._postgresql = self._engine.dialect.name == "postgresql"
        self._insert = _DriverStatement(_INSERT_RECORD, self._engine)
        self._advance = _DriverStatement(_ADVANCE_HEAD, self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def has_schema(self) -> bool:
        names = set(inspect(self._engine).get_table_names())
        return {"audit_records", "audit_chain_head"} <= names

    async def ready(self) -> bool:
        """Readiness: the chain head can be read (the database answers and is migrated)."""
        return await asyncio.to_thread(self._head_readable)

    def _head_readable(self) -> bool:
        with self._reading() as connection:
            return connection.execute(select(head.c.seq).where(head.c.id == 1)).one_or_none() is not None

    # --- writing ----------------------------------------------------------------------------------------

    async def append(self, record: AuditRecord) -> None:
        """The AuditSink port: the write, on a worker thread."""
        await asyncio.to_thread(self.write, record)

    def write(self, record: AuditRecord) -> StoredRecord:
        """Append one record at the head of the chain and return it as stored."""
        [stored] = self.write_many((record,))
        return stored

    def write_many(self, batch: Sequence[AuditRecord]) -> list[StoredRecord]:
        """Append records in order in one transaction (one lock, one commit): all or none are stored."""
        return self.write_entries([ChainEntry.of(record) for record in batch])

    def write_entries(self, entries: Sequence[ChainEntry]) -> list[StoredRecord]:
        """`write_many` for records already in their canonical text (the audit relay's, from the API)."""
        written: list[StoredRecord] = []
        if not entries:
            return written
        with _writing(self._engine) as connection:
            row = connection.execute(
                select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()
            ).one_or_none()
            if row is None:
                raise AuditStoreError("the audit chain head is missing: run migrate() on this database")
            seq, prev_hash = int(row.seq), str(row.hash)
            # The driver's own cursor, in this transaction: per record, SQLAlchemy's execution layer cost
            # several times the SQL itself, and the audit relay writes one record per hook call.
            cursor = connection.connection.cursor()
            try:
                for entry in entries:
                    seq, digest = seq + 1, chain_hash(prev_hash, entry.body)
                    self._insert.execute(
                        cursor,
                        seq=seq,
                        at=entry.at,
                        kind=entry.kind,
                        prev_hash=prev_hash,
                        hash=digest,
                        body=entry.body,
                    )
                    # The head advances record by record: the database's triggers check every link.
                    self._advance.execute(cursor, new_seq=seq, new_hash=digest)
                    written.append(StoredRecord(seq, prev_hash, digest, entry.body))
                    prev_hash = digest
            finally:
                cursor.close()
        return written

    # --- reading ----------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One snapshot for the whole read (SQLite WAL: a read transaction; PostgreSQL: REPEATABLE READ)."""
        with self._engine.connect() as connection:
            if self._postgresql:
                connection.execution_options(isolation_level="REPEATABLE READ", stream_results=True)
            with connection.begin():
                yield connection

    def head(self) -> tuple[int, str]:
        with self._reading() as connection:
            row = connection.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1)).one_or_none()
        return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS)

    def records(self, since: datetime | None = None, *, batch: int = 1000) -> Iterator[StoredRecord]:
        """The stored records in chain order, optionally only those whose time is at or after `since`."""
        query = select(records.c.seq, records.c.prev_hash, records.c.hash, records.c.body).order_by(
            records.c.seq
        )
        if since is not None:
            query = query.where(records.c.at >= timestamp_text(since))
        with self._reading() as connection:
            for row in connection.execute(query).yield_per(batch):
                yield StoredRecord(int(row.seq), str(row.prev_hash), str(row.hash), str(row.body))

    def verify(self) -> Verification:
        """Walk the whole chain: links, hashes, contents, index columns, and the head against the last record."""
        verifier = ChainVerifier()
        last_seq, last_hash = 0, GENESIS
        query = select(records).order_by(records.c.seq)
        with self._reading() as connection:
            head_row = connection.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1)).one_or_none()
            for row in connection.execute(query).yield_per(1000):
                stored = StoredRecord(int(row.seq), str(row.prev_hash), str(row.hash), str(row.body))
                position = verifier.position
                if verifier.feed(stored) is not None:
                    break
                try:
                    record = parse_record(stored.body)
                except ValidationError:
                    verifier.fail(position, stored.seq, "unreadable")
                    break
                if record.kind != row.kind or timestamp_text(record.at) != row.at:
                    verifier.fail(position, stored.seq, "index")
                    break
                last_seq, last_hash = stored.seq, stored.hash
        head_seq, head_hash = (int(head_row.seq), str(head_row.hash)) if head_row is not None else (-1, "")
        if verifier.broken is None and (head_seq, head_hash) != (last_seq, last_hash):
            # The records end before the head (or the head was edited): name the first record missing.
            verifier.fail(verifier.position, last_seq + 1, "head")
        broken = verifier.broken
        return Verification(broken.position if broken else verifier.count, head_seq, head_hash, broken)

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

Exactly once. A record may carry an idempotency key (`ChainEntry.key`; the audit relay assigns one per
record when the API hands it off, so a batch redelivered by the stream, or written both through the
stream and straight to the store after a Redis stall, has the same keys each time). The key column is
unique (migration 0002) and the insert is INSERT ... ON CONFLICT (idem_key) DO NOTHING, in SQLite and
PostgreSQL alike: a record whose key is already stored takes no position and leaves the head where it
was. Records without a key (written before 0002, or by a direct writer) never conflict. The key is not
part of the hashed text, so chains written before it verify as they did.

Anchor. A chain in one database cannot show that its newest records were deleted and its head moved
back: what is left is a valid chain. `AnchorLog` keeps signed checkpoints of the head (seq, hash, time;
HMAC-SHA256 under R1CDS_AUDIT_ANCHOR_KEY) in an append-only JSONL file elsewhere (R1CDS_AUDIT_ANCHOR_PATH,
fsynced after every line). A store given one checkpoints after every `every` records it wrote,
`interval_s` after its first unanchored record (on its next write, or `checkpoint_if_due`, which the
audit relay's thread calls while idle), and when it is closed. `check_anchor` checks every checkpoint's
signature and that the chain still holds each checkpointed (seq, hash): a chain that ends before a
checkpoint, or differs at one, fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from pydantic import SecretStr, ValidationError
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
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
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

if TYPE_CHECKING:
    from workers.settings import ReviewSettings

__all__ = [
    "ANCHOR_KEY_MIN_BYTES",
    "AnchorCheck",
    "AnchorLog",
    "AuditStore",
    "AuditStoreError",
    "ChainEntry",
    "Checkpoint",
    "Verification",
    "anchor_log",
    "check_anchor",
    "database_url",
    "default_database_url",
    "migrate",
    "read_anchor",
    "sqlite_path",
]

BUSY_TIMEOUT_S: Final = 30.0
MIGRATION_LOCK: Final = 0x7231_6364_7341_7564  # "r1cdsAud": pg_advisory_xact_lock key of migrate()
_WRITE: Final = "r1cds_audit_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
ANCHOR_KEY_MIN_BYTES: Final = 32  # an HMAC-SHA256 key no shorter than the hash it makes
_ANCHOR_DOMAIN: Final = "r1cds-audit-anchor/v1"  # first line of every signed message: no other use of the key
IDEM_KEY_MAX: Final = 128

log = logging.getLogger(__name__)

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
    Column("idem_key", String(IDEM_KEY_MAX), nullable=True, unique=True),
)
head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("seq", BigInteger(), nullable=False),
    Column("hash", String(64), nullable=False),
)
# A record whose idempotency key is stored already is left out; rowcount says which happened.
_INSERT_RECORD: Final = {
    "sqlite": sqlite.insert(records).on_conflict_do_nothing(index_elements=[records.c.idem_key]),
    "postgresql": postgresql.insert(records).on_conflict_do_nothing(index_elements=[records.c.idem_key]),
}
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

    def execute(self, cursor: Any, **values: object) -> int:
        """Run it; the rows it changed."""
        params = {**self._defaults, **values}
        cursor.execute(self._sql, tuple(params[name] for name in self._order) if self._order else params)
        return int(cursor.rowcount)


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One record as the chain stores it: its canonical text (hashed as is) and its indexed columns."""

    at: str  # timestamp_text of the record's time
    kind: str
    body: str
    key: str | None = None  # idempotency key: a second entry with a stored key is not written again

    def __post_init__(self) -> None:
        if self.key is not None and not 0 < len(self.key) <= IDEM_KEY_MAX:
            raise ValueError(f"an idempotency key has 1 to {IDEM_KEY_MAX} characters")

    @classmethod
    def of(cls, record: AuditRecord, key: str | None = None) -> ChainEntry:
        return cls(timestamp_text(record.at), record.kind, canonical(record), key)


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


# --- the anchor ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain head at a time, signed: one line of the anchor file."""

    seq: int
    hash: str
    at: str  # timestamp_text of when it was taken
    sig: str  # hex HMAC-SHA256 of `message(seq, hash, at)`

    @staticmethod
    def message(seq: int, digest: str, at: str) -> bytes:
        return "\n".join((_ANCHOR_DOMAIN, str(seq), digest, at)).encode()

    @classmethod
    def signed(cls, key: bytes, seq: int, digest: str, at: datetime) -> Checkpoint:
        moment = timestamp_text(at)
        mac = hmac.new(key, cls.message(seq, digest, moment), hashlib.sha256).hexdigest()
        return cls(seq, digest, moment, mac)

    def valid(self, key: bytes) -> bool:
        expected = hmac.new(key, self.message(self.seq, self.hash, self.at), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.sig)

    def as_dict(self) -> dict[str, object]:
        return {"v": 1, "seq": self.seq, "hash": self.hash, "at": self.at, "sig": self.sig}

    def line(self) -> bytes:
        return orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        """A line back into its checkpoint; raises ValueError when it is not one."""
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError("not JSON") from exc
        if not isinstance(document, dict) or document.get("v") != 1:
            raise ValueError("not a version 1 checkpoint")
        seq, digest, at, sig = (document.get(name) for name in ("seq", "hash", "at", "sig"))
        if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1):
            raise ValueError("no sequence number")
        if not all(isinstance(value, str) for value in (digest, at, sig)):
            raise ValueError("a field is missing")
        return cls(seq, str(digest), str(at), str(sig))


def _key_bytes(key: SecretStr | str | bytes) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key.encode() if isinstance(key, str) else bytes(key)


class AnchorLog:
    """The append-only JSONL file of signed checkpoints, and when a store should add the next one.

    Refuses a key shorter than ANCHOR_KEY_MIN_BYTES and a file it cannot open for appending (AuditStoreError,
    at construction: a deployment misconfigured here should not start). Lines are written with one write()
    on an O_APPEND descriptor, so processes sharing the file never interleave them, then fsynced.
    """

    def __init__(
        self,
        path: Path,
        key: SecretStr | str | bytes,
        *,
        every: int = 1000,
        interval_s: float = 60.0,
    ) -> None:
        secret = _key_bytes(key)
        if len(secret) < ANCHOR_KEY_MIN_BYTES:
            raise AuditStoreError(
                f"the audit anchor key (R1CDS_AUDIT_ANCHOR_KEY) must be at least {ANCHOR_KEY_MIN_BYTES} bytes"
            )
        if every < 1 or not interval_s > 0:
            raise AuditStoreError("audit anchor: every must be at least 1 and interval_s above 0")
        self.path = path
        self._key = secret
        self.every = every
        self.interval_s = interval_s
        try:
            self._open().close()  # now, so that a bad path stops the start, and an absent file later means removal
        except OSError as exc:
            raise AuditStoreError(f"cannot open the audit anchor file {path}: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"AnchorLog({str(self.path)!r}, every={self.every}, interval_s={self.interval_s})"

    def _open(self) -> _AppendFile:
        return _AppendFile(self.path)

    def append(self, seq: int, digest: str, at: datetime | None = None) -> Checkpoint:
        """Sign and append one checkpoint; it is on disk (fsynced) when this returns."""
        checkpoint = Checkpoint.signed(self._key, seq, digest, at or datetime.now(UTC))
        with self._open() as out:
            out.append(checkpoint.line())
        return checkpoint


class _AppendFile:
    """One O_APPEND descriptor; a new file's directory entry is fsynced too, so the file survives a crash."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def append(self, line: bytes) -> None:
        if os.write(self._fd, line) != len(line):
            raise OSError("short write to the audit anchor file")
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> _AppendFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def anchor_log(settings: ReviewSettings) -> AnchorLog | None:
    """The deployment's anchor (R1CDS_AUDIT_ANCHOR_*): None when no path is set; AuditStoreError when the key
    is missing or too short, or the file cannot be opened (a start with a broken anchor stops)."""
    if not settings.audit_anchor_path:
        return None
    if settings.audit_anchor_key is None:
        raise AuditStoreError("R1CDS_AUDIT_ANCHOR_PATH is set without R1CDS_AUDIT_ANCHOR_KEY")
    return AnchorLog(
        Path(settings.audit_anchor_path),
        settings.audit_anchor_key,
        every=settings.audit_anchor_every,
        interval_s=settings.audit_anchor_interval_s,
    )


@dataclass(frozen=True, slots=True)
class AnchorLine:
    number: int  # 1-based line of the file
    checkpoint: Checkpoint | None  # None: the line is not a checkpoint
    problem: str | None = None


def read_anchor(path: Path) -> tuple[list[AnchorLine], bool]:
    """The file's lines as checkpoints, and whether its last line was torn (no newline: a crash mid-write,
    left out, since no complete checkpoint was ever written there). Raises OSError when it cannot be read."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    found: list[AnchorLine] = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            found.append(AnchorLine(number, Checkpoint.parse(line)))
        except ValueError as exc:
            found.append(AnchorLine(number, None, str(exc)))
    return found, torn


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    checkpoints: int  # lines with a valid signature whose (seq, hash) the chain holds
    newest: Checkpoint | None  # the highest-seq one of those
    failures: tuple[str, ...]  # one sentence each, naming the line and the sequence number
    torn: bool

    @property
    def ok(self) -> bool:
        return not self.failures


def check_anchor(store: AuditStore, path: Path, key: SecretStr | str | bytes) -> AnchorCheck:
    """Every checkpoint of the file: signed with `key`, and its (seq, hash) still in the chain."""
    secret = _key_bytes(key)
    lines, torn = read_anchor(path)
    failures: list[str] = []
    signed: list[tuple[int, Checkpoint]] = []
    for line in lines:
        if line.checkpoint is None:
            failures.append(f"anchor line {line.number} is not a checkpoint ({line.problem})")
        elif not line.checkpoint.valid(secret):
            failures.append(
                f"anchor line {line.number}, checkpoint of seq {line.checkpoint.seq}: the signature does not "
                "match (another key, or the line was forged or edited)"
            )
        else:
            signed.append((line.number, line.checkpoint))
    hashes, last = store.hashes_at({checkpoint.seq for _, checkpoint in signed})
    held: list[Checkpoint] = []
    for number, checkpoint in signed:
        stored = hashes.get(checkpoint.seq)
        if checkpoint.seq > last:
            failures.append(
                f"checkpoint of seq {checkpoint.seq} (anchor line {number}, {checkpoint.at}): the chain ends "
                f"at seq {last}, so records were removed from its end"
            )
        elif stored is None:
            failures.append(
                f"checkpoint of seq {checkpoint.seq} (anchor line {number}): the record is missing"
            )
        elif stored != checkpoint.hash:
            failures.append(
                f"checkpoint of seq {checkpoint.seq} (anchor line {number}, {checkpoint.at}): the record there "
                "has another hash, so the chain was rewritten from there or before"
            )
        else:
            held.append(checkpoint)
    newest = max(held, key=lambda c: c.seq, default=None)
    return AnchorCheck(len(held), newest, tuple(failures), torn)


# --- the store ----------------------------------------------------------------------------------------------


class AuditStore:
    """The chain in one database. Open with the URL after `migrate(url)`; share one per process.

    `anchor`: where this store checkpoints the head (see AnchorLog); None, it does not."""

    def __init__(
        self, url: str, anchor: AnchorLog | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url
        self._engine = _engine(url)
        self._postgresql = self._engine.dialect.name == "postgresql"
        self._insert = _DriverStatement(_INSERT_RECORD[self._engine.dialect.name], self._engine)
        self._advance = _DriverStatement(_ADVANCE_HEAD, self._engine)
        self.anchor = anchor
        self._clock = clock
        self._anchor_lock = threading.Lock()
        self._unanchored = 0  # records this store wrote since its last checkpoint
        self._unanchored_since: float | None = None
        self._anchor_retry_at = 0.0  # after a failed checkpoint, the next try waits this long

    def close(self) -> None:
        """Checkpoint what this store wrote since its last checkpoint (a clean shutdown), then let go."""
        try:
            self.checkpoint_if_due(shutdown=True)
        finally:
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
                    digest = chain_hash(prev_hash, entry.body)
                    inserted = self._insert.execute(
                        cursor,
                        seq=seq + 1,
                        at=entry.at,
                        kind=entry.kind,
                        prev_hash=prev_hash,
                        hash=digest,
                        body=entry.body,
                        idem_key=entry.key,
                    )
                    if not inserted:  # its key is stored already: a redelivery, not a new record
                        continue
                    seq += 1
                    # The head advances record by record: the database's triggers check every link.
                    self._advance.execute(cursor, new_seq=seq, new_hash=digest)
                    written.append(StoredRecord(seq, prev_hash, digest, entry.body))
                    prev_hash = digest
            finally:
                cursor.close()
        if written and self.anchor is not None:
            self._wrote(len(written), written[-1])
        return written

    # --- the anchor -------------------------------------------------------------------------------------

    def _wrote(self, count: int, last: StoredRecord) -> None:
        with self._anchor_lock:
            now = self._clock()
            self._unanchored += count
            if self._unanchored_since is None:
                self._unanchored_since = now
            if self._due(now):
                self._checkpoint((last.seq, last.hash))

    def _due(self, now: float) -> bool:
        anchor = self.anchor
        if anchor is None or not self._unanchored or now < self._anchor_retry_at:
            return False
        since = self._unanchored_since if self._unanchored_since is not None else now
        return self._unanchored >= anchor.every or now - since >= anchor.interval_s

    def checkpoint_if_due(self, *, shutdown: bool = False) -> Checkpoint | None:
        """Checkpoint the head when this store's unanchored records are due (the relay calls it when idle);
        `shutdown`: whenever it wrote any since its last checkpoint."""
        with self._anchor_lock:
            due = self._unanchored > 0 if shutdown else self._due(self._clock())
            return self._checkpoint(None) if due and self.anchor is not None else None

    def checkpoint(self) -> Checkpoint | None:
        """Checkpoint the chain head now; None without an anchor, for an empty chain, or when it failed
        (logged; the next try waits the anchor's interval)."""
        with self._anchor_lock:
            return self._checkpoint(None)

    def _checkpoint(self, last: tuple[int, str] | None) -> Checkpoint | None:
        anchor = self.anchor
        if anchor is None:
            return None
        try:
            seq, digest = last if last is not None else self.head()
            made = anchor.append(seq, digest) if seq > 0 else None
        except Exception as exc:  # the database or the anchor's disk: never the records' write
            self._anchor_retry_at = self._clock() + anchor.interval_s
            log.warning("audit anchor: no checkpoint written (%s)", type(exc).__name__)
            return None
        self._unanchored, self._unanchored_since, self._anchor_retry_at = 0, None, 0.0
        return made

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

    def hashes_at(self, seqs: set[int] | frozenset[int]) -> tuple[dict[int, str], int]:
        """The stored hash at each of these positions that holds a record, and the last stored seq (0: none)."""
        wanted = sorted(seqs)
        found: dict[int, str] = {}
        with self._reading() as connection:
            last = connection.execute(select(func.max(records.c.seq))).scalar_one_or_none()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(records.c.seq, records.c.hash).where(records.c.seq.in_(chunk))
                found.update((int(row.seq), str(row.hash)) for row in connection.execute(query))
        return found, int(last or 0)

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

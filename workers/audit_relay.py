"""Audit records relayed through a Redis stream: the API hands them off cheaply, a worker appends them to the chain.

Writing the chain costs SQL and a database lock per record (~170 µs when this was built, 21 µs now); in
the API process that work ran on a thread competing for the GIL with a saturated event loop, fell behind,
and dropped records (bench.queue --only hook: 0.43x the floor with the audit on, 0.57x without; with the
relay, coalesced writes and the records validated here, 0.53x). So the API only appends each
batch to the stream `r1cds:v1:audit` as one entry, one round trip (`RedisAuditRelay`), and every worker
process runs an `AuditRelayConsumer` thread that reads the stream in a consumer group, appends each batch
in one transaction and acknowledges it:

- at least once through the stream, exactly once in the chain: a batch is acknowledged only after its
  transaction committed; a consumer that died before acknowledging has its entries claimed by another
  after CLAIM_IDLE_MS (XAUTOCLAIM). Each record carries an idempotency key that the relay assigns once,
  when the API hands the batch off (`<batch uuid>:<line>`, the uuid in the entry's field `k`), and the
  store leaves out a record whose key it holds (workers.audit_store), so a batch redelivered after a crash
  between commit and acknowledgement is not stored twice. An entry without `k` (written before keys)
  is keyed by its stream id, which a redelivery keeps too.
- Redis unreachable: the relay writes the batch straight to the store instead (the old path), so the
  chain gets it either way, under the same keys: when the stream append only timed out (a Redis stall)
  and the entry did land, the consumer's later copy of it is left out.
- the anchor: the consumer's thread checkpoints its store's head when due while the stream is idle, and
  once more when stopped (AuditStore.checkpoint_if_due).
- the stream is capped (approximately) at MAX_STREAM entries (batches), so a deployment with no worker
  cannot fill Redis.
- what travels: records as plain JSON fields (field `d`), which the consumer validates and canonicalises,
  so the per-call cost of building a hook-call record is the workers', not the API's event loop's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence, Sized
from typing import Any, Final, Protocol

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from plugin.audit import AuditRecord, record_from_document
from workers import keys
from workers.audit_store import ChainEntry

log = logging.getLogger(__name__)

GROUP: Final = "r1cds-audit-writers"
BATCH: Final = 64  # stream entries (each a batch of records) per read
MAX_STREAM: Final = 100_000
CLAIM_IDLE_MS: Final = 60_000
# After a small batch, wait this long before reading again: one transaction (one fsync) and a few Redis
# round trips then carry a busy API's records of that time, instead of each handful its own.
COALESCE_S: Final = 0.05
FULL_BATCH: Final = 500
_DOCUMENTS: Final = b"d"  # records as JSON fields, one per line, validated and canonicalised here
_BATCH_KEY: Final = b"k"  # the batch's idempotency key prefix, assigned once by the API's relay


class ChainWriter(Protocol):
    def write_many(self, batch: Sequence[AuditRecord]) -> object: ...

    def write_entries(self, entries: Sequence[ChainEntry]) -> object: ...  # ideally the records written


class RedisAuditRelay:
    """plugin.audit.AuditSink for the API: batches go to the stream, or to the store when Redis is down."""

    def __init__(self, client: aioredis.Redis, fallback: ChainWriter | None) -> None:
        self._redis = client
        self._fallback = fallback

    async def append(self, record: AuditRecord) -> None:
        await self.append_documents([record.model_dump(mode="json")])

    async def append_documents(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Records as plain fields (the API's hook-call facts): the workers validate them, off the loop."""
        lines = b"\n".join(orjson.dumps(document) for document in documents)
        # Assigned here, once: whichever way the batch reaches the chain, and however often, its records
        # carry these keys, and the store keeps the first copy of each.
        batch = uuid.uuid4().hex
        try:
            await self._redis.xadd(
                keys.AUDIT_STREAM,
                {_DOCUMENTS: lines, _BATCH_KEY: batch},
                maxlen=MAX_STREAM,
                approximate=True,
            )
        except (RedisError, OSError):
            if self._fallback is None:
                raise
            entries = [
                ChainEntry.of(record, f"{batch}:{line}")
                for line, record in enumerate(map(_validated, documents))
                if record is not None
            ]
            await asyncio.to_thread(self._fallback.write_entries, entries)


class AuditRelayConsumer:
    """A worker's thread that moves records from the stream into the chain; stopped by `stop()`."""

    def __init__(
        self,
        client: redis.Redis,
        store: ChainWriter,
        *,
        block_ms: int = 1000,
        retry_s: float = 1.0,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        name: str | None = None,
        coalesce_s: float = COALESCE_S,
    ) -> None:
        self._redis = client
        self._claim_idle_ms = claim_idle_ms
        self._store = store
        self._block_ms = block_ms
        self._retry_s = retry_s
        self._name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._coalesce_s = coalesce_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="r1cds-audit-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, then write what is already in the stream (the API flushes on its way out)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            while self.drain_once(block=False):
                pass
        except Exception as exc:
            log.warning("audit relay: final drain failed (%s)", type(exc).__name__)
        self._checkpoint(shutdown=True)

    def _checkpoint(self, *, shutdown: bool = False) -> None:
        due = getattr(self._store, "checkpoint_if_due", None)  # a store with an anchor (AuditStore)
        if due is not None:
            due(shutdown=shutdown)

    def drain_once(self, *, block: bool = True) -> int:
        """Claim what dead consumers left, read one batch, store and acknowledge it; records written."""
        self._ensure_group()
        entries = self._claimed() or self._read(block)
        if not entries:
            return 0
        ids = [entry_id for entry_id, _ in entries]
        batch = [entry for entry_id, fields in entries for entry in _entries(fields, entry_id)]
        written = len(batch)
        if batch:
            stored = self._store.write_entries(batch)
            if isinstance(stored, Sized):  # a redelivered record's copy is left out: not written now
                written = len(stored)
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(keys.AUDIT_STREAM, GROUP, *ids)
        pipe.xdel(keys.AUDIT_STREAM, *ids)
        pipe.execute()
        self.written += written
        return written

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(keys.AUDIT_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _claimed(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = self._redis.xautoclaim(
            keys.AUDIT_STREAM,
            GROUP,
            self._name,
            min_idle_time=self._claim_idle_ms,
            start_id="0-0",
            count=BATCH,
        )
        return list(reply[1]) if reply and len(reply) > 1 else []

    def _read(self, block: bool) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = self._redis.xreadgroup(
            GROUP, self._name, {keys.AUDIT_STREAM: ">"}, count=BATCH, block=self._block_ms if block else None
        )
        return [entry for _, entries in reply or () for entry in entries]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if 0 < self.drain_once() < FULL_BATCH:
                    self._stop.wait(self._coalesce_s)
                self._checkpoint()
            except Exception as exc:  # Redis or the store is down: keep the entries, try again shortly
                log.warning("audit relay paused (%s)", type(exc).__name__)
                self._stop.wait(self._retry_s)


def _validated(document: Mapping[str, Any]) -> AuditRecord | None:
    try:
        return record_from_document(document)
    except ValueError:  # pydantic's ValidationError: a malformed id from the EHR, say
        log.error("audit relay: an invalid record was skipped")
        return None


def _entries(fields: Mapping[bytes, bytes] | None, entry_id: bytes | str) -> list[ChainEntry]:
    """The chain entries of one stream entry, each with its idempotency key; what is not a record is
    skipped with an error line."""
    entries: list[ChainEntry] = []
    documents = fields.get(_DOCUMENTS) if fields else None  # None: an entry trimmed before it was claimed
    batch = fields.get(_BATCH_KEY) if fields else None
    if isinstance(batch, bytes) and batch.isascii() and 0 < len(batch) <= 64:
        prefix = batch.decode()
    else:  # an entry from before keys: its stream id is as stable across redeliveries
        prefix = "stream:" + (entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
    lines = documents.split(b"\n") if isinstance(documents, bytes) else [b""]
    for number, line in enumerate(lines):
        try:
            record = _validated(orjson.loads(line))
        except orjson.JSONDecodeError:
            record = None
            log.error("audit relay: an unreadable record in the stream was skipped")
        if record is not None:
            entries.append(ChainEntry.of(record, f"{prefix}:{number}"))
    return entries

"""Final hook answers kept in this process for identical calls: a landed review then costs a lookup, not a rebuild.

An EHR fires the same hook for the same chart again and again (every time the chart is opened). Once the
AI review has landed, the answer to such a call no longer changes until the facts, the day or the
deployment change, yet rebuilding it (reading the prefetch into the clinical context, the rules, the
review fingerprint, the Redis read, the cards) costs about 1.5 ms of CPU. The key covers everything the
answer is made from: service, hook, tenant, the whole hook context, the resolved prefetch (after
fetch-back) and the UTC day (relative dates and ages change with it). Only final answers are kept
(`ServiceResult.final`: no review pending, nothing failed or unreachable), for at most `ttl_s`, in a
bounded LRU. The cache is per process and in memory only.

What it keeps per key is the caller's choice (`AnswerCache[V]`): the hook handler keeps the body with what
the audit trail records of the answer (its outcome, review fingerprint and card uuids), so that a call
answered from the cache is audited as the answer it was served.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson

from plugin.services import HookCall

V = TypeVar("V")


class AnswerCache(Generic[V]):
    def __init__(
        self,
        size: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat(),
    ) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock
        self._today = today
        self._entries: OrderedDict[bytes, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, call: HookCall) -> bytes:
        document = [
            call.service_id,
            call.hook,
            call.tenant,
            self._today(),
            call.context,
            call.prefetch,
            [(i.key, i.code) for i in call.prefetch_issues],
        ]
        return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()

    def get(self, key: bytes) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            stored_at, value = found
            if self._clock() - stored_at > self._ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: bytes, value: V) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

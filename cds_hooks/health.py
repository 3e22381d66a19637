"""Liveness and readiness: /healthz says the process serves; /readyz checks each dependency of the full answer.

The two differ on purpose. Hooks keep answering with rule cards when Redis or the model server is down,
so /healthz (what a restart policy should watch) checks nothing outside the process. /readyz answers 503
when any dependency of the *full* answer (Redis for replay protection, the queue and results; the model
server behind the workers) fails, and names which: gate traffic on it only where another replica that is
fully ready should take the call rather than answer with rule cards alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import orjson
from starlette.responses import Response

ReadinessCheck = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S: Final = 2.0
_JSON: Final = "application/json"
_NO_STORE: Final = {"Cache-Control": "no-store"}


class HealthHandler:
    def __init__(self, checks: Mapping[str, ReadinessCheck], timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self._checks = dict(checks)
        self._timeout_s = timeout_s

    def live(self) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON, headers=_NO_STORE)

    async def ready(self) -> Response:
        names = sorted(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        checks = {name: "ok" if passed else "failed" for name, passed in zip(names, results, strict=True)}
        ready = all(results)
        body = {"status": "ready" if ready else "not-ready", "checks": checks}
        return Response(
            orjson.dumps(body), status_code=200 if ready else 503, media_type=_JSON, headers=_NO_STORE
        )

    async def _run(self, check: ReadinessCheck) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), timeout=self._timeout_s))
        except Exception:  # a probe that fails in any way is a failed probe; the reason is not for callers
            return False

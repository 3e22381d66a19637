"""Liveness and readiness: /healthz says the process serves; /readyz checks each dependency of the full answer.

The two differ on purpose. Hooks keep answering with rule cards when Redis or the model server is down,
so /healthz (what a restart policy should watch) checks nothing outside the process. /readyz reports each
dependency of the *full* answer (Redis for replay protection, the queue and results; the audit store; the
model server behind the workers) as one of

    ok     it answered its probe
    busy   it is up but saturated, or hung: the model server gave no answer in time while our model
           requests are in flight or timed out lately, or answered that it is overloaded (workers.wiring
           says which, per backend); degraded, not failed
    down   anything else: refused, unreachable, an error answer, silence with nothing in flight

and answers 503 when any check is down, 200 otherwise, busy included: a saturated model server is load,
not a fault, and taking replicas out of rotation for it would turn a peak into an outage (they all share
it, and each still answers with rule cards and the pending card). Gate traffic on /readyz only where
another replica that is fully ready should take the call rather than answer with rule cards alone.

A check returns one of those states, or a bool (True ok, False down) as older checks do; one that raises,
returns anything else or takes longer than its time (CHECK_TIMEOUT_S) is down. The body names every check:
`{"status": "ready", "checks": {"audit": "ok", "model": "busy", "redis": "ok"}}`.

The "audit" check is the worse of the store's probe (its chain head can be read) and the API's audit
trail (`audited_readiness`): down while the trail's last write failed (a full disk reads fine and writes
nothing), busy while its backlog dropped records lately, so a store that loses records never says ok.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Literal, Protocol

import orjson
from starlette.responses import Response

CheckState = Literal["ok", "busy", "down"]
ReadinessCheck = Callable[[], Awaitable[bool | CheckState]]
CHECK_TIMEOUT_S: Final = 2.0
_STATES: Final[Mapping[str, CheckState]] = {"ok": "ok", "busy": "busy", "down": "down"}
_JSON: Final = "application/json"
_NO_STORE: Final = {"Cache-Control": "no-store"}


def check_state(result: object) -> CheckState:
    """What a check's result says: its state, True as ok, anything else (False included) as down."""
    if result is True:
        return "ok"
    return _STATES.get(result, "down") if isinstance(result, str) else "down"


_RANK: Final[Mapping[CheckState, int]] = {"ok": 0, "busy": 1, "down": 2}


class AuditHealth(Protocol):
    def state(self) -> CheckState: ...


def audited_readiness(trail: AuditHealth, store: ReadinessCheck | None) -> ReadinessCheck:
    """The "audit" check: the worse of the trail's own state (cds_hooks.handlers.AuditTrail.state) and
    the store's probe, when there is one."""

    async def check() -> CheckState:
        own = trail.state()
        if own == "down" or store is None:
            return own
        probed = check_state(await store())
        return probed if _RANK[probed] > _RANK[own] else own

    return check


class HealthHandler:
    def __init__(self, checks: Mapping[str, ReadinessCheck], timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self._checks = dict(checks)
        self._timeout_s = timeout_s

    def live(self) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON, headers=_NO_STORE)

    async def ready(self) -> Response:
        names = sorted(self._checks)
        states = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        checks = dict(zip(names, states, strict=True))
        ready = "down" not in states
        body = {"status": "ready" if ready else "not-ready", "checks": checks}
        return Response(
            orjson.dumps(body), status_code=200 if ready else 503, media_type=_JSON, headers=_NO_STORE
        )

    async def _run(self, check: ReadinessCheck) -> CheckState:
        try:
            result = await asyncio.wait_for(check(), timeout=self._timeout_s)
        except Exception:  # a probe that fails in any way is a failed probe; the reason is not for callers
            return "down"
        return check_state(result)

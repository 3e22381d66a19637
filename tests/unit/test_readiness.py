"""Readiness that tells busy from down: /readyz's states, the model check's table, the adapters' probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, get_args

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from cds_hooks.health import CHECK_TIMEOUT_S, HealthHandler, check_state
from inference.llamacpp import LlamaCppModel
from inference.openai_compat import AdapterConfig, OpenAICompatibleModel, ProbeResult
from inference.sglang import SGLangModel
from plugin.model_port import ScriptedModel
from workers.settings import ReviewSettings
from workers.wiring import (
    IN_FLIGHT_TIMEOUT_S,
    MODEL_PROBE_TIMEOUT_S,
    ModelReadiness,
    model_readiness,
    model_state,
    probe_model,
)

pytestmark = pytest.mark.unit

BASE = "http://model.test"
FAST = 0.05  # the probe's time in these tests: a silent server costs this much
MODELS = {"object": "list", "data": [{"id": "gemma-3-270m-it-Q4_K_M.gguf", "object": "model"}]}
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def body(response: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(response.body)
    return parsed


async def ok() -> bool:
    return True


async def no() -> bool:
    return False


def state(value: str) -> Callable[[], Awaitable[str]]:
    async def check() -> str:
        return value

    return check


class InFlight:
    """A fake beside workers.semaphore.in_flight: a count, or an error, and how often it was read."""

    def __init__(self, count: int = 0, error: Exception | None = None, delay_s: float = 0.0) -> None:
        self.count, self.error, self.delay_s = count, error, delay_s
        self.reads = 0

    async def __call__(self) -> int:
        self.reads += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.count


async def never_answers(_request: httpx.Request) -> httpx.Response:
    """A server that took the connection and says nothing (llama-cpp-python while it decodes)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def answers(status: int, json: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=json, headers=headers)

    return handler


def raises(exc: Exception) -> Handler:
    async def handler(_request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


# ------------------------------------------------------------------------------------------ /readyz itself


async def test_busy_keeps_readyz_200_and_names_the_busy_check() -> None:
    response = await HealthHandler({"model": state("busy"), "audit": ok}).ready()
    assert response.status_code == 200
    assert body(response) == {"status": "ready", "checks": {"audit": "ok", "model": "busy"}}
    assert response.headers["cache-control"] == "no-store"


async def test_any_down_check_is_503_and_every_check_is_named() -> None:
    response = await HealthHandler({"model": state("down"), "audit": ok, "redis": state("busy")}).ready()
    assert response.status_code == 503
    assert body(response) == {
        "status": "not-ready",
        "checks": {"audit": "ok", "model": "down", "redis": "busy"},
    }


async def test_bool_checks_keep_working_true_ok_false_down() -> None:
    assert (await HealthHandler({"audit": ok, "redis": ok}).ready()).status_code == 200
    response = await HealthHandler({"audit": ok, "redis": no}).ready()
    assert response.status_code == 503
    assert body(response)["checks"] == {"audit": "ok", "redis": "down"}


async def test_a_check_that_raises_or_overruns_its_time_is_down() -> None:
    async def broken() -> bool:
        raise RuntimeError("secret detail that must not reach the caller")

    async def slow() -> bool:
        await asyncio.sleep(1)
        return True

    response = await HealthHandler({"broken": broken, "slow": slow}, timeout_s=FAST).ready()
    assert response.status_code == 503
    assert body(response)["checks"] == {"broken": "down", "slow": "down"}
    assert b"secret" not in response.body


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (True, "ok"),
        (False, "down"),
        ("ok", "ok"),
        ("busy", "busy"),
        ("down", "down"),
        ("failed", "down"),  # the old vocabulary's word is no state of the new one
        (None, "down"),
        (1, "down"),
        ("BUSY", "down"),
    ],
)
def test_check_results_map_to_the_three_states(result: object, expected: str) -> None:
    assert check_state(result) == expected


def test_the_model_check_fits_inside_readyz_time_per_check() -> None:
    # Beyond it /readyz would cut the check off as down before it could tell busy from down.
    assert MODEL_PROBE_TIMEOUT_S + IN_FLIGHT_TIMEOUT_S < CHECK_TIMEOUT_S
    assert MODEL_PROBE_TIMEOUT_S > 1.0, "SGLang's /health answers at its first once-a-second check"


# ------------------------------------------------------------------------------------ the model's table


PROBES: tuple[ProbeResult, ...] = get_args(ProbeResult)


@pytest.mark.parametrize("probed", PROBES)
@pytest.mark.parametrize("in_flight", [None, 0, 2])
def test_model_state_table(probed: ProbeResult, in_flight: int | None) -> None:
    expected = {
        "up": "ok",
        "overloaded": "busy",
        "silent": "busy" if in_flight else "down",
        "unreachable": "down",
        "failing": "down",
    }[probed]
    assert model_state(probed, in_flight) == expected


async def test_a_probe_that_answers_is_decided_without_counting_requests() -> None:
    count = InFlight(3)

    async def up(_timeout_s: float) -> ProbeResult:
        return "up"

    assert await ModelReadiness(up, count)() == "ok"
    assert count.reads == 0, "the common case costs Redis nothing"


async def test_silence_past_the_probe_time_counts_requests_in_flight() -> None:
    async def hangs(_timeout_s: float) -> ProbeResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    busy = InFlight(1)
    assert await ModelReadiness(hangs, busy, probe_timeout_s=FAST)() == "busy"
    assert busy.reads == 1
    assert await ModelReadiness(hangs, InFlight(0), probe_timeout_s=FAST)() == "down"


@pytest.mark.parametrize(
    "count",
    [InFlight(error=RedisConnectionError("refused")), InFlight(error=OSError()), InFlight(2, delay_s=1)],
)
async def test_silence_with_an_unreadable_count_is_down(count: InFlight) -> None:
    async def silent(_timeout_s: float) -> ProbeResult:
        return "silent"

    assert await ModelReadiness(silent, count, in_flight_timeout_s=FAST)() == "down"


async def test_no_model_server_configured_is_down() -> None:
    count = InFlight(2)
    assert await ModelReadiness(None, count)() == "down"
    assert count.reads == 0
    client = aioredis.Redis(host="127.0.0.1", port=1)  # never used: there is nothing to probe
    try:
        settings = ReviewSettings(model_backend="llamacpp", model_url=None)
        assert await model_readiness(settings, client)() == "down"
    finally:
        await client.aclose()


async def test_a_backend_without_a_server_says_whether_it_answers() -> None:
    assert await probe_model(ScriptedModel(), FAST) == "up"


# ------------------------------------------------------------------ the adapters' probes, over the wire


def llamacpp(client: httpx.AsyncClient) -> LlamaCppModel:
    return LlamaCppModel(client, AdapterConfig(BASE, model="/models/gemma-3-270m-it-Q4_K_M.gguf"))


def sglang(client: httpx.AsyncClient) -> SGLangModel:
    return SGLangModel(client, AdapterConfig(BASE))


async def readyz(model: OpenAICompatibleModel, count: InFlight) -> tuple[int, dict[str, Any]]:
    """/readyz over the real adapter's probe and a fake count, as cds_hooks.stack wires it."""
    check = ModelReadiness(model.probe, count, probe_timeout_s=FAST)
    response = await HealthHandler({"model": check, "audit": ok}).ready()
    return response.status_code, body(response)


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
async def test_probe_ok_is_ready(make: Any, client_for: Any) -> None:
    seen: list[str] = []

    async def healthy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=MODELS) if request.url.path == "/v1/models" else httpx.Response(200)

    model = make(client_for(healthy))
    assert await readyz(model, InFlight(0)) == (
        200,
        {"status": "ready", "checks": {"audit": "ok", "model": "ok"}},
    )
    assert seen == ["/v1/models" if make is llamacpp else "/health"]
    assert await model.ready() is True


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
async def test_probe_timeout_with_requests_in_flight_is_busy_and_200(make: Any, client_for: Any) -> None:
    model = make(client_for(never_answers))
    assert await model.probe(FAST) == "silent"
    status, answer = await readyz(model, InFlight(1))
    assert (status, answer) == (200, {"status": "ready", "checks": {"audit": "ok", "model": "busy"}})


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
async def test_probe_timeout_with_nothing_in_flight_is_down_and_503(make: Any, client_for: Any) -> None:
    status, answer = await readyz(make(client_for(never_answers)), InFlight(0))
    assert (status, answer) == (503, {"status": "not-ready", "checks": {"audit": "ok", "model": "down"}})


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectError("[Errno -2] Name or service not known"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=["refused", "dns", "connect-timeout", "dropped"],
)
async def test_no_connection_is_down_even_with_requests_in_flight(
    make: Any, failure: Exception, client_for: Any
) -> None:
    model = make(client_for(raises(failure)))
    assert await model.probe(FAST) == "unreachable"
    status, answer = await readyz(model, InFlight(4))
    assert (status, answer["checks"]["model"]) == (503, "down")


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
async def test_a_read_timeout_reported_by_the_client_is_silence(make: Any, client_for: Any) -> None:
    model = make(client_for(raises(httpx.ReadTimeout("timed out"))))
    assert await model.probe(FAST) == "silent"
    assert (await readyz(model, InFlight(1)))[1]["checks"]["model"] == "busy"


async def test_sglang_503_is_down_whatever_is_in_flight(client_for: Any) -> None:
    # SGLang answers 503 while starting, shutting down, or after 20 s without output: never for load.
    model = sglang(client_for(answers(503)))
    assert await model.probe(FAST) == "failing"
    assert (await readyz(model, InFlight(4)))[0] == 503


@pytest.mark.parametrize("make", [llamacpp, sglang], ids=["llamacpp", "sglang"])
@pytest.mark.parametrize(
    ("status", "headers"), [(429, None), (429, {"Retry-After": "5"}), (503, {"Retry-After": "5"})]
)
async def test_an_overload_answer_from_a_gateway_is_busy_with_nothing_in_flight(
    make: Any, status: int, headers: dict[str, str] | None, client_for: Any
) -> None:
    model = make(client_for(answers(status, {"error": "overloaded"}, headers)))
    assert await model.probe(FAST) == "overloaded"
    assert await readyz(model, InFlight(0)) == (
        200,
        {"status": "ready", "checks": {"audit": "ok", "model": "busy"}},
    )
    assert await model.ready() is False


@pytest.mark.parametrize(
    ("status", "payload", "headers"),
    [
        (503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}, None),
        (500, {"error": "boom"}, None),
        (502, None, None),
        (401, {"error": "Unauthorized"}, None),
        (200, {"data": "not a list"}, None),
        (200, ["not", "an", "object"], None),
    ],
    ids=["llama-server-loading", "500", "502", "401", "no-list", "not-an-object"],
)
async def test_generic_error_answers_are_failing_and_down(
    status: int, payload: Any, headers: dict[str, str] | None, client_for: Any
) -> None:
    model = OpenAICompatibleModel(client_for(answers(status, payload, headers)), AdapterConfig(BASE))
    assert await model.probe(FAST) == "failing"
    assert (await readyz(model, InFlight(2)))[1]["checks"]["model"] == "down"
    assert await model.ready() is False


async def test_a_body_that_is_not_json_is_failing(client_for: Any) -> None:
    async def html(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy login</html>")

    assert await OpenAICompatibleModel(client_for(html), AdapterConfig(BASE)).probe(FAST) == "failing"


async def test_the_probe_sends_the_api_key_and_a_request_id(client_for: Any) -> None:
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=MODELS)

    config = AdapterConfig(BASE, api_key="sk-probe")
    assert await OpenAICompatibleModel(client_for(record), config).probe() == "up"
    [sent] = seen
    assert sent.headers["authorization"] == "Bearer sk-probe"
    assert sent.headers["x-request-id"].startswith("r1cds-")

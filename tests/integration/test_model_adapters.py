"""The SGLang and OpenAI-compatible adapters over real loopback HTTP against the SGLang stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from inference.openai_compat import AdapterConfig, OpenAICompatibleModel, RetryPolicy
from inference.sglang import SGLangModel
from plugin.model_port import (
    ModelRejected,
    ModelRequest,
    ModelTimeout,
    ModelUnavailable,
    SamplingParameters,
)
from tests.support.asgi_server import unused_loopback_url
from tests.support.sglang_stand_in import (
    ScriptedChoice,
    SGLangStandIn,
    answer,
    dropped,
    http_error,
    ok,
    queue_full,
    rate_limited,
    running_sglang,
    server_error,
    slow,
    streamed_drop_after,
    streamed_error_after,
    streamed_stall_after,
    truncated_in_reasoning,
)

pytestmark = pytest.mark.integration

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"suggestions": {"type": "array", "items": {"type": "object"}}},
    "required": ["suggestions"],
}
# Long enough that the stand-in's prompt-token estimate exceeds its cached-token count.
PROMPT = (
    "Review the de-identified chart below and answer in JSON. " * 8 + "Facts: M1 warfarin 5 mg; O3 eGFR 28."
)
ANSWER = '{"suggestions": [{"action": "consider dose reduction", "cites": ["M1", "O3"]}]}'
REASONING = "eGFR 28 with warfarin: bleeding risk; cite M1 and O3."
FAST = RetryPolicy(max_attempts=3, backoff_base_s=0.004, backoff_max_s=0.02, retry_after_cap_s=0.03)


def chat_request(**sampling: Any) -> ModelRequest:
    stream = bool(sampling.pop("stream", False))
    return ModelRequest(PROMPT, SCHEMA, "suggestions", SamplingParameters(**sampling), stream)


class RecordingSleep:
    """Really waits (the delays are tiny) and remembers each wait, so backoff can be asserted."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


@pytest.fixture
def stand_in() -> Iterator[SGLangStandIn]:
    with running_sglang() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def sglang_model(
    http: httpx.AsyncClient, url: str, sleep: RecordingSleep | None = None, **overrides: Any
) -> SGLangModel:
    settings: dict[str, Any] = {"base_url": url, "retry": FAST, "read_timeout_s": 5.0, "chunk_timeout_s": 5.0}
    settings.update(overrides)
    return SGLangModel(http, AdapterConfig(**settings), sleep=sleep or RecordingSleep())


# ------------------------------------------------------------------------------------------- outcomes


async def test_answer_carries_reasoning_content_usage_and_identity(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(ok(ANSWER, reasoning=REASONING))
    response = await sglang_model(http, stand_in.url).generate(chat_request())

    [sample] = response.samples
    assert (sample.content, sample.reasoning, sample.finish_reason) == (ANSWER, REASONING, "stop")
    assert response.usage.prompt_tokens > 48
    assert response.usage.completion_tokens > 0
    assert response.usage.reasoning_tokens == (len(REASONING) + 3) // 4
    assert response.usage.cached_tokens == 48
    assert response.identity.backend == "sglang"
    assert response.identity.model == "deepseek-ai/DeepSeek-R1"
    assert response.identity.details["reasoning_parser"] == "deepseek-r1"
    [received] = stand_in.requests
    assert response.request_id == received.rid == received.request_id_header
    assert response.latency_s > 0


async def test_request_body_is_r1_practice_in_sglang_shape(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    await sglang_model(http, stand_in.url).generate(chat_request(seed=7, max_completion_tokens=4096))

    body = stand_in.requests[0].body
    assert body["messages"] == [{"role": "user", "content": PROMPT}]  # no system prompt
    assert (body["model"], body["n"], body["temperature"], body["top_p"]) == ("default", 1, 0.6, 0.95)
    assert body["max_completion_tokens"] == body["max_tokens"] == 4096
    assert body["seed"] == 7
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "suggestions", "schema": SCHEMA, "strict": True},
    }
    assert "stream" not in body


@pytest.mark.parametrize("open_tag", [True, False], ids=["think-open-and-close", "close-tag-only"])
async def test_think_tags_are_split_when_the_server_runs_no_reasoning_parser(
    http: httpx.AsyncClient, open_tag: bool
) -> None:
    with running_sglang(SGLangStandIn(reasoning_parser=None, think_open_tag_in_output=open_tag)) as server:
        server.push(ok(ANSWER, reasoning=REASONING))
        response = await sglang_model(http, server.url).generate(chat_request())

    [sample] = response.samples
    assert (sample.content, sample.reasoning) == (ANSWER, REASONING)


@pytest.mark.parametrize("parser", ["deepseek-r1", None], ids=["reasoning-parser", "raw-think-tags"])
async def test_budget_spent_in_reasoning_is_length_with_empty_content(
    http: httpx.AsyncClient, parser: str | None
) -> None:
    with running_sglang(SGLangStandIn(reasoning_parser=parser)) as server:
        server.push(truncated_in_reasoning("Weighing renal dosing"))
        response = await sglang_model(http, server.url).generate(chat_request())

    [sample] = response.samples
    assert (sample.content, sample.reasoning, sample.finish_reason) == ("", "Weighing renal dosing", "length")


async def test_three_samples_come_back_in_choice_order(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(answer(*(ScriptedChoice(f'{{"k": {k}}}', f"path {k}") for k in range(3))))
    response = await sglang_model(http, stand_in.url).generate(chat_request(n=3))

    assert [(s.content, s.reasoning) for s in response.samples] == [
        (f'{{"k": {k}}}', f"path {k}") for k in range(3)
    ]
    assert stand_in.requests[0].body["n"] == 3


# -------------------------------------------------------------------------------------------- retries


async def test_closed_port_is_unavailable_after_every_attempt_with_growing_backoff(
    http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    ids: list[str] = []

    def new_id() -> str:
        ids.append(f"attempt-{len(ids)}")
        return ids[-1]

    model = SGLangModel(
        http, AdapterConfig(unused_loopback_url(), retry=FAST), sleep=sleep, new_request_id=new_id
    )
    with pytest.raises(ModelUnavailable, match="after 3 attempts"):
        await model.generate(chat_request())

    assert ids == ["attempt-0", "attempt-1", "attempt-2"]
    assert len(sleep.delays) == 2
    assert 0.002 <= sleep.delays[0] <= 0.004 <= sleep.delays[1] <= 0.008


@pytest.mark.parametrize(
    "failure",
    [
        http_error(408, "Request Timeout", "408"),
        rate_limited(retry_after="1"),
        server_error(),
        queue_full(),
    ],
    ids=["408", "429", "500", "503-queue-full"],
)
async def test_transient_status_then_success_uses_a_fresh_rid(
    stand_in: SGLangStandIn, http: httpx.AsyncClient, sleep: RecordingSleep, failure: Any
) -> None:
    stand_in.push(failure, ok(ANSWER))
    response = await sglang_model(http, stand_in.url, sleep).generate(chat_request())

    assert response.samples[0].content == ANSWER
    assert stand_in.chat_requests == 2
    first, second = stand_in.rids
    assert first and second and first != second
    assert response.request_id == second
    assert [r.request_id_header for r in stand_in.requests] == [first, second]
    [delay] = sleep.delays
    if failure.retry_after is not None:
        assert delay == FAST.retry_after_cap_s  # Retry-After: 1, capped
    else:
        assert FAST.backoff_base_s / 2 <= delay <= FAST.backoff_base_s


async def test_retry_after_below_the_cap_is_honoured_as_sent(
    stand_in: SGLangStandIn, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    stand_in.push(rate_limited(retry_after="0"), ok(ANSWER))
    await sglang_model(http, stand_in.url, sleep).generate(chat_request())
    assert sleep.delays == [0.0]


async def test_queue_full_every_time_ends_unavailable_with_the_server_message(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(queue_full(), queue_full(), queue_full())
    with pytest.raises(ModelUnavailable, match=r"HTTP 503: The request queue is full\."):
        await sglang_model(http, stand_in.url).generate(chat_request())
    assert stand_in.chat_requests == 3
    assert len(set(stand_in.rids)) == 3


async def test_invalid_request_is_rejected_by_sglang_validation_at_once(
    stand_in: SGLangStandIn, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    with pytest.raises(ModelRejected, match="temperature must be non-negative") as caught:
        await sglang_model(http, stand_in.url, sleep).generate(chat_request(temperature=-0.5))
    assert caught.value.status == 400
    assert stand_in.chat_requests == 1
    assert sleep.delays == []


@pytest.mark.parametrize("envelope", ["flat", "nested"])
async def test_422_is_rejected_at_once_with_the_message_of_either_envelope(
    stand_in: SGLangStandIn, http: httpx.AsyncClient, envelope: Any
) -> None:
    stand_in.push(
        http_error(
            422, "response_format.json_schema: unsupported keyword", "Unprocessable", envelope=envelope
        )
    )
    with pytest.raises(ModelRejected, match="unsupported keyword") as caught:
        await sglang_model(http, stand_in.url).generate(chat_request())
    assert caught.value.status == 422
    assert stand_in.chat_requests == 1


async def test_wrong_api_key_is_rejected_and_the_right_one_is_sent(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(api_key="sk-stand-in")) as server:
        with pytest.raises(ModelRejected, match="Unauthorized") as caught:
            await sglang_model(http, server.url, api_key="sk-wrong").generate(chat_request())
        assert caught.value.status == 401
        response = await sglang_model(http, server.url, api_key="sk-stand-in").generate(chat_request())
    assert response.samples
    assert server.requests[-1].headers["authorization"] == "Bearer sk-stand-in"


async def test_dropped_connection_is_retried(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(dropped(), ok(ANSWER))
    response = await sglang_model(http, stand_in.url).generate(chat_request())
    assert response.samples[0].content == ANSWER
    assert stand_in.chat_requests == 2


# ------------------------------------------------------------------------------------------- timeouts


async def test_slow_answers_end_in_timeout(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(slow(0.4), slow(0.4))
    model = sglang_model(http, stand_in.url, read_timeout_s=0.1, retry=RetryPolicy(2, 0.001, 0.001))
    with pytest.raises(ModelTimeout, match="after 2 attempts"):
        await model.generate(chat_request())
    assert stand_in.chat_requests == 2


async def test_one_slow_answer_is_retried(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(slow(0.4), ok(ANSWER))
    response = await sglang_model(http, stand_in.url, read_timeout_s=0.1).generate(chat_request())
    assert response.samples[0].content == ANSWER


async def test_total_timeout_bounds_the_whole_call(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(slow(0.5))
    model = sglang_model(http, stand_in.url, total_timeout_s=0.1)
    with pytest.raises(ModelTimeout, match=r"within 0\.1 s"):
        await model.generate(chat_request())
    assert stand_in.chat_requests == 1


# ------------------------------------------------------------------------------------------ streaming


async def test_stream_accumulates_content_reasoning_and_usage(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(answer(ScriptedChoice(ANSWER, REASONING), ScriptedChoice('{"suggestions": []}', "nothing")))
    response = await sglang_model(http, stand_in.url).generate(chat_request(n=2, stream=True))

    assert [(s.content, s.reasoning, s.finish_reason) for s in response.samples] == [
        (ANSWER, REASONING, "stop"),
        ('{"suggestions": []}', "nothing", "stop"),
    ]
    assert response.usage.reasoning_tokens == (len(REASONING) + 3) // 4 + (len("nothing") + 3) // 4
    assert response.usage.cached_tokens == 48
    assert response.usage.prompt_tokens > 0
    body = stand_in.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert response.request_id == stand_in.rids[0]


async def test_stream_from_a_server_without_reasoning_parser_is_split(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(reasoning_parser=None, think_open_tag_in_output=False)) as server:
        server.push(ok(ANSWER, reasoning=REASONING))
        response = await sglang_model(http, server.url).generate(chat_request(stream=True))
    assert (response.samples[0].content, response.samples[0].reasoning) == (ANSWER, REASONING)


async def test_stream_truncated_in_reasoning(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(truncated_in_reasoning("Weighing renal dosing"))
    response = await sglang_model(http, stand_in.url).generate(chat_request(stream=True))
    [sample] = response.samples
    assert (sample.content, sample.reasoning, sample.finish_reason) == ("", "Weighing renal dosing", "length")


async def test_mid_stream_error_chunk_is_unavailable_without_retry(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(streamed_error_after(3, "Generation aborted: KV cache exhausted."))
    with pytest.raises(ModelUnavailable, match=r"mid-stream.*KV cache exhausted"):
        await sglang_model(http, stand_in.url).generate(chat_request(stream=True))
    assert stand_in.chat_requests == 1


async def test_stalled_stream_times_out_per_chunk(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(streamed_stall_after(3, stall_s=0.5))
    with pytest.raises(ModelTimeout, match="no stream chunk"):
        await sglang_model(http, stand_in.url, chunk_timeout_s=0.1).generate(chat_request(stream=True))
    assert stand_in.chat_requests == 1


async def test_a_slow_but_steady_stream_is_not_a_timeout(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(streamed_stall_after(2, stall_s=0.05))
    response = await sglang_model(http, stand_in.url, chunk_timeout_s=0.5).generate(chat_request(stream=True))
    assert response.samples[0].finish_reason == "stop"


async def test_dropped_stream_is_unavailable(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    stand_in.push(streamed_drop_after(4))
    with pytest.raises(ModelUnavailable, match="stream"):
        await sglang_model(http, stand_in.url).generate(chat_request(stream=True))
    assert stand_in.chat_requests == 1


async def test_stream_refused_before_its_first_byte_is_retried(
    stand_in: SGLangStandIn, http: httpx.AsyncClient
) -> None:
    stand_in.push(queue_full(), ok(ANSWER, reasoning=REASONING))
    response = await sglang_model(http, stand_in.url).generate(chat_request(stream=True))
    assert (response.samples[0].content, response.samples[0].reasoning) == (ANSWER, REASONING)
    assert stand_in.chat_requests == 2
    assert stand_in.rids[0] != stand_in.rids[1]


# ------------------------------------------------------------------------------- identity, readiness


async def test_identity_records_model_and_server_info_once(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(api_key="sk-launch-secret")) as server:
        model = sglang_model(http, server.url, api_key="sk-launch-secret")
        identity = await model.identity()
        probes_after_first = list(server.probes)
        again = await model.identity()
        await model.generate(chat_request())

    assert again is identity
    assert server.probes == probes_after_first == ["/model_info", "/server_info"]
    assert identity.backend == "sglang"
    assert identity.model == "deepseek-ai/DeepSeek-R1"
    assert identity.details == {
        "model_path": "deepseek-ai/DeepSeek-R1",
        "is_generation": "true",
        "weight_version": "default",
        "model_type": "deepseek_v3",
        "architectures": "DeepseekV3ForCausalLM",
        "sglang_version": "0.5.6",
        "served_model_name": "deepseek-ai/DeepSeek-R1",
        "tp_size": "8",
        "dp_size": "1",
        "context_length": "131072",
        "reasoning_parser": "deepseek-r1",
        "quantization": "fp8",
        "dtype": "auto",
        "kv_cache_dtype": "auto",
        "grammar_backend": "xgrammar",
        "enable_cache_report": "true",
    }
    assert not any("secret" in value for value in identity.details.values())


async def test_identity_uses_the_served_model_name(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(served_model_name="r1")) as server:
        identity = await sglang_model(http, server.url).identity()
    assert identity.model == "r1"
    assert identity.details["model_path"] == "deepseek-ai/DeepSeek-R1"


async def test_identity_falls_back_to_the_legacy_info_paths(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(legacy_info_paths=True, version="0.5.0")) as server:
        identity = await sglang_model(http, server.url).identity()
    assert identity.details["sglang_version"] == "0.5.0"
    assert server.probes == ["/model_info", "/get_model_info", "/server_info", "/get_server_info"]


async def test_identity_without_server_info_says_so_and_is_not_cached(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(server_info_status=403)) as server:
        model = sglang_model(http, server.url)
        first = await model.generate(chat_request())
        second = await model.generate(chat_request())
        probes_by_answers = list(server.probes)
        await model.identity()
    assert first.identity == second.identity
    assert first.identity.details["server_info"] == "unavailable"
    assert first.identity.details["model_path"] == "deepseek-ai/DeepSeek-R1"
    assert probes_by_answers == ["/model_info", "/server_info"]  # the answers reuse the partial identity
    assert server.probes.count("/model_info") == 2  # identity() itself tries again


async def test_identity_of_an_unreachable_server_is_unavailable(http: httpx.AsyncClient) -> None:
    with pytest.raises(ModelUnavailable):
        await sglang_model(http, unused_loopback_url()).identity()


async def test_readiness_follows_health(stand_in: SGLangStandIn, http: httpx.AsyncClient) -> None:
    model = sglang_model(http, stand_in.url)
    assert await model.ready() is True
    stand_in.healthy = False
    assert await model.ready() is False
    assert stand_in.probes == ["/health", "/health"]
    assert await sglang_model(http, unused_loopback_url()).ready() is False


# ------------------------------------------------------------------------------- the generic adapter


async def test_generic_adapter_over_the_same_wire(http: httpx.AsyncClient) -> None:
    with running_sglang(SGLangStandIn(usage_style="openai", served_model_name="r1")) as server:
        model = OpenAICompatibleModel(http, AdapterConfig(server.url, model="r1", retry=FAST))
        assert await model.ready() is True
        server.push(ok(ANSWER, reasoning=REASONING))
        response = await model.generate(chat_request())
        identity = await model.identity()

    assert (response.samples[0].content, response.samples[0].reasoning) == (ANSWER, REASONING)
    assert response.usage.reasoning_tokens == (len(REASONING) + 3) // 4
    assert identity.backend == "openai"
    assert identity.model == "r1"
    assert identity.details == {
        "owned_by": "sglang",
        "root": "deepseek-ai/DeepSeek-R1",
        "max_model_len": "131072",
    }
    [received] = server.requests
    assert "rid" not in received.body
    assert received.request_id_header == response.request_id
    assert received.body["model"] == "r1"


async def test_generic_adapter_readiness_of_an_unreachable_server(http: httpx.AsyncClient) -> None:
    model = OpenAICompatibleModel(http, AdapterConfig(unused_loopback_url(), retry=FAST))
    assert await model.ready() is False

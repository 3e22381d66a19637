"""Model adapters without a server: parsing helpers, and the adapters over httpx.MockTransport."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any

import httpx
import orjson
import pytest

from inference.errors import ServerError, parse_error_body, parse_retry_after, stream_error
from inference.openai_compat import (
    AdapterConfig,
    OpenAICompatibleModel,
    RetryPolicy,
    StreamAccumulator,
    map_finish_reason,
    parse_completion,
    parse_usage,
    split_think_tags,
    sse_data,
)
from inference.sglang import SGLangModel, identity_details
from plugin.model_port import (
    ModelRejected,
    ModelRequest,
    ModelTimeout,
    ModelUnavailable,
    Sample,
    SamplingParameters,
    Usage,
)

pytestmark = pytest.mark.unit

BASE = "http://model.test"
SCHEMA = {"type": "object", "properties": {"suggestions": {"type": "array"}}}
NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0, retry_after_cap_s=0.0)
Handler = Callable[[httpx.Request], httpx.Response]


def completion(*messages: dict[str, Any], finish: str = "stop", usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "served",
        "choices": [
            {"index": index, "message": {"role": "assistant", **message}, "finish_reason": finish}
            for index, message in enumerate(messages)
        ],
        "usage": usage,
    }


def sse(*chunks: Any, done: bool = True) -> bytes:
    lines = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


def request(stream: bool = False, **sampling: Any) -> ModelRequest:
    return ModelRequest("prompt", SCHEMA, "suggestions", SamplingParameters(**sampling), stream)


class Recorder:
    """A MockTransport handler answering POSTs from a list and remembering them; every GET answers 404."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={"detail": "Not Found"})
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [orjson.loads(r.content) for r in self.requests]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# ------------------------------------------------------------------------------------ error bodies


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"object": "error", "message": "The request queue is full.", "type": "503", "param": null, "code": 503}',
            ServerError("The request queue is full.", "503", "503"),
        ),
        (
            b'{"error": {"object": "error", "message": "bad schema", "type": "BadRequest", "code": 400}}',
            ServerError("bad schema", "BadRequest", "400"),
        ),
        (
            b'{"error": {"message": "Invalid max_tokens", "type": "invalid_request_error", "code": null}}',
            ServerError("Invalid max_tokens", "invalid_request_error"),
        ),
        (b'{"error": "Unauthorized"}', ServerError("Unauthorized")),
        (b'{"detail": "Not Found"}', ServerError("Not Found")),
        (
            b'{"detail": [{"loc": ["body", "messages"], "msg": "Field required"}, {"loc": [], "msg": "x"}]}',
            ServerError("messages: Field required; x"),
        ),
        (
            b"<html><body>\n  502 Bad   Gateway\n</body></html>",
            ServerError("<html><body> 502 Bad Gateway </body></html>"),
        ),
        (b'["not", "an", "object"]', ServerError('["not", "an", "object"]')),
        (b'{"unrelated": true}', ServerError('{"unrelated": true}')),
        (b"", ServerError("HTTP 502")),
    ],
    ids=[
        "sglang-flat",
        "sglang-nested",
        "openai",
        "error-string",
        "detail",
        "detail-list",
        "html",
        "array",
        "unknown",
        "empty",
    ],
)
def test_error_bodies_of_every_dialect(body: bytes, expected: ServerError) -> None:
    assert parse_error_body(body, 502) == expected


def test_long_error_bodies_are_shortened() -> None:
    message = parse_error_body(b"x" * 5000).message
    assert len(message) == 500
    assert message.endswith("…")


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"error": {"object": "error", "message": "aborted", "type": "X", "code": 500}}, "aborted"),
        ({"object": "error", "message": "flat", "type": "X", "code": 500}, "flat"),
        ({"error": {"code": 500}}, "the server reported an error without a message"),
        ({"object": "chat.completion.chunk", "choices": []}, None),
        ({"error": None, "choices": []}, None),
        ("[DONE]", None),
    ],
)
def test_stream_error_chunks(chunk: Any, message: str | None) -> None:
    found = stream_error(chunk)
    assert (found.message if found else None) == message


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("Wed, 01 Jan 2026 12:00:09", now) == 9.0  # no zone: read as UTC
    for bad in (None, "", "soon", "-3", "1.5"):
        assert parse_retry_after(bad, now) is None


# ---------------------------------------------------------------------------- think tags, finishes


@pytest.mark.parametrize(
    ("text", "content", "reasoning"),
    [
        ("<think>\nweigh it\n</think>\n\n{}", "{}", "weigh it"),
        ("weigh it\n</think>\n\n{}", "{}", "weigh it"),
        ("  <think>weigh it</think>{}", "{}", "weigh it"),
        ("<think>\nweigh it, then", "", "weigh it, then"),
        ("<think></think>{}", "{}", ""),
        ("<think>", "", ""),
        ('{"a": 1}', '{"a": 1}', None),
        ("", "", None),
        ("<think>a</think>b</think>c", "b</think>c", "a"),
        ("say <think> later", "say <think> later", None),
    ],
    ids=[
        "both-tags",
        "close-only-r1-template",
        "leading-space",
        "unterminated",
        "empty-reasoning",
        "open-tag-alone",
        "no-tags",
        "empty",
        "second-close-stays",
        "open-tag-not-first",
    ],
)
def test_split_think_tags(text: str, content: str, reasoning: str | None) -> None:
    assert split_think_tags(text) == (content, reasoning)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("abort", "abort"),
        ("error", "error"),
        ("STOP", "stop"),
        ("tool_calls", "unknown"),
        ("content_filter", "unknown"),
        (None, "unknown"),
        (3, "unknown"),
    ],
)
def test_finish_reasons_map_onto_the_port(value: object, expected: str) -> None:
    assert map_finish_reason(value) == expected


# ------------------------------------------------------------------------------------------- usage


def test_usage_in_sglang_shape() -> None:
    raw = {
        "prompt_tokens": 900,
        "total_tokens": 1300,
        "completion_tokens": 400,
        "prompt_tokens_details": {"cached_tokens": 512},
        "reasoning_tokens": 350,
    }
    assert parse_usage(raw) == Usage(900, 400, 350, 512)


def test_usage_in_openai_shape_wins_over_the_top_level_field() -> None:
    raw = {
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "completion_tokens_details": {"reasoning_tokens": 15},
        "reasoning_tokens": 0,
    }
    assert parse_usage(raw) == Usage(10, 20, 15, None)


def test_usage_zero_reasoning_next_to_reasoning_text_is_unknown() -> None:
    samples = [Sample("{}", "thought", "stop")]
    raw = {"prompt_tokens": 1, "completion_tokens": 2, "reasoning_tokens": 0, "prompt_tokens_details": None}
    assert parse_usage(raw, samples) == Usage(1, 2, None, None)
    assert parse_usage(raw, [Sample("{}", None, "stop")]).reasoning_tokens == 0


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "usage",
        {},
        {"prompt_tokens": True, "completion_tokens": -1, "prompt_tokens_details": {"cached_tokens": "5"}},
    ],
)
def test_missing_or_odd_usage_reads_as_zero_counts_and_unknown_details(raw: Any) -> None:
    assert parse_usage(raw) == Usage(0, 0, None, None)


# ---------------------------------------------------------------------------------- completions, SSE


def test_completion_choices_are_ordered_and_reasoning_read_from_either_field() -> None:
    payload = completion(
        {"content": "b", "reasoning": "vllm"}, {"content": "a", "reasoning_content": "sglang"}
    )
    payload["choices"][0]["index"], payload["choices"][1]["index"] = 1, 0
    samples, usage, model = parse_completion(payload)
    assert samples == (Sample("a", "sglang", "stop"), Sample("b", "vllm", "stop"))
    assert usage == Usage(reasoning_tokens=None, cached_tokens=None)
    assert model == "served"


def test_completion_content_parts_and_null_content() -> None:
    parts = [{"type": "text", "text": "{"}, {"type": "image_url"}, {"type": "text", "text": "}"}]
    samples, _, _ = parse_completion(
        completion({"content": parts}, {"content": None, "reasoning_content": "r"})
    )
    assert samples == (Sample("{}", None, "stop"), Sample("", "r", "stop"))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([], "JSON object"),
        ({"error": {"message": "oops"}}, "200 with an error: oops"),
        ({"choices": []}, "without choices"),
        ({"choices": ["x"]}, "usable choices"),
    ],
)
def test_malformed_completions_are_unavailable(payload: Any, match: str) -> None:
    with pytest.raises(ModelUnavailable, match=match):
        parse_completion(payload)


async def test_sse_data_joins_multi_line_events_and_skips_comments() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [": keep-alive", "", 'data: {"a":', "data: 1}", "", "event: x", "data:[DONE]"]:
            yield line

    assert [data async for data in sse_data(lines())] == ['{"a":\n1}', "[DONE]"]


def test_stream_accumulator_folds_interleaved_choices() -> None:
    accumulator = StreamAccumulator()
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 1, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "th"}}]},
        {"choices": [{"index": 1, "delta": {"content": "<think>x</think>B"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "ink", "content": "A"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}, "model": "m"},
    ]
    for chunk in chunks:
        accumulator.add(chunk)
    assert accumulator.finished
    samples, usage = accumulator.result()
    assert samples == (Sample("A", "think", "stop"), Sample("B", "x", "length"))
    assert (usage.prompt_tokens, usage.completion_tokens, accumulator.model) == (3, 4, "m")


# ------------------------------------------------------------------------------ adapter over mocks


async def test_body_without_legacy_max_tokens_and_generic_adapter_sends_no_rid(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=completion({"content": "{}"})))
    config = AdapterConfig(BASE, model="r1", api_key="sk-test", send_legacy_max_tokens=False, retry=NO_WAIT)
    model = OpenAICompatibleModel(client_for(recorder), config)
    schema = MappingProxyType({"type": "object", "required": ("a",)})
    await model.generate(ModelRequest("p", schema, "s", SamplingParameters(max_completion_tokens=99)))

    [sent] = recorder.requests
    body = orjson.loads(sent.content)
    assert "max_tokens" not in body and "rid" not in body and "seed" not in body
    assert body["max_completion_tokens"] == 99
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object", "required": ["a"]}
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-request-id"].startswith("r1cds-")
    assert sent.url == f"{BASE}/v1/chat/completions"


async def test_response_identity_falls_back_to_the_answer_when_models_is_missing(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=completion({"content": "{}"})))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    response = await model.generate(request())
    assert (response.identity.backend, response.identity.model) == ("openai", "served")


async def test_sglang_adapter_sends_a_fresh_rid_each_attempt(client_for: Any) -> None:
    recorder = Recorder(
        httpx.ConnectError("refused"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json=completion({"content": "{}"})),
    )
    ids = (f"id-{n}" for n in itertools.count())
    model = SGLangModel(
        client_for(recorder),
        AdapterConfig(BASE, retry=NO_WAIT),
        new_request_id=lambda: next(ids),
        sleep=Sleeps(),
    )
    response = await model.generate(request())
    assert [body["rid"] for body in recorder.bodies()] == ["id-0", "id-1", "id-2"]
    assert [r.headers["x-request-id"] for r in recorder.requests] == ["id-0", "id-1", "id-2"]
    assert response.request_id == "id-2"


@pytest.mark.parametrize(
    ("failures", "error", "match"),
    [
        ([httpx.ReadTimeout("slow")] * 3, ModelTimeout, "ReadTimeout"),
        ([httpx.ConnectTimeout("syn")] * 3, ModelUnavailable, "ConnectTimeout"),
        ([httpx.RemoteProtocolError("peer closed")] * 3, ModelUnavailable, "peer closed"),
        (
            [httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ConnectError("down")],
            ModelUnavailable,
            "down",
        ),
    ],
    ids=["read-timeouts", "connect-timeouts", "dropped", "last-failure-decides"],
)
async def test_exhausted_retries_end_by_the_last_failure(
    client_for: Any, failures: list[Exception], error: type[Exception], match: str
) -> None:
    recorder = Recorder(*failures)
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT), sleep=Sleeps())
    with pytest.raises(error, match=match):
        await model.generate(request())
    assert len(recorder.requests) == 3


async def test_programming_errors_are_not_retried(client_for: Any) -> None:
    recorder = Recorder(httpx.UnsupportedProtocol("no"))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    with pytest.raises(ModelUnavailable, match="UnsupportedProtocol"):
        await model.generate(request())
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_4xx_are_rejected_at_once(client_for: Any, status: int) -> None:
    recorder = Recorder(httpx.Response(status, json={"error": {"message": f"no ({status})"}}))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    with pytest.raises(ModelRejected, match=rf"\({status}\): no \({status}\)") as caught:
        await model.generate(request())
    assert caught.value.status == status
    assert len(recorder.requests) == 1


async def test_backoff_grows_with_jitter_and_retry_after_dates_are_capped(client_for: Any) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    recorder = Recorder(
        httpx.Response(503, text="busy"),
        httpx.Response(500, text="oops"),
        httpx.Response(503, text="busy"),
        httpx.Response(429, headers={"Retry-After": later}, text="slow down"),
        httpx.Response(200, json=completion({"content": "{}"})),
    )
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5, backoff_base_s=1.0, backoff_max_s=3.0, retry_after_cap_s=20.0)
    model = OpenAICompatibleModel(
        client_for(recorder), AdapterConfig(BASE, retry=policy), sleep=sleeps, rng=random.Random(7)
    )
    await model.generate(request())
    first, second, third, fourth = sleeps.delays
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 1.5 <= third <= 3.0
    assert fourth == 20.0


async def test_stream_without_done_is_accepted_only_when_every_choice_finished(client_for: Any) -> None:
    finished = sse(
        {"choices": [{"index": 0, "delta": {"content": "{}"}, "finish_reason": "stop"}]}, done=False
    )
    cut = sse({"choices": [{"index": 0, "delta": {"content": "{"}}]}, done=False)
    recorder = Recorder(httpx.Response(200, content=finished), httpx.Response(200, content=cut))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    response = await model.generate(request(stream=True))
    assert response.samples == (Sample("{}", None, "stop"),)
    with pytest.raises(ModelUnavailable, match="before \\[DONE\\]"):
        await model.generate(request(stream=True))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"data: not json\n\n", "not JSON"),
        (b'data: {"object": "error", "message": "flat failure", "code": 503}\n\n', "flat failure"),
        (b"data: [DONE]\n\n", "no choices"),
    ],
)
async def test_bad_streams_are_unavailable(client_for: Any, body: bytes, match: str) -> None:
    recorder = Recorder(httpx.Response(200, content=body))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    with pytest.raises(ModelUnavailable, match=match):
        await model.generate(request(stream=True))
    assert len(recorder.requests) == 1


async def test_non_json_200_is_unavailable(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, text="<html>proxy</html>"))
    model = OpenAICompatibleModel(client_for(recorder), AdapterConfig(BASE, retry=NO_WAIT))
    with pytest.raises(ModelUnavailable, match="not JSON"):
        await model.generate(request())


async def test_generic_identity_picks_the_configured_model(client_for: Any) -> None:
    listing = {
        "object": "list",
        "data": [{"id": "other", "owned_by": "x"}, {"id": "r1", "max_model_len": 4096}],
    }
    probes: list[str] = []

    def handler(sent: httpx.Request) -> httpx.Response:
        probes.append(sent.url.path)
        return httpx.Response(200, json=listing)

    model = OpenAICompatibleModel(client_for(handler), AdapterConfig(BASE, model="r1"))
    identity = await model.identity()
    assert (identity.model, dict(identity.details)) == ("r1", {"max_model_len": "4096"})
    assert await model.identity() is identity
    assert await model.ready() is True
    assert probes == ["/v1/models", "/v1/models"]


async def test_generic_identity_of_an_empty_listing_is_unavailable(client_for: Any) -> None:
    model = OpenAICompatibleModel(
        client_for(lambda _r: httpx.Response(200, json={"data": []})), AdapterConfig(BASE, retry=NO_WAIT)
    )
    with pytest.raises(ModelUnavailable, match="lists no model"):
        await model.identity()
    broken = OpenAICompatibleModel(
        client_for(lambda _r: httpx.Response(200, text="nope")), AdapterConfig(BASE)
    )
    assert await broken.ready() is False


# ------------------------------------------------------------------------------------ config, SGLang


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"base_url": "http://sglang:30000/v1"}, "leave out the trailing /v1"),
        ({"base_url": "sglang:30000"}, "absolute http"),
        ({"base_url": "ftp://sglang"}, "absolute http"),
        ({"read_timeout_s": 0}, "positive"),
        ({"total_timeout_s": -1.0}, "positive"),
    ],
)
def test_config_refuses_what_cannot_work(overrides: dict[str, Any], match: str) -> None:
    settings: dict[str, Any] = {"base_url": BASE, **overrides}
    with pytest.raises(ValueError, match=match):
        AdapterConfig(**settings)


def test_retry_policy_needs_an_attempt_and_config_hides_the_key() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)
    assert "sk-hidden" not in repr(AdapterConfig(BASE, api_key="sk-hidden"))


def test_sglang_identity_details_keep_the_allowlist_only() -> None:
    model_info = {
        "model_path": "m",
        "is_generation": True,
        "architectures": ["A", "B"],
        "hf_config": {"x": 1},
    }
    server_info = {
        "version": "0.5.9",
        "tp_size": 4,
        "api_key": "sk-secret",
        "admin_api_key": "admin",
        "reasoning_parser": None,
        "served_model_name": "x" * 300,
    }
    details = identity_details(model_info, server_info)
    assert details == {
        "model_path": "m",
        "is_generation": "true",
        "architectures": "A,B",
        "sglang_version": "0.5.9",
        "tp_size": "4",
        "served_model_name": "x" * 200,
    }
    assert identity_details(model_info, None)["server_info"] == "unavailable"


async def test_sglang_identity_surfaces_refusals_other_than_404(client_for: Any) -> None:
    handler: Handler = lambda _r: httpx.Response(401, json={"error": "Unauthorized"})  # noqa: E731
    model = SGLangModel(client_for(handler), AdapterConfig(BASE, retry=NO_WAIT))
    with pytest.raises(ModelRejected, match="Unauthorized"):
        await model.identity()

"""A loopback stand-in for an SGLang 0.5.x server launched with `--reasoning-parser deepseek-r1`.

Wire shapes were checked by reading (not copying) sgl-project/sglang sources from a code index that
holds several 0.5.x-era versions and current main, not one pinned tag:

- python/sglang/srt/entrypoints/openai/protocol.py: ChatCompletionRequest (`messages`; `model` default
  "default"; `max_tokens` deprecated for `max_completion_tokens`; `n`, `temperature`, `top_p`, `seed`,
  `stream`, `stream_options.include_usage`; `response_format` `{type, json_schema: {name, schema, strict}}`;
  `rid: str | list[str]`), ChatCompletionResponse / ChatMessage (`role`, `content`, `reasoning_content`,
  `tool_calls`), the choice (`index`, `message`, `logprobs`, `finish_reason`, `matched_stop`), UsageInfo
  (`prompt_tokens`, `total_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`, top-level
  `reasoning_tokens`, always 0 before PR #15562 of Dec 2025 and counted since), the stream chunk and DeltaMessage, ErrorResponse (`object: "error"`, `message`,
  `type`, `param`, `code`), ModelList / ModelCard.
- python/sglang/srt/entrypoints/openai/serving_chat.py: `content` is "" (never null) and
  `reasoning_content` null when empty; the stream sends a role chunk per choice, reasoning deltas, content
  deltas, one finish chunk per choice, a usage chunk with empty `choices` when `include_usage`, then
  `data: [DONE]`; a failure after the stream began is `data: {"error": {<ErrorResponse>}}` then [DONE].
- python/sglang/srt/entrypoints/openai/usage_processor.py and serving_base.py: prompt tokens counted once
  per prompt for n choices; `prompt_tokens_details` only with `--enable-cache-report` and a non-zero count;
  error envelopes (flat in earlier 0.5.x, `{"error": {...}}` from later `create_error_response`).
- python/sglang/srt/entrypoints/http_server.py: request-validation failures as 400 with the flat
  ErrorResponse (type "Bad Request"); HTTPException (the scheduler's 503 "The request queue is full.") as
  the flat ErrorResponse; `/health` 200 with an empty body (503 while starting); `/model_info` and
  `/server_info` (server args + scheduler info + `internal_states` + `version`), with `/get_model_info`
  and `/get_server_info` as deprecated aliases (older 0.5.x releases serve only those: `legacy_info_paths`).
- python/sglang/srt/managers/io_struct.py: a string `rid` with n > 1 becomes `rid_0`, `rid_1`, ...; managers/scheduler.py
  `_abort_on_queued_limit` (seen quoted, not read in place): "The request queue is full.", which the
  tokenizer manager turns into an HTTPException(503).

Not from SGLang itself: 429 with Retry-After (a router or gateway in front of SGLang sends it);
`usage_style="openai"`, which reports `completion_tokens_details.reasoning_tokens` the way OpenAI and vLLM
do instead of SGLang's top-level field; token counts (a chars/4 estimate, no tokenizer). The 401 body for a
wrong API key (`{"error": "Unauthorized"}`) follows SGLang's api-key middleware as remembered, not re-read.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.asgi_server import serve_asgi

DEEPSEEK_R1_EOS_TOKEN_ID = 1
DEFAULT_CONTENT = '{"suggestions": []}'
DEFAULT_REASONING = "The chart shows nothing that calls for a suggestion."


@dataclass(frozen=True)
class ScriptedChoice:
    """What the model "generated" for one choice: reasoning, then the answer."""

    content: str
    reasoning: str = ""
    finish_reason: Literal["stop", "length", "abort"] = "stop"


@dataclass(frozen=True)
class Behaviour:
    """How the stand-in answers one chat request. Build them with the helpers below.

    `delay_s` waits before the status line. Stream faults apply to streamed requests only: after
    `fault_after_chunks` data events the stream sends an error chunk, stalls for `stall_s`, or drops the
    connection. A non-streamed request meeting a stream fault gets the plain answer. `hang` takes the
    request and sends nothing at all until the stand-in is released (`SGLangStandIn.release`, or its stop).
    """

    kind: Literal["answer", "error", "drop", "hang"]
    choices: tuple[ScriptedChoice, ...] = ()
    delay_s: float = 0.0
    status: int = 200
    message: str = ""
    error_type: str = ""
    envelope: Literal["flat", "nested"] = "flat"
    retry_after: str | None = None
    stream_fault: Literal["error_chunk", "stall", "drop"] | None = None
    fault_after_chunks: int = 0
    stall_s: float = 0.0


def answer(*choices: ScriptedChoice, delay_s: float = 0.0) -> Behaviour:
    """200 with these choices (cycled when the request asks for more)."""
    return Behaviour("answer", choices or (ScriptedChoice(DEFAULT_CONTENT, DEFAULT_REASONING),), delay_s)


def ok(*contents: str, reasoning: str = DEFAULT_REASONING, delay_s: float = 0.0) -> Behaviour:
    """200 with one choice per content, all with the same reasoning."""
    return answer(
        *(ScriptedChoice(content, reasoning) for content in contents or (DEFAULT_CONTENT,)), delay_s=delay_s
    )


def truncated_in_reasoning(reasoning: str = "Weighing the renal function against the dose, ") -> Behaviour:
    """The token budget ran out before `</think>`: finish `length`, empty content, all reasoning."""
    return answer(ScriptedChoice("", reasoning, "length"))


def slow(delay_s: float) -> Behaviour:
    """A default answer that only starts after `delay_s`."""
    return ok(delay_s=delay_s)


def http_error(
    status: int,
    message: str,
    error_type: str,
    *,
    envelope: Literal["flat", "nested"] = "flat",
    retry_after: str | None = None,
) -> Behaviour:
    return Behaviour(
        "error",
        status=status,
        message=message,
        error_type=error_type,
        envelope=envelope,
        retry_after=retry_after,
    )


def queue_full() -> Behaviour:
    """What SGLang answers when `--max-queued-requests` is reached."""
    return http_error(503, "The request queue is full.", "503")


def rate_limited(retry_after: str = "1") -> Behaviour:
    """A gateway's 429 in front of SGLang, with Retry-After."""
    return http_error(
        429, "Rate limit exceeded, retry later.", "rate_limit_exceeded", retry_after=retry_after
    )


def server_error() -> Behaviour:
    return http_error(
        500, "Internal server error: CUDA error: an illegal memory access", "InternalServerError"
    )


def dropped() -> Behaviour:
    """The connection closes in the middle of the response body."""
    return Behaviour("drop")


def hang() -> Behaviour:
    """A hung server: the request is read and never answered (no status line, no byte) until release."""
    return Behaviour("hang")


def streamed_error_after(chunks: int, message: str = "Generation aborted: KV cache exhausted.") -> Behaviour:
    """A stream that reports a server-side abort as an SSE error chunk after `chunks` data events."""
    return Behaviour(
        "answer",
        answer().choices,
        message=message,
        error_type="INTERNAL_SERVER_ERROR",
        stream_fault="error_chunk",
        fault_after_chunks=chunks,
    )


def streamed_stall_after(chunks: int, stall_s: float) -> Behaviour:
    """A stream that goes quiet for `stall_s` after `chunks` data events, then finishes."""
    return Behaviour(
        "answer", answer().choices, stream_fault="stall", fault_after_chunks=chunks, stall_s=stall_s
    )


def streamed_drop_after(chunks: int) -> Behaviour:
    """A stream whose connection drops after `chunks` data events."""
    return Behaviour("answer", answer().choices, stream_fault="drop", fault_after_chunks=chunks)


@dataclass(frozen=True)
class RecordedRequest:
    """One chat request as the stand-in received it."""

    body: Any
    headers: dict[str, str]

    @property
    def rid(self) -> str | None:
        rid = self.body.get("rid") if isinstance(self.body, dict) else None
        return rid if isinstance(rid, str) else None

    @property
    def request_id_header(self) -> str | None:
        return self.headers.get("x-request-id")


@dataclass
class SGLangStandIn:
    """Launch arguments, the behaviour script, and what was received; the server reads it per request."""

    model_path: str = "deepseek-ai/DeepSeek-R1"
    served_model_name: str | None = None
    reasoning_parser: str | None = "deepseek-r1"
    think_open_tag_in_output: bool = True  # without a reasoning parser: does the raw text open with <think>?
    usage_style: Literal["sglang", "openai"] = "sglang"
    enable_cache_report: bool = True
    cached_tokens: int = 48
    error_envelope: Literal["flat", "nested"] = "flat"  # the envelope of request-validation errors
    legacy_info_paths: bool = False
    server_info_status: int = 200
    healthy: bool = True
    # A hung scheduler: /health (SGLang's waits on a one-token generation) and /v1/models take the request
    # and answer nothing until release, as chat requests with the `hang` behaviour do.
    probes_hang: bool = False
    api_key: str | None = None
    version: str = "0.5.6"
    tp_size: int = 8
    context_length: int = 131072
    chunk_chars: int = 8
    default: Behaviour = field(default_factory=ok)
    behaviours: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    url: str = ""
    _released: threading.Event = field(default_factory=threading.Event, repr=False)
    _wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """End every hang (now and later): each held request gets a bodiless 503, long after its client left."""
        self._released.set()
        for loop, event in self._wakers:
            loop.call_soon_threadsafe(event.set)  # release comes from the test's thread, not the server's

    async def hold(self) -> Response:
        """Hold one request without answering until release."""
        event = asyncio.Event()
        self._wakers.append((asyncio.get_running_loop(), event))
        if self._released.is_set():
            event.set()
        await event.wait()
        return Response(status_code=503)

    def push(self, *behaviours: Behaviour) -> None:
        self.behaviours.extend(behaviours)

    @property
    def chat_requests(self) -> int:
        return len(self.requests)

    @property
    def rids(self) -> list[str | None]:
        return [request.rid for request in self.requests]

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model_path

    def next_behaviour(self) -> Behaviour:
        return self.behaviours.popleft() if self.behaviours else self.default


# ----------------------------------------------------------------------------------------- validation


class _Invalid(Exception):
    def __init__(self, message: str, error_type: str = "Bad Request") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}


def validate_chat_request(body: Any) -> None:
    """Refuse what SGLang 0.5.x refuses with 400: pydantic shape errors, then sampling-parameter checks."""
    if not isinstance(body, dict):
        raise _Invalid("1 validation error: body: Input should be a valid dictionary")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _Invalid("1 validation error: messages: Field required")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _Invalid(f"1 validation error: messages.{position}.role: Input should be a valid role")
        content = message.get("content")
        if message["role"] == "user" and not isinstance(content, str | list):
            raise _Invalid(f"1 validation error: messages.{position}.content: Field required")
    if "model" in body and not isinstance(body["model"], str):
        raise _Invalid("1 validation error: model: Input should be a valid string")
    for name in ("n", "max_tokens", "max_completion_tokens", "seed"):
        if body.get(name) is not None and not _is_int(body[name]):
            raise _Invalid(f"1 validation error: {name}: Input should be a valid integer")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None and not _is_number(body[name]):
            raise _Invalid(f"1 validation error: {name}: Input should be a valid number")
    for name in ("stream",):
        if name in body and not isinstance(body[name], bool):
            raise _Invalid(f"1 validation error: {name}: Input should be a valid boolean")
    options = body.get("stream_options")
    if options is not None and not (
        isinstance(options, dict) and isinstance(options.get("include_usage", False), bool)
    ):
        raise _Invalid("1 validation error: stream_options: Input should be a valid dictionary")
    rid = body.get("rid")
    if rid is not None and not (
        isinstance(rid, str) or (isinstance(rid, list) and all(isinstance(item, str) for item in rid))
    ):
        raise _Invalid("1 validation error: rid: Input should be a valid string or list of strings")
    _validate_response_format(body.get("response_format"))
    # The checks SGLang makes after parsing (serving_chat._validate_request, SamplingParams.verify).
    if not messages:
        raise _Invalid("Messages cannot be empty.", "BadRequest")
    if body.get("n", 1) < 1:
        raise _Invalid(f"n must be at least 1, got {body['n']}.", "BadRequest")
    if body.get("temperature") is not None and body["temperature"] < 0:
        raise _Invalid(f"temperature must be non-negative, got {body['temperature']}.", "BadRequest")
    top_p = body.get("top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise _Invalid(f"top_p must be in (0, 1], got {top_p}.", "BadRequest")
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None and body[name] < 1:
            raise _Invalid(f"{name} must be positive, got {body[name]}.", "BadRequest")


def _validate_response_format(response_format: Any) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict) or response_format.get("type") not in {
        "text",
        "json_object",
        "json_schema",
    }:
        raise _Invalid(
            "1 validation error: response_format.type: Input should be 'text', 'json_object' or 'json_schema'"
        )
    if response_format["type"] != "json_schema":
        return
    json_schema = response_format.get("json_schema")
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
        raise _Invalid("1 validation error: response_format.json_schema.name: Field required")
    if json_schema.get("schema") is not None and not isinstance(json_schema["schema"], dict):
        raise _Invalid(
            "1 validation error: response_format.json_schema.schema: Input should be a valid dictionary"
        )
    if json_schema.get("strict") is not None and not isinstance(json_schema["strict"], bool):
        raise _Invalid(
            "1 validation error: response_format.json_schema.strict: Input should be a valid boolean"
        )


# ------------------------------------------------------------------------------------------ responses


def _error_object(message: str, error_type: str, code: int) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": error_type, "param": None, "code": code}


def error_response(
    status: int,
    message: str,
    error_type: str,
    envelope: Literal["flat", "nested"] = "flat",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error = _error_object(message, error_type, status)
    content = error if envelope == "flat" else {"error": error}
    return JSONResponse(content, status_code=status, headers=headers)


class _StandInDrop(Exception):
    """Raised inside the app to make uvicorn close the connection in the middle of a response."""


class _DroppedResponse(Response):
    """Promises a longer body than it sends, then fails, so the server closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-cut', "more_body": True})
        raise _StandInDrop("the SGLang stand-in drops this connection on purpose")


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _raw_text(stand_in: SGLangStandIn, choice: ScriptedChoice) -> str:
    """The text a server without a reasoning parser returns: R1's thinking inside the content."""
    opening = "<think>\n" if stand_in.think_open_tag_in_output else ""
    if choice.finish_reason == "length" and not choice.content:
        return f"{opening}{choice.reasoning}"
    return f"{opening}{choice.reasoning}\n</think>\n\n{choice.content}"


def _usage(stand_in: SGLangStandIn, prompt: str, choices: list[ScriptedChoice]) -> dict[str, Any]:
    prompt_tokens = _tokens(prompt)  # once per prompt, whatever n is
    reasoning_tokens = sum(_tokens(choice.reasoning) for choice in choices)
    completion_tokens = sum(_tokens(choice.reasoning) + _tokens(choice.content) for choice in choices)
    cached = min(stand_in.cached_tokens, prompt_tokens)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": (
            {"cached_tokens": cached} if stand_in.enable_cache_report and cached > 0 else None
        ),
    }
    if stand_in.usage_style == "sglang":
        usage["reasoning_tokens"] = reasoning_tokens
    else:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage


def _prompt_of(body: dict[str, Any]) -> str:
    return "".join(m["content"] for m in body["messages"] if isinstance(m.get("content"), str))


def _choices_for(behaviour: Behaviour, n: int) -> list[ScriptedChoice]:
    return [behaviour.choices[index % len(behaviour.choices)] for index in range(n)]


def _message(stand_in: SGLangStandIn, choice: ScriptedChoice) -> dict[str, Any]:
    if stand_in.reasoning_parser is None:
        return {
            "role": "assistant",
            "content": _raw_text(stand_in, choice),
            "reasoning_content": None,
            "tool_calls": None,
        }
    return {
        "role": "assistant",
        "content": choice.content,
        "reasoning_content": choice.reasoning or None,
        "tool_calls": None,
    }


def _completion(
    stand_in: SGLangStandIn, body: dict[str, Any], behaviour: Behaviour, request_id: str
) -> dict[str, Any]:
    choices = _choices_for(behaviour, body.get("n", 1))
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "default"),
        "choices": [
            {
                "index": index,
                "message": _message(stand_in, choice),
                "logprobs": None,
                "finish_reason": choice.finish_reason,
                "matched_stop": DEEPSEEK_R1_EOS_TOKEN_ID if choice.finish_reason == "stop" else None,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": _usage(stand_in, _prompt_of(body), choices),
        "metadata": {"weight_version": "default"},
    }


def _chunk(
    request_id: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> bytes:
    payload = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _delta(
    index: int,
    *,
    role: str | None = None,
    content: str | None = None,
    reasoning: str | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "delta": {"role": role, "content": content, "reasoning_content": reasoning, "tool_calls": None},
        "logprobs": None,
        "finish_reason": finish_reason,
        "matched_stop": DEEPSEEK_R1_EOS_TOKEN_ID if finish_reason == "stop" else None,
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _stream_events(
    stand_in: SGLangStandIn, body: dict[str, Any], behaviour: Behaviour, request_id: str
) -> list[bytes]:
    """Every data event of a healthy stream, in SGLang's order, choices interleaved token by token."""
    model = body.get("model", "default")
    choices = _choices_for(behaviour, body.get("n", 1))
    events = [
        _chunk(request_id, model, [_delta(index, role="assistant", content="")])
        for index in range(len(choices))
    ]
    per_choice: list[list[dict[str, Any]]] = []
    for index, choice in enumerate(choices):
        if stand_in.reasoning_parser is None:
            deltas = [
                _delta(index, content=piece)
                for piece in _pieces(_raw_text(stand_in, choice), stand_in.chunk_chars)
            ]
        else:
            deltas = [
                _delta(index, reasoning=piece) for piece in _pieces(choice.reasoning, stand_in.chunk_chars)
            ]
            deltas += [
                _delta(index, content=piece) for piece in _pieces(choice.content, stand_in.chunk_chars)
            ]
        per_choice.append(deltas)
    for step in range(max((len(deltas) for deltas in per_choice), default=0)):
        events += [_chunk(request_id, model, [deltas[step]]) for deltas in per_choice if step < len(deltas)]
    events += [
        _chunk(request_id, model, [_delta(index, finish_reason=choice.finish_reason)])
        for index, choice in enumerate(choices)
    ]
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        events.append(_chunk(request_id, model, [], _usage(stand_in, _prompt_of(body), choices)))
    return events


async def _stream(
    stand_in: SGLangStandIn, body: dict[str, Any], behaviour: Behaviour, request_id: str
) -> AsyncIterator[bytes]:
    for position, event in enumerate(_stream_events(stand_in, body, behaviour, request_id)):
        if behaviour.stream_fault is not None and position == behaviour.fault_after_chunks:
            if behaviour.stream_fault == "error_chunk":
                error = _error_object(behaviour.message, behaviour.error_type, 500)
                yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
                yield b"data: [DONE]\n\n"
                return
            if behaviour.stream_fault == "drop":
                raise _StandInDrop("the SGLang stand-in drops this stream on purpose")
            await asyncio.sleep(behaviour.stall_s)
        yield event
    yield b"data: [DONE]\n\n"


# ---------------------------------------------------------------------------------------------- routes


def _model_info(stand_in: SGLangStandIn) -> dict[str, Any]:
    return {
        "model_path": stand_in.model_path,
        "tokenizer_path": stand_in.model_path,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": "default",
        "has_image_understanding": False,
        "has_audio_understanding": False,
        "model_type": "deepseek_v3",
        "architectures": ["DeepseekV3ForCausalLM"],
    }


def _server_info(stand_in: SGLangStandIn) -> dict[str, Any]:
    # A small slice of ServerArgs (the real one has ~300 fields), the secrets included on purpose.
    server_args = {
        "model_path": stand_in.model_path,
        "tokenizer_path": stand_in.model_path,
        "served_model_name": stand_in.model_name,
        "host": "0.0.0.0",  # noqa: S104 - what the reported launch argument says, nothing binds to it
        "port": 30000,
        "api_key": stand_in.api_key,
        "admin_api_key": "admin-secret-should-never-leak",
        "tp_size": stand_in.tp_size,
        "dp_size": 1,
        "context_length": stand_in.context_length,
        "reasoning_parser": stand_in.reasoning_parser,
        "enable_cache_report": stand_in.enable_cache_report,
        "dtype": "auto",
        "kv_cache_dtype": "auto",
        "quantization": "fp8",
        "grammar_backend": "xgrammar",
        "speculative_algorithm": None,
        "random_seed": 42,
        "chunked_prefill_size": 8192,
        "mem_fraction_static": 0.88,
    }
    return {
        **server_args,
        "max_total_num_tokens": 480000,
        "max_req_input_len": stand_in.context_length - 5,
        "internal_states": [{"avg_spec_accept_length": None, "last_gen_throughput": 812.5}],
        "version": stand_in.version,
    }


def build_sglang_app(stand_in: SGLangStandIn) -> Starlette:
    """The Starlette app: chat completions, models, health and the model/server info routes."""

    def authorised(request: Request) -> bool:
        return (
            stand_in.api_key is None or request.headers.get("authorization") == f"Bearer {stand_in.api_key}"
        )

    def unauthorised() -> Response:
        return JSONResponse({"error": "Unauthorized"}, status_code=401)

    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        stand_in.requests.append(RecordedRequest(body, dict(request.headers)))
        if not authorised(request):
            return unauthorised()
        try:
            validate_chat_request(body)
        except _Invalid as invalid:
            return error_response(400, invalid.message, invalid.error_type, stand_in.error_envelope)
        behaviour = stand_in.next_behaviour()
        if behaviour.kind == "hang":
            return await stand_in.hold()
        if behaviour.delay_s > 0:
            await asyncio.sleep(behaviour.delay_s)
        if behaviour.kind == "error":
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else None
            return error_response(
                behaviour.status, behaviour.message, behaviour.error_type, behaviour.envelope, headers
            )
        if behaviour.kind == "drop":
            return _DroppedResponse()
        rid = body.get("rid")
        request_id = rid if isinstance(rid, str) else f"chatcmpl-{uuid.uuid4().hex}"
        if body.get("stream"):
            return StreamingResponse(
                _stream(stand_in, body, behaviour, request_id), media_type="text/event-stream"
            )
        return JSONResponse(_completion(stand_in, body, behaviour, request_id))

    async def models(request: Request) -> Response:
        stand_in.probes.append(request.url.path)
        if stand_in.probes_hang:
            return await stand_in.hold()
        if not authorised(request):
            return unauthorised()
        card = {
            "id": stand_in.model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "sglang",
            "root": stand_in.model_path,
            "parent": None,
            "max_model_len": stand_in.context_length,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def health(request: Request) -> Response:
        stand_in.probes.append(request.url.path)
        if stand_in.probes_hang:
            return await stand_in.hold()
        return Response(status_code=200 if stand_in.healthy else 503)

    async def model_info(request: Request) -> Response:
        stand_in.probes.append(request.url.path)
        if not authorised(request):
            return unauthorised()
        if request.url.path == "/model_info" and stand_in.legacy_info_paths:
            return JSONResponse({"detail": "Not Found"}, status_code=404)  # FastAPI's own 404
        return JSONResponse(_model_info(stand_in))

    async def server_info(request: Request) -> Response:
        stand_in.probes.append(request.url.path)
        if not authorised(request):
            return unauthorised()
        if request.url.path == "/server_info" and stand_in.legacy_info_paths:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if stand_in.server_info_status != 200:
            return error_response(stand_in.server_info_status, "server info is not available", "Forbidden")
        return JSONResponse(_server_info(stand_in))

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health_generate", health, methods=["GET"]),
        Route("/model_info", model_info, methods=["GET"]),
        Route("/get_model_info", model_info, methods=["GET"]),
        Route("/server_info", server_info, methods=["GET"]),
        Route("/get_server_info", server_info, methods=["GET"]),
    ]
    return Starlette(routes=routes)


@contextmanager
def running_sglang(stand_in: SGLangStandIn | None = None) -> Iterator[SGLangStandIn]:
    """Serve the stand-in on 127.0.0.1 at a free port in a background thread; stopped on exit."""
    stand_in = stand_in if stand_in is not None else SGLangStandIn()
    with serve_asgi(
        lambda _url: build_sglang_app(stand_in), lifespan="off", name="sglang-stand-in"
    ) as served:
        stand_in.url = served.url
        try:
            yield stand_in
        finally:
            stand_in.release()  # before the server stops: it would wait on the held requests

"""The model port over any OpenAI-compatible chat-completions server (SGLang, vLLM, llama.cpp, Ollama) via httpx."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NoReturn, TypeVar

import httpx
import orjson

from inference.errors import parse_error_body, parse_retry_after, stream_error
from plugin.model_port import (
    FinishReason,
    ModelError,
    ModelIdentity,
    ModelRejected,
    ModelRequest,
    ModelResponse,
    ModelTimeout,
    ModelUnavailable,
    Sample,
    Usage,
)

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "abort", "error"})
_RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429})
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and equal jitter; Retry-After wins, up to a cap.

    Attempt k (1-based) that fails waits `c/2 + uniform(0, c/2)` with `c = min(backoff_max_s,
    backoff_base_s * 2**(k-1))`, unless the answer carried Retry-After: then `min(retry_after, cap)`.
    """

    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff_base_s, self.backoff_max_s, self.retry_after_cap_s) < 0:
            raise ValueError("backoff and Retry-After bounds must not be negative")


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """Where the server is and how long to wait for it.

    `base_url` is the server root (`http://sglang:30000`), without `/v1`. `read_timeout_s` bounds the
    wait for a whole non-streamed answer (R1 reasons for tens of seconds: keep it generous);
    `chunk_timeout_s` bounds the wait between two chunks of a streamed one. `total_timeout_s`, when set,
    bounds one `generate` call across all its attempts. `probe_timeout_s` serves `identity` and `ready`.

    `send_legacy_max_tokens` also sends the budget as `max_tokens`, for servers that only know that name
    (older llama.cpp and Ollama builds). SGLang 0.5.x accepts both and prefers `max_completion_tokens`
    (`max_new_tokens = max_completion_tokens or max_tokens`), as vLLM does; turn it off for
    api.openai.com, whose reasoning models refuse `max_tokens`.
    """

    base_url: str
    model: str = "default"
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0
    chunk_timeout_s: float = 60.0
    write_timeout_s: float = 30.0
    pool_timeout_s: float = 30.0
    probe_timeout_s: float = 10.0
    total_timeout_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    send_legacy_max_tokens: bool = True

    def __post_init__(self) -> None:
        url = httpx.URL(self.base_url)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {self.base_url!r}")
        if url.path.rstrip("/").endswith("/v1"):
            raise ValueError("base_url is the server root: leave out the trailing /v1")
        timeouts = (
            self.connect_timeout_s,
            self.read_timeout_s,
            self.chunk_timeout_s,
            self.write_timeout_s,
            self.pool_timeout_s,
            self.probe_timeout_s,
        )
        if min(timeouts) <= 0 or (self.total_timeout_s is not None and self.total_timeout_s <= 0):
            raise ValueError("timeouts must be positive")


# ------------------------------------------------------------------------------------------ health probe

# What one health probe says of a model server, before anyone decides whether that is busy or down:
#   up           it answered healthy
#   overloaded   it answered that it is up but saturated: 429, or 503 with Retry-After (RFC 9110 15.6.4)
#   silent       it took the connection (or was slow to) but gave no answer within the probe's time
#   unreachable  no connection: refused, DNS, connect timeout, TLS, or dropped before any answer
#   failing      it answered, but not healthy: any other status, or a body that is not what it should be
# Whether "silent" means busy depends on whether our own model requests are in flight at the time
# (workers.wiring decides, from workers.semaphore's count).
ProbeResult = Literal["up", "overloaded", "silent", "unreachable", "failing"]


def probe_status(response: httpx.Response) -> ProbeResult:
    """What a health answer other than 200 says: overloaded for 429 or 503 with Retry-After, else failing."""
    status = response.status_code
    if status == 429 or (status == 503 and "retry-after" in response.headers):
        return "overloaded"
    return "failing"


# ---------------------------------------------------------------------------------------------- parsing


def split_think_tags(text: str) -> tuple[str, str | None]:
    """Split `(content, reasoning)` out of output from a server that runs no reasoning parser.

    - `<think>R</think>A` gives `(A, R)`, both stripped;
    - `R</think>A` too: DeepSeek-R1's chat template opens `<think>` in the prompt, so the raw output
      carries only the closing tag;
    - `<think>R` with no closing tag (cut off while reasoning) gives `("", R)`;
    - text without tags is returned as it is, with reasoning None.
    """
    leading = text.lstrip()
    opened = leading.startswith(THINK_OPEN)
    body = leading[len(THINK_OPEN) :] if opened else text
    end = body.find(THINK_CLOSE)
    if end >= 0:
        return body[end + len(THINK_CLOSE) :].strip(), body[:end].strip()
    if opened:
        return "", body.strip()
    return text, None


def map_finish_reason(value: object) -> FinishReason:
    """The port's finish reason for a server's; anything it does not know (tool_calls, null) is unknown."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "stop":
            return "stop"
        if lowered == "length":
            return "length"
        if lowered == "abort":
            return "abort"
        if lowered == "error":
            return "error"
    return "unknown"


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def parse_usage(raw: object, samples: Sequence[Sample] = ()) -> Usage:
    """Token counts from a `usage` object, in either dialect.

    Reasoning tokens come from `completion_tokens_details.reasoning_tokens` (OpenAI, vLLM) or the
    top-level `reasoning_tokens` that SGLang 0.5.x adds to its UsageInfo. SGLang builds before its
    "reasoning tokens usage" change (PR #15562, Dec 2025) always report 0 there, so a 0 next to
    non-empty reasoning is read as unknown (None). Cached tokens come from
    `prompt_tokens_details.cached_tokens`, which SGLang sends only with `--enable-cache-report` (and only
    when non-zero): absent means unknown (None).
    """
    if not isinstance(raw, dict):
        return Usage(reasoning_tokens=None, cached_tokens=None)
    completion_details = raw.get("completion_tokens_details")
    reasoning = (
        _count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else None
    )
    if reasoning is None:
        reasoning = _count(raw.get("reasoning_tokens"))
    if reasoning == 0 and any(sample.reasoning for sample in samples):
        reasoning = None
    prompt_details = raw.get("prompt_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")) or 0,
        completion_tokens=_count(raw.get("completion_tokens")) or 0,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
    )


def _text_of(value: object) -> str | None:
    """A message field as text: a string, or the text parts of a content-part list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            part["text"]
            for part in value
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "".join(parts) if parts else None
    return None


def _reasoning_of(message: Mapping[str, Any]) -> str | None:
    """`reasoning_content` (SGLang, DeepSeek API) or `reasoning` (vLLM >= 0.9, Ollama)."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str):
            return value
    return None


def sample_from_choice(choice: Mapping[str, Any]) -> Sample:
    """One non-streamed choice as a Sample; think tags are split out only when no reasoning field came."""
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content = _text_of(message.get("content")) or ""
    reasoning = _reasoning_of(message)
    if reasoning is None:
        content, reasoning = split_think_tags(content)
    return Sample(content, reasoning, map_finish_reason(choice.get("finish_reason")))


def _choice_index(choice: Mapping[str, Any], position: int) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def parse_completion(payload: object) -> tuple[tuple[Sample, ...], Usage, str | None]:
    """Samples (ordered by choice index), usage and the echoed model name of a chat.completion object."""
    if not isinstance(payload, dict):
        raise ModelUnavailable("the model server answered with something other than a JSON object")
    if (error := stream_error(payload)) is not None:
        raise ModelUnavailable(f"the model server answered 200 with an error: {error.message}")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ModelUnavailable("the model server answered without choices")
    ordered = sorted(
        (
            (_choice_index(choice, position), choice)
            for position, choice in enumerate(choices)
            if isinstance(choice, dict)
        ),
        key=lambda pair: pair[0],
    )
    samples = tuple(sample_from_choice(choice) for _, choice in ordered)
    if not samples:
        raise ModelUnavailable("the model server answered without usable choices")
    model = payload.get("model")
    return samples, parse_usage(payload.get("usage"), samples), model if isinstance(model, str) else None


async def sse_data(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The `data` payload of each server-sent event (multi-line data joined), skipping comments."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


@dataclass
class _StreamedChoice:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    reasoning_seen: bool = False
    finish_reason: object = None

    def sample(self) -> Sample:
        content = "".join(self.content)
        if self.reasoning_seen:
            return Sample(content, "".join(self.reasoning), map_finish_reason(self.finish_reason))
        content, reasoning = split_think_tags(content)
        return Sample(content, reasoning, map_finish_reason(self.finish_reason))


class StreamAccumulator:
    """Folds chat.completion.chunk payloads into samples per choice index, plus the last usage seen."""

    def __init__(self) -> None:
        self._choices: dict[int, _StreamedChoice] = {}
        self._usage: object = None
        self.model: str | None = None

    def add(self, chunk: Mapping[str, Any]) -> None:
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        model = chunk.get("model")
        if isinstance(model, str):
            self.model = model
        choices = chunk.get("choices")
        for position, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            state = self._choices.setdefault(_choice_index(choice, position), _StreamedChoice())
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = _text_of(delta.get("content"))
                if content:
                    state.content.append(content)
                reasoning = _reasoning_of(delta)
                if reasoning is not None:
                    state.reasoning_seen = True
                    state.reasoning.append(reasoning)
            if choice.get("finish_reason") is not None:
                state.finish_reason = choice["finish_reason"]

    @property
    def finished(self) -> bool:
        return bool(self._choices) and all(c.finish_reason is not None for c in self._choices.values())

    def result(self) -> tuple[tuple[Sample, ...], Usage]:
        if not self._choices:
            raise ModelUnavailable("the model server streamed no choices")
        samples = tuple(self._choices[index].sample() for index in sorted(self._choices))
        return samples, parse_usage(self._usage, samples)


# ---------------------------------------------------------------------------------------------- adapter


class _Retryable(Exception):
    """One failed attempt that another attempt may fix; `kind` picks the error raised when none is left."""

    def __init__(
        self, kind: Literal["timeout", "unavailable"], reason: str, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Completion:
    samples: tuple[Sample, ...]
    usage: Usage
    model: str | None


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, so that orjson can write a frozen schema."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _new_request_id() -> str:
    return f"r1cds-{uuid.uuid4().hex}"


class OpenAICompatibleModel:
    """`LanguageModel` over `POST {base}/v1/chat/completions`; identity and readiness from `/v1/models`.

    Every attempt carries a fresh request id in `X-Request-Id` (and in the body field `request_id_field`
    names, for servers that read one: SGLang's `rid`). Connect errors, read timeouts, dropped
    connections, 408, 429 and 5xx are retried under the config's `RetryPolicy`; when the attempts run out
    a read timeout ends as `ModelTimeout` and anything else as `ModelUnavailable`. Any other 4xx raises
    `ModelRejected` at once with the server's own message. A streamed answer is retried only until its
    first byte: once the server streams, a broken or stalled stream ends the call (`ModelUnavailable`,
    `ModelTimeout`), because the GPU time is spent and the worker's own retry policy decides.
    `latency_s` covers the whole call, retries and waits included.
    """

    backend: ClassVar[str] = "openai"
    request_id_field: ClassVar[str | None] = None

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: AdapterConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        new_request_id: Callable[[], str] = _new_request_id,
    ) -> None:
        self._client = client
        self.config = config
        self._sleep = sleep
        self._random = rng if rng is not None else random.SystemRandom()
        self._new_request_id = new_request_id
        self._base = config.base_url.rstrip("/")
        self._identity: ModelIdentity | None = None  # complete: never fetched again
        self._partial_identity: ModelIdentity | None = None  # good enough for answers; identity() retries

    # ------------------------------------------------------------------------------------ port methods

    async def generate(self, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.total_timeout_s):
                completion, request_id = await self._with_retries(
                    lambda request_id: self._chat_attempt(request, request_id)
                )
        except TimeoutError as exc:
            raise ModelTimeout(
                f"no answer from the model server within {self.config.total_timeout_s} s"
            ) from exc
        identity = await self._identity_for_response(completion.model)
        return ModelResponse(
            completion.samples, completion.usage, identity, request_id, time.monotonic() - started
        )

    async def identity(self) -> ModelIdentity:
        return await self._load_identity(retry=True)

    async def ready(self) -> bool:
        """True when `probe()` finds the server up; never raises."""
        return await self.probe() == "up"

    async def probe(self, timeout_s: float | None = None) -> ProbeResult:
        """`GET /v1/models` once, classified (see `ProbeResult`); never raises.

        Up is a 200 with a model list. The servers behind this adapter answer the listing from their HTTP
        front end while they decode (vLLM, Ollama, llama.cpp's own llama-server), except llama-cpp-python,
        which lists its models behind the lock its completions hold: while it decodes the probe waits, so
        "silent". None of them answers 429 or 503 for load on this path; a gateway or an API provider in
        front of them does (rate limits, "overloaded" with Retry-After): "overloaded". Older llama-server
        builds answer 503 "Loading model" without Retry-After while the model loads: "failing" (current
        ones list the model during the load, so this probe cannot see it).
        """
        answer = await self._probe_get(MODELS_PATH, "application/json", timeout_s)
        if isinstance(answer, str):
            return answer
        if answer.status_code != 200:
            return probe_status(answer)
        try:
            payload = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            return "failing"
        return "up" if isinstance(payload, dict) and isinstance(payload.get("data"), list) else "failing"

    # --------------------------------------------------------------------------------- request shapes

    def chat_body(self, request: ModelRequest, request_id: str) -> dict[str, Any]:
        """The JSON body of one attempt: the whole prompt as the user turn (R1 takes no system prompt)."""
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_completion_tokens": sampling.max_completion_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": _plain(request.output_schema),
                    "strict": True,
                },
            },
        }
        if self.config.send_legacy_max_tokens:
            body["max_tokens"] = sampling.max_completion_tokens
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if self.request_id_field is not None:
            body[self.request_id_field] = request_id
        return body

    def _headers(self, request_id: str, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "X-Request-Id": request_id}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    async def _probe_get(
        self, path: str, accept: str, timeout_s: float | None
    ) -> httpx.Response | ProbeResult:
        """One GET of a health path within `timeout_s` (default `probe_timeout_s`) in all: its response,
        or what its failure says of the server ("silent" or "unreachable")."""
        budget = self.config.probe_timeout_s if timeout_s is None else timeout_s
        # The connect phase gets at most half: a connection that is not made at all must read as
        # unreachable before the whole budget runs out and reads as silent.
        timeout = httpx.Timeout(budget, connect=min(self.config.connect_timeout_s, budget / 2))
        try:
            async with asyncio.timeout(budget):
                return await self._client.get(
                    self._base + path,
                    headers=self._headers(self._new_request_id(), accept),
                    timeout=timeout,
                )
        except TimeoutError:
            return "silent"  # connected (or slow to), then no answer within the budget
        except httpx.ConnectTimeout:
            return "unreachable"
        except httpx.TimeoutException:
            return "silent"
        except httpx.HTTPError:
            return "unreachable"  # refused, DNS, TLS, or the connection dropped before an answer

    def _timeout(self, read_s: float) -> httpx.Timeout:
        config = self.config
        return httpx.Timeout(
            connect=config.connect_timeout_s,
            read=read_s,
            write=config.write_timeout_s,
            pool=config.pool_timeout_s,
        )

    # ---------------------------------------------------------------------------------------- retries

    async def _with_retries(self, attempt: Callable[[str], Awaitable[_T]]) -> tuple[_T, str]:
        policy = self.config.retry
        for number in range(1, policy.max_attempts + 1):
            request_id = self._new_request_id()
            try:
                return await attempt(request_id), request_id
            except _Retryable as failure:
                if number == policy.max_attempts:
                    self._give_up(failure, number)
                delay = self._delay(number, failure.retry_after)
                logger.warning(
                    "model server attempt %d/%d (%s) failed: %s; retrying in %.3f s",
                    number,
                    policy.max_attempts,
                    request_id,
                    failure.reason,
                    delay,
                )
                await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt either returns or gives up")

    def _give_up(self, failure: _Retryable, attempts: int) -> NoReturn:
        plural = "s" if attempts > 1 else ""
        message = f"model server at {self._base} failed after {attempts} attempt{plural}: {failure.reason}"
        if failure.kind == "timeout":
            raise ModelTimeout(message) from failure.__cause__
        raise ModelUnavailable(message) from failure.__cause__

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        policy = self.config.retry
        if retry_after is not None:
            return min(retry_after, policy.retry_after_cap_s)
        ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    @staticmethod
    def _transport_failure(exc: httpx.HTTPError) -> _Retryable | ModelError:
        """A retryable failure for network trouble; a final error for our own mistakes (bad URL scheme)."""
        if isinstance(exc, httpx.ReadTimeout):
            return _Retryable("timeout", f"no answer within the read timeout ({type(exc).__name__})")
        if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            return _Retryable("unavailable", f"{type(exc).__name__}: {exc}".rstrip(": "))
        return ModelUnavailable(f"cannot talk to the model server: {type(exc).__name__}: {exc}")

    @staticmethod
    def _check_status(response: httpx.Response) -> None:
        """Nothing for 2xx; `_Retryable` for 408, 429 and 5xx; `ModelRejected` for anything else."""
        status = response.status_code
        if 200 <= status < 300:
            return
        error = parse_error_body(response.content, status)
        if status in _RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _Retryable("unavailable", f"HTTP {status}: {error.message}", retry_after)
        raise ModelRejected(status, error.message)

    # --------------------------------------------------------------------------------------- attempts

    async def _chat_attempt(self, request: ModelRequest, request_id: str) -> _Completion:
        url = self._base + CHAT_PATH
        content = orjson.dumps(self.chat_body(request, request_id))
        if request.stream:
            headers = self._headers(request_id, "text/event-stream")
            headers["Content-Type"] = "application/json"
            try:
                async with self._client.stream(
                    "POST",
                    url,
                    content=content,
                    headers=headers,
                    timeout=self._timeout(self.config.chunk_timeout_s),
                ) as response:
                    if not 200 <= response.status_code < 300:
                        await response.aread()
                        self._check_status(response)
                    return await self._read_stream(response)
            except httpx.HTTPError as exc:
                failure = self._transport_failure(exc)
                raise failure from exc
        headers = self._headers(request_id, "application/json")
        headers["Content-Type"] = "application/json"
        try:
            response = await self._client.post(
                url, content=content, headers=headers, timeout=self._timeout(self.config.read_timeout_s)
            )
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
            raise failure from exc
        self._check_status(response)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise ModelUnavailable("the model server answered 200 with a body that is not JSON") from exc
        samples, usage, model = parse_completion(payload)
        return _Completion(samples, usage, model)

    async def _read_stream(self, response: httpx.Response) -> _Completion:
        """Accumulate a 2xx SSE answer; every failure here is final (a ModelError, never `_Retryable`)."""
        accumulator = StreamAccumulator()
        done = False
        try:
            async with aclosing(sse_data(response.aiter_lines())) as events:
                async for data in events:
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        raise ModelUnavailable("the model server streamed a chunk that is not JSON") from exc
                    if (error := stream_error(chunk)) is not None:
                        code = f" (code {error.code})" if error.code else ""
                        raise ModelUnavailable(f"the model server failed mid-stream{code}: {error.message}")
                    if isinstance(chunk, dict):
                        accumulator.add(chunk)
        except httpx.ReadTimeout as exc:
            raise ModelTimeout(
                f"no stream chunk from the model server within {self.config.chunk_timeout_s} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"the model server's stream broke: {type(exc).__name__}: {exc}") from exc
        if not done and not accumulator.finished:
            raise ModelUnavailable("the model server's stream ended before [DONE]")
        samples, usage = accumulator.result()
        return _Completion(samples, usage, accumulator.model)

    # --------------------------------------------------------------------------------- probes, identity

    async def _get_once(self, path: str, request_id: str) -> Any:
        """One GET with the probe timeout; status and transport failures as in `_chat_attempt`."""
        try:
            response = await self._client.get(
                self._base + path,
                headers=self._headers(request_id, "application/json"),
                timeout=self._timeout(self.config.probe_timeout_s),
            )
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
            raise failure from exc
        self._check_status(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise ModelUnavailable(f"{path} answered with a body that is not JSON") from exc

    async def _get_json(self, path: str, *, retry: bool) -> Any:
        """GET a JSON document, retried like a chat attempt when `retry`, else tried once."""
        if retry:
            payload, _ = await self._with_retries(lambda request_id: self._get_once(path, request_id))
            return payload
        try:
            return await self._get_once(path, self._new_request_id())
        except _Retryable as failure:
            self._give_up(failure, 1)

    async def _load_identity(self, *, retry: bool) -> ModelIdentity:
        """The first model `/v1/models` lists under the configured name (else the first listed); cached."""
        if self._identity is not None:
            return self._identity
        payload = await self._get_json(MODELS_PATH, retry=retry)
        data = payload.get("data") if isinstance(payload, dict) else None
        cards = [card for card in data or () if isinstance(card, dict) and isinstance(card.get("id"), str)]
        if not cards:
            raise ModelUnavailable(f"{MODELS_PATH} lists no model")
        card = next((card for card in cards if card["id"] == self.config.model), cards[0])
        details = {
            key: str(card[key])
            for key in ("owned_by", "root", "max_model_len")
            if isinstance(card.get(key), str | int) and not isinstance(card.get(key), bool)
        }
        self._identity = ModelIdentity(self.backend, card["id"], details)
        return self._identity

    async def _identity_for_response(self, served_model: str | None) -> ModelIdentity:
        """The cached (or partial) identity, else one quick try at it, else what the answer itself named."""
        if self._identity is not None:
            return self._identity
        if self._partial_identity is not None:
            return self._partial_identity
        try:
            return await self._load_identity(retry=False)
        except ModelError as exc:
            logger.warning("model identity unavailable, recording the answer's model name: %s", exc)
            return ModelIdentity(self.backend, served_model or self.config.model)

"""Reading a model server's error: HTTP error bodies in every dialect, SSE error chunks, Retry-After."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class ServerError:
    """What a server said went wrong, as far as its body tells."""

    message: str
    type: str | None = None
    code: str | None = None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _from_mapping(body: dict[str, Any]) -> ServerError | None:
    nested = body.get("error")
    if isinstance(nested, dict):
        message = _text(nested.get("message")) or _text(nested.get("msg"))
        if message is not None:
            return ServerError(_shorten(message), _text(nested.get("type")), _text(nested.get("code")))
    elif (message := _text(nested)) is not None:
        return ServerError(_shorten(message), _text(body.get("type")), _text(body.get("code")))
    message = _text(body.get("message"))
    if message is not None:
        return ServerError(_shorten(message), _text(body.get("type")), _text(body.get("code")))
    detail = body.get("detail")
    if (message := _text(detail)) is not None:
        return ServerError(_shorten(message))
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                parts.append(f"{location}: {item.get('msg', '')}" if location else str(item.get("msg", "")))
        if parts:
            return ServerError(_shorten("; ".join(parts)))
    return None


def parse_error_body(body: bytes, status: int | None = None) -> ServerError:
    """The server's own message from an HTTP error body; falls back to the text, then the status.

    Shapes read (first match wins):

    - OpenAI, and the later SGLang 0.5.x ``OpenAIServingBase.create_error_response``:
      ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``;
    - SGLang's flat ``ErrorResponse`` (the 400 of its request-validation handler, the 4xx/5xx of its
      ``HTTPException`` handler such as 503 "The request queue is full.", and the earlier 0.5.x
      ``create_error_response``): ``{"object": "error", "message": ..., "type": ..., "param": null, "code": 503}``;
    - Ollama and small servers: ``{"error": "text"}``;
    - FastAPI's default: ``{"detail": "text"}`` or ``{"detail": [{"loc": [...], "msg": ...}, ...]}``;
    - anything else (a proxy's HTML page, plain text): the text itself, whitespace-folded and shortened.
    """
    try:
        decoded: Any = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and (found := _from_mapping(decoded)) is not None:
        return found
    text = body.decode("utf-8", errors="replace").strip()
    if text:
        return ServerError(_shorten(text))
    return ServerError(f"HTTP {status}" if status is not None else "empty error body")


def stream_error(chunk: Any) -> ServerError | None:
    """The error a parsed SSE data payload carries, or None for an ordinary chunk.

    SGLang sends ``{"error": {...}}``; some servers send the flat ``{"object": "error", ...}`` instead.
    """
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk and chunk["error"] is not None:
        return _from_mapping(chunk) or ServerError("the server reported an error without a message")
    if chunk.get("object") == "error":
        return _from_mapping(chunk) or ServerError("the server reported an error without a message")
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)

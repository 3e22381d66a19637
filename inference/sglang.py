"""The model port over SGLang 0.5.x: the OpenAI-compatible adapter plus `rid`, /model_info, /server_info, /health."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from inference.openai_compat import OpenAICompatibleModel, ProbeResult, probe_status
from plugin.model_port import ModelError, ModelIdentity, ModelRejected, ModelUnavailable

logger = logging.getLogger(__name__)

# Current SGLang serves /model_info and /server_info and keeps the /get_* names as deprecated aliases
# (logging a warning per call); earlier 0.5.x releases serve only the /get_* names.
MODEL_INFO_PATHS = ("/model_info", "/get_model_info")
SERVER_INFO_PATHS = ("/server_info", "/get_server_info")
HEALTH_PATH = "/health"

# What the audit trail keeps. An allowlist, because /server_info dumps every launch argument, secrets
# included (api_key, admin_api_key, ...).
MODEL_INFO_DETAILS = ("model_path", "is_generation", "weight_version", "model_type", "architectures")
SERVER_INFO_DETAILS: Mapping[str, str] = {
    "version": "sglang_version",
    "served_model_name": "served_model_name",
    "tp_size": "tp_size",
    "dp_size": "dp_size",
    "context_length": "context_length",
    "reasoning_parser": "reasoning_parser",
    "quantization": "quantization",
    "dtype": "dtype",
    "kv_cache_dtype": "kv_cache_dtype",
    "grammar_backend": "grammar_backend",
    "speculative_algorithm": "speculative_algorithm",
    "enable_cache_report": "enable_cache_report",
}
MAX_DETAIL_CHARS = 200


def _detail(value: object) -> str | None:
    """A launch argument or model fact as a short string; None for nulls and nested structures."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value[:MAX_DETAIL_CHARS] if value else None
    if isinstance(value, list) and value and all(isinstance(item, str | int) for item in value):
        return ",".join(str(item) for item in value)[:MAX_DETAIL_CHARS]
    return None


def identity_details(model_info: Mapping[str, Any], server_info: Mapping[str, Any] | None) -> dict[str, str]:
    """The allowlisted subset of /model_info and /server_info, as strings."""
    details: dict[str, str] = {}
    for key in MODEL_INFO_DETAILS:
        if (value := _detail(model_info.get(key))) is not None:
            details[key] = value
    if server_info is None:
        details["server_info"] = "unavailable"
        return details
    for key, name in SERVER_INFO_DETAILS.items():
        if (value := _detail(server_info.get(key))) is not None:
            details[name] = value
    return details


class SGLangModel(OpenAICompatibleModel):
    """SGLang specifics over the generic adapter.

    - each attempt's id also goes in SGLang's `rid` body field (with n > 1 SGLang derives `rid_0`,
      `rid_1`, ... for the samples), so that the server's logs and aborts name our request;
    - `identity()` reads /model_info and /server_info once (falling back to /get_model_info and
      /get_server_info on older servers) and caches the result; if /server_info cannot be read the
      identity says so in its details and answers carry it, but `identity()` tries again next time;
    - `ready()` is `GET /health` answering 200 (`probe()` says more). SGLang's /health may run a
      one-token generation and answers after a second or more, so `probe_timeout_s` should stay at
      several seconds, and a readiness probe should give it well over one.
    """

    backend: ClassVar[str] = "sglang"
    request_id_field: ClassVar[str | None] = "rid"

    async def probe(self, timeout_s: float | None = None) -> ProbeResult:
        """`GET /health` once, classified (see `ProbeResult`); `ready()` is this being "up". Never raises.

        What SGLang 0.5.x does on /health: 503 while it starts, while it shuts down, and when its
        scheduler has sent nothing back for SGLANG_HEALTH_CHECK_TIMEOUT (20 s): all "failing", never
        load. Otherwise it answers 200 on the first of its once-a-second checks that finds any output
        since the probe came in: under load that is the running requests' own output, at about 1 s. It
        has no overload answer here (no 429); one from a gateway in front of it reads as "overloaded".
        Silence within the probe's time means the scheduler produced nothing for that long: a long
        prefill under load, or a wedged server (the caller tells them apart by requests in flight).
        """
        answer = await self._probe_get(HEALTH_PATH, "*/*", timeout_s)
        if isinstance(answer, str):
            return answer
        return "up" if answer.status_code == 200 else probe_status(answer)

    async def _first_found(self, paths: tuple[str, ...], *, retry: bool) -> dict[str, Any]:
        """The JSON object of the first path the server knows (404 moves on to the next name)."""
        for path in paths[:-1]:
            try:
                return self._object(path, await self._get_json(path, retry=retry))
            except ModelRejected as exc:
                if exc.status != 404:
                    raise
        return self._object(paths[-1], await self._get_json(paths[-1], retry=retry))

    @staticmethod
    def _object(path: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ModelUnavailable(f"{path} answered with something other than a JSON object")
        return payload

    async def _load_identity(self, *, retry: bool) -> ModelIdentity:
        if self._identity is not None:
            return self._identity
        model_info = await self._first_found(MODEL_INFO_PATHS, retry=retry)
        server_info: dict[str, Any] | None
        try:
            server_info = await self._first_found(SERVER_INFO_PATHS, retry=retry)
        except ModelError as exc:
            logger.warning("SGLang /server_info unreadable, identity recorded without it: %s", exc)
            server_info = None
        details = identity_details(model_info, server_info)
        served = details.get("served_model_name") or details.get("model_path") or self.config.model
        identity = ModelIdentity(self.backend, served, details)
        if server_info is None:
            self._partial_identity = identity
            return identity
        if not server_info.get("reasoning_parser"):
            logger.warning(
                "SGLang runs without --reasoning-parser: R1's reasoning arrives inside the content "
                "and is split out of <think> tags here"
            )
        self._identity = identity
        return identity

"""Opens the model backend a suite runs against, through the project's own adapters (the model port)."""

# sglang, openai: a running server at --model-url (the server root, without /v1). llamacpp: a running
# llama.cpp server at --model-url, or, without one, a server we start on loopback with the packaged demo
# model (or --model-name as a GGUF path) and stop afterwards, as `r1cds up` does. The adapters are the ones
# the workers use (inference.sglang, inference.openai_compat, inference.llamacpp), so an evaluation measures
# the same request shape, retries and parsing as production.

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import httpx

from evals.errors import EvalError
from inference.llamacpp import LlamaCppModel, LlamaCppServer, ServerConfig, packaged_model_path
from inference.openai_compat import AdapterConfig, OpenAICompatibleModel
from inference.sglang import SGLangModel
from plugin.model_port import LanguageModel

__all__ = ["BACKENDS", "BackendConfig", "open_backend"]

log = logging.getLogger(__name__)

BackendKind = Literal["sglang", "openai", "llamacpp"]
BACKENDS: Final[tuple[BackendKind, ...]] = ("sglang", "openai", "llamacpp")
LLAMACPP_CONTEXT: Final = 4096  # the QA prompts run a few hundred tokens; PubMedQA contexts about 600


@dataclass(frozen=True, slots=True)
class BackendConfig:
    kind: BackendKind
    url: str | None = None
    model: str = "default"
    api_key: str | None = None
    timeout_s: float = 600.0


@contextlib.asynccontextmanager
async def open_backend(config: BackendConfig) -> AsyncIterator[LanguageModel]:
    if config.kind not in BACKENDS:
        raise EvalError(f"unknown backend {config.kind!r}; known: {list(BACKENDS)}")
    if config.kind in ("sglang", "openai") and not config.url:
        raise EvalError(
            f"--backend {config.kind} needs --model-url (the server root, e.g. http://sglang:30000)"
        )
    with contextlib.ExitStack() as stack:
        url, model = config.url, config.model
        if config.kind == "llamacpp" and url is None:
            named = model not in ("", "default")
            path = Path(model) if named else packaged_model_path()
            if not named:
                log.warning(
                    "llama.cpp backend with the packaged gemma 3 270m demo model: scores are not meaningful"
                )
            server = stack.enter_context(
                LlamaCppServer(ServerConfig(model_path=path, n_ctx=LLAMACPP_CONTEXT))
            )
            url, model = server.base_url, str(path)
        assert url is not None
        adapter_cls: type[OpenAICompatibleModel] = {
            "sglang": SGLangModel,
            "openai": OpenAICompatibleModel,
            "llamacpp": LlamaCppModel,
        }[config.kind]
        adapter_config = AdapterConfig(
            base_url=url, model=model, api_key=config.api_key, read_timeout_s=config.timeout_s
        )
        async with httpx.AsyncClient() as client:
            yield adapter_cls(client, adapter_config)

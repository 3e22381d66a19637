"""A scripted LanguageModel shipped beside the model port for evaluation tests, as httpx ships MockTransport.

`ScriptedEvalModel` answers each request by calling a responder with the request and returning one sample
per content string it gives back (cycled to the n the request asks for). It records every request, so a
test can check what the harness sent. Its identity is ("scripted", model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugin.model_port import (
    ModelIdentity,
    ModelRequest,
    ModelResponse,
    ModelUnavailable,
    Sample,
    Usage,
)

__all__ = ["Responder", "ScriptedEvalModel"]

Responder = Callable[[ModelRequest], Sequence[str]]


class ScriptedEvalModel:
    def __init__(self, responder: Responder, model: str = "scripted-eval") -> None:
        self._responder = responder
        self._identity = ModelIdentity("scripted", model)
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        contents = list(self._responder(request))
        if not contents:
            raise ModelUnavailable("the scripted model has no answer for this request")
        n = request.sampling.n
        samples = tuple(Sample(contents[i % len(contents)], "", "stop") for i in range(n))
        usage = Usage(
            prompt_tokens=len(request.prompt) // 4,
            completion_tokens=sum(len(s.content) for s in samples) // 4,
        )
        return ModelResponse(samples, usage, self._identity, f"scripted-{len(self.requests)}", 0.0)

    async def identity(self) -> ModelIdentity:
        return self._identity

    async def ready(self) -> bool:
        return True

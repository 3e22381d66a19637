"""`r1cds up` as a user runs it: its own redis-server, a worker, the API; SIGTERM stops all of it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugin.ai_review import PENDING_SUMMARY
from tests.support import sglang_stand_in as sglang
from tests.support.redis_server import free_port
from tests.support.review_stack import REPO, clean_answer, hook_request, post, stand_in
from tests.support.suite_phi import keep_log

pytestmark = pytest.mark.integration

R1CDS_UP = [sys.executable, "-m", "cds_hooks.cli", "up"]
API_READY_S = 60.0
AI_CARD_S = 90.0
EXIT_S = 30.0
GONE_S = 10.0
RULE_TOPIC = "rule.inr-monitoring"
# A pid and its start time (field 22 of /proc/<pid>/stat): a pid may be reused, the pair is not.
Proc = tuple[int, str]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    return raw[raw.rindex(")") + 2 :].split()


def alive(proc: Proc) -> bool:
    """Still running (a zombie has stopped running; only its exit status is left to collect)."""
    pid, started = proc
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def identity(pid: int) -> Proc | None:
    fields = _stat(pid)
    return (pid, fields[19]) if fields is not None else None


def descendants(pid: int) -> set[Proc]:
    """Every live process below pid, from the kernel's per-thread child lists."""
    found: set[Proc] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    proc = identity(int(child))
                    if proc is not None and proc not in found:
                        found.add(proc)
                        pending.append(proc[0])
    return found


def command_line(proc: Proc) -> str:
    try:
        return Path(f"/proc/{proc[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def clean_env(**values: str) -> dict[str, str]:
    """The caller's environment without any R1CDS_* setting, plus these."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("R1CDS_")}
    env.update(values)
    return env


def kill_leftovers(procs: set[Proc]) -> None:
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc[0], signal.SIGKILL)


@pytest.fixture
def model() -> Iterator[sglang.SGLangStandIn]:
    served = stand_in()
    # Slower than the sync budget (2.5 s), so the first hook answers with the pending card.
    served.default = sglang.ok(clean_answer(), delay_s=3.5)
    with sglang.running_sglang(served):
        yield served


def wait_for_api(client: httpx.Client, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + API_READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"r1cds up exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if client.get(f"{url}/cds-services").status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the API did not answer within {API_READY_S} s:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


def ai_cards(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in body["cards"] if c["source"]["label"].startswith("R1 CDS AI review (")]


def test_up_serves_rules_then_the_ai_card_and_sigterm_stops_everything(
    model: sglang.SGLangStandIn, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        R1CDS_PORT=str(port),
        R1CDS_PUBLIC_BASE_URL=url,
        R1CDS_AUTH_DISABLED="true",
        R1CDS_FHIR_ALLOW_HTTP="true",
        R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS="true",
        R1CDS_MODEL_BACKEND="sglang",
        R1CDS_MODEL_URL=model.url,
        R1CDS_MODEL_NAME=model.model_name,
        R1CDS_REVIEW_SAMPLES="1",
    )
    log = tmp_path / "up.log"
    started: set[Proc] = set()
    with log.open("wb") as log_file:
        up = subprocess.Popen(
            R1CDS_UP, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        with httpx.Client(timeout=30) as client:
            wait_for_api(client, url, up, log)
            started |= descendants(up.pid)
            service, request = hook_request("patient-view")
            body, elapsed = post(client, url, service, request)
            assert elapsed < 2.5 + 1.0
            topics = {card["source"].get("topic", {}).get("code", "") for card in body["cards"]}
            assert RULE_TOPIC in topics
            assert [c["summary"] for c in body["cards"]].count(PENDING_SUMMARY) == 1
            assert not ai_cards(body)

            deadline = time.monotonic() + AI_CARD_S
            while not ai_cards(body):
                assert time.monotonic() < deadline, f"no AI card within {AI_CARD_S} s:\n{tail(log)}"
                assert up.poll() is None, f"r1cds up exited with {up.returncode}:\n{tail(log)}"
                started |= descendants(up.pid)
                body, _ = post(client, url, service, request)
            [card] = ai_cards(body)
            assert card["summary"] == "Consider checking the INR"
            assert model.model_name in card["source"]["label"]
            assert PENDING_SUMMARY not in [c["summary"] for c in body["cards"]]
            assert model.chat_requests == 1

        started |= descendants(up.pid)
        commands = [command_line(proc) for proc in started]
        assert any("redis-server" in command for command in commands), commands
        assert any("cds_hooks.cli worker" in command for command in commands), commands

        up.send_signal(signal.SIGTERM)
        try:
            returncode = up.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"r1cds up did not exit within {EXIT_S} s of SIGTERM:\n{tail(log)}")
        assert returncode == 0, tail(log)
        deadline = time.monotonic() + GONE_S
        while (left := [proc for proc in started if alive(proc)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, [command_line(proc) for proc in left]
        keep_log("r1cds-up.log", log.read_text(errors="replace"))  # the whole stack's log, PHI-scanned
    finally:
        # Only by pid, and only processes this test saw `up` start (or `up` itself).
        if up.poll() is None:
            started |= descendants(up.pid)
            up.kill()
            up.wait(timeout=10)
        kill_leftovers(started)


def test_up_without_redis_server_or_apt_exits_2_naming_redis_server(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    python_dir = str(Path(sys.executable).parent)
    search = os.pathsep.join([str(empty), python_dir])
    # Neither can be found, so `up` cannot install redis-server with apt even when run as root.
    assert shutil.which("redis-server", path=search) is None
    assert shutil.which("apt-get", path=search) is None
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    env = clean_env(
        PATH=search,
        TMPDIR=str(scratch),
        R1CDS_PORT=str(port),
        R1CDS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        R1CDS_AUTH_DISABLED="true",
        R1CDS_MODEL_BACKEND="sglang",
        R1CDS_MODEL_URL="http://127.0.0.1:9",
        R1CDS_MODEL_NAME="deepseek-r1-test",
    )
    result = subprocess.run(
        R1CDS_UP, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "r1cds: error: redis-server is not installed" in result.stderr
    assert "R1CDS_REDIS_URL" in result.stderr  # and says how to do without it
    assert "Traceback" not in result.stderr
    assert list(scratch.iterdir()) == [], "nothing left behind in the temporary directory"

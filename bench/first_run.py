"""A newcomer's first run: `make run` on a fresh clone with an empty pip cache, to a served preview and a first AI card.

    python -m bench.first_run [--port N]

Clones this repository's HEAD into a temporary folder and runs `make run` there (a new .venv, the locked
dependencies downloaded again: PIP_NO_CACHE_DIR=1), timing until GET /preview answers; then fires
patient-view for a demo patient with `r1cds fire` and counts the scripted AI cards in the answer. The floor,
measured in the same run, is the install alone: a new venv and `pip install --require-hashes -r
requirements/dev.txt`, also with an empty cache. Everything started is stopped by its process group.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PREVIEW_TIMEOUT_S = 600
SCRIPTED = "scripted demonstration output, not a model"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _floor(work: Path, env: dict[str, str]) -> float:
    venv = work / "floor-venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "-r", str(ROOT / "requirements/dev.txt")],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def _first_run(work: Path, env: dict[str, str], port: int) -> tuple[float, float, int]:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    run_env = {
        **env,
        "R1CDS_PORT": str(port),
        "R1CDS_AUDIT_DATABASE_URL": f"sqlite:///{work / 'audit.sqlite3'}",
    }
    log = (work / "make-run.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", "run"], cwd=clone, env=run_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        while True:
            if process.poll() is not None:
                raise SystemExit(f"make run exited {process.returncode}; see {work / 'make-run.log'}")
            if time.perf_counter() - started > PREVIEW_TIMEOUT_S:
                raise SystemExit("no preview within the time limit")
            try:
                if httpx.get(f"{base}/preview", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        to_preview = time.perf_counter() - started
        python = clone / ".venv/bin/python"
        bundle = work / "demo.json"
        subprocess.run(
            [str(python), "-c", "import json,sys; from cds_hooks.preview.demo import demo_bundle; "
             "json.dump(demo_bundle('demo-anticoagulated'), open(sys.argv[1], 'w'))", str(bundle)],
            check=True, cwd=clone,
        )  # fmt: skip
        fired = time.perf_counter()
        answer = subprocess.run(
            [str(clone / ".venv/bin/r1cds"), "fire", "--url", base, "--service", "r1-chart-review",
             "--bundle", str(bundle)],
            check=True, capture_output=True, text=True, cwd=clone,
        )  # fmt: skip
        first_hook = time.perf_counter() - fired
        body = json.loads(answer.stdout)  # the status line goes to stderr
        scripted = sum(1 for card in body["cards"] if SCRIPTED in card["source"]["label"])
        return to_preview, first_hook, scripted
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port for the stack (default: a free one)")
    args = parser.parse_args()
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    for name in ("R1CDS_MODEL_BACKEND", "R1CDS_MODEL_URL", "R1CDS_PUBLIC_BASE_URL", "R1CDS_REDIS_URL"):
        env.pop(name, None)  # the newcomer's defaults
    with tempfile.TemporaryDirectory(prefix="r1cds-first-run-") as folder:
        work = Path(folder)
        floor = _floor(work, env)
        to_preview, first_hook, scripted = _first_run(work, env, args.port or _free_port())
    print(f"{'measure':44}{'seconds':>10}{'x floor':>10}")
    print(f"{'floor: new venv + locked dev install':44}{floor:>10.1f}{1.0:>10.1f}")
    print(
        f"{'make run on a fresh clone to a served preview':44}{to_preview:>10.1f}{to_preview / floor:>10.1f}"
    )
    print(f"{'first patient-view hook (scripted AI cards)':44}{first_hook:>10.1f}")
    print(f"scripted AI cards in the first answer: {scripted} (target: at least 1; preview within 180 s)")


if __name__ == "__main__":
    main()

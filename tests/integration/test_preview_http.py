"""The preview's trust boundary and its API over real HTTP: the key counts only while the preview is enabled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_hooks.preview import PreviewKey
from tests.integration.conftest import ServeApp
from tests.support.redis_server import RedisHandle

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

HEADERS = {"X-R1CDS-Preview": "1"}
DEMO = {"source": {"kind": "demo", "demo": "demo-anticoagulated"}, "hook": "patient-view"}


def prepared(client: httpx.Client, url: str, body: dict[str, Any] = DEMO) -> dict[str, Any]:
    response = client.post(f"{url}/preview/api/prepare", json=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def call(
    client: httpx.Client, url: str, prep: dict[str, Any], authorization: str | None = None
) -> httpx.Response:
    headers = {"Authorization": authorization or prep["authorization"]}
    return client.post(f"{url}{prep['path']}", json=prep["request"], headers=headers)


def outcome(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_preview_signed_calls_answer_with_auth_on_and_each_token_counts_once(serve_app: ServeApp) -> None:
    with serve_app(preview_enabled=True) as served, httpx.Client(timeout=10) as client:
        prep = prepared(client, served.url)
        assert prep["url"] == f"{served.url}/cds-services/r1-chart-review"
        assert prep["request"]["hook"] == "patient-view" and "fhirServer" not in prep["request"]
        first = call(client, served.url, prep)
        assert first.status_code == 200
        assert "rule.vka-nsaid" in {c["source"]["topic"]["code"] for c in first.json()["cards"]}
        assert call(client, served.url, prep).status_code == 401, "a replayed preview token is refused"
        # A token names one endpoint: the order service refuses the chart service's token.
        other = {**prep, "path": "/cds-services/r1-order-review"}
        assert (
            call(client, served.url, other, prepared(client, served.url)["authorization"]).status_code == 401
        )


def test_with_the_preview_off_there_is_no_page_and_no_preview_key_is_trusted(serve_app: ServeApp) -> None:
    with serve_app(preview_enabled=True) as on, httpx.Client(timeout=10) as client:
        from_enabled_process = prepared(client, on.url)
    with serve_app() as off, httpx.Client(timeout=10) as client:
        assert client.get(f"{off.url}/preview").status_code == 404
        assert client.post(f"{off.url}/preview/api/prepare", json=DEMO, headers=HEADERS).status_code == 404
        assert client.get(f"{off.url}/preview/static/preview.js").status_code == 404
        # A key minted exactly as the preview mints it, for this very server: still not a tenant here.
        key = PreviewKey.generate(off.url)
        prep = {
            **from_enabled_process,
            "authorization": key.authorization(f"{off.url}/cds-services/r1-chart-review"),
        }
        refused = call(client, off.url, prep)
        assert (refused.status_code, refused.content) == (401, b"")
        # And the token another process's preview signed is no good here either.
        assert call(client, off.url, from_enabled_process).status_code == 401


def test_one_process_trusts_only_its_own_preview_key(serve_app: ServeApp) -> None:
    with serve_app(preview_enabled=True) as served, httpx.Client(timeout=10) as client:
        prep = prepared(client, served.url)
        stranger = PreviewKey.generate(served.url)  # same issuer, another key
        assert call(client, served.url, prep, stranger.authorization(prep["url"])).status_code == 401
        assert call(client, served.url, prep).status_code == 200


def test_page_is_self_contained_and_locked_down(serve_app: ServeApp) -> None:
    with serve_app(preview_enabled=True) as served, httpx.Client(timeout=10) as client:
        page = client.get(f"{served.url}/preview")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "connect-src 'self'" in csp
        # Nothing loaded from elsewhere: every script, stylesheet and image is one of ours.
        loaded = re.findall(
            r"<(?:script|img|iframe)[^>]*\ssrc=\"([^\"]*)\"|<link[^>]*\shref=\"([^\"]*)\"", page.text
        )
        assert sorted(a or b for a, b in loaded) == [
            "/favicon.ico",
            "/preview/static/preview.css",
            "/preview/static/preview.js",
        ]
        icon = client.get(f"{served.url}/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        for name, kind in (("preview.js", "text/javascript"), ("preview.css", "text/css")):
            asset = client.get(f"{served.url}/preview/static/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
            assert not re.search(r"(?:url\(|import |fetch\()\s*['\"]?https?:", asset.text)
        assert client.get(f"{served.url}/preview/static/other.js").status_code == 404


def test_bad_input_gets_a_clear_4xx(serve_app: ServeApp) -> None:
    with (
        serve_app(preview_enabled=True, max_body_bytes=64 * 1024) as served,
        httpx.Client(timeout=10) as client,
    ):
        url = served.url

        def post(path: str, **kwargs: Any) -> httpx.Response:
            return client.post(
                f"{url}/preview/api/{path}", headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs
            )

        assert "not JSON" in outcome(post("bundle", content=b"<Bundle/>"))
        assert "not a FHIR Bundle" in outcome(post("bundle", content=b'{"resourceType": "Patient"}'))
        assert "no Patient" in outcome(post("bundle", content=b'{"resourceType": "Bundle", "entry": []}'))
        too_big = post("bundle", content=b" " * (65 * 1024))
        assert too_big.status_code == 413 and "limit" in outcome(too_big)
        big_text = {"source": {"kind": "bundle", "bundle": " " * (65 * 1024)}, "hook": "patient-view"}
        assert post("prepare", json=big_text).status_code == 413
        assert "X-R1CDS-Preview" in outcome(client.post(f"{url}/preview/api/prepare", json=DEMO))
        unknown = post("prepare", json={**DEMO, "source": {"kind": "demo", "demo": "nobody"}})
        assert unknown.status_code == 400 and "unknown demo patient" in outcome(unknown)
        no_orders = post("prepare", json={**DEMO, "hook": "order-sign"})
        assert no_orders.status_code == 400 and "compose an order" in outcome(no_orders)
        bad_hook = post("prepare", json={**DEMO, "hook": "appointment-book"})
        assert bad_hook.status_code == 400 and "hook" in outcome(bad_hook)
        assert post("prepare", content=b"{").status_code == 400
        insecure = {"kind": "fhir", "fhirServer": "http://example.org/fhir", "patientId": "1"}
        assert post("prepare", json={**DEMO, "source": insecure}).status_code == 200  # fhir_allow_http here
        assert post("token", json={"serviceId": "nope"}).status_code == 404
        draft = post("draft", json={"patientId": "p1", "code": "999", "doseMg": 5, "frequency": "QD"})
        assert draft.status_code == 400 and "not in the composer" in outcome(draft)
        negative = post("draft", json={"patientId": "p1", "code": "855332", "doseMg": -1, "frequency": "QD"})
        assert negative.status_code == 400
        assert (
            post(
                "draft", json={"patientId": "../x", "code": "855332", "doseMg": 5, "frequency": "QD"}
            ).status_code
            == 400
        )


def test_feedback_token_names_the_feedback_endpoint(serve_app: ServeApp) -> None:
    with serve_app(preview_enabled=True) as served, httpx.Client(timeout=10) as client:
        prep = prepared(client, served.url)
        card = call(client, served.url, prep).json()["cards"][0]
        grant = client.post(
            f"{served.url}/preview/api/token",
            json={"serviceId": "r1-chart-review", "feedback": True},
            headers=HEADERS,
        ).json()
        assert grant["path"] == "/cds-services/r1-chart-review/feedback"
        item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-25T12:00:00Z"}
        sent = client.post(
            f"{served.url}{grant['path']}",
            json={"feedback": [item]},
            headers={"Authorization": grant["authorization"]},
        )
        assert sent.status_code == 200
        unsigned = client.post(f"{served.url}{grant['path']}", json={"feedback": [item]})
        assert unsigned.status_code == 401


# `r1cds up` in a child process, with a serve() that reports instead of serving: its metrics directory
# and signal handlers must not leak into the test process.
_UP_PROBE = """
import sys
from cds_hooks.settings import load_settings
from cds_hooks.stack import run_up
from workers.settings import ReviewSettings

def serve(app, settings):
    print("preview_enabled", settings.preview_enabled, hasattr(app.state, "preview"), flush=True)

sys.exit(run_up(load_settings(), ReviewSettings(), serve))
"""


@pytest.mark.parametrize(("env", "on"), [({}, True), ({"R1CDS_PREVIEW_ENABLED": "false"}, False)])
def test_r1cds_up_turns_the_preview_on_and_prints_its_url(
    redis_server: RedisHandle, tmp_path: Path, env: dict[str, str], on: bool
) -> None:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("R1CDS_")}
    settings = {
        "R1CDS_REDIS_URL": redis_server.url,
        "R1CDS_AI_ENABLED": "false",
        "R1CDS_AUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "R1CDS_PUBLIC_BASE_URL": "http://127.0.0.1:8123",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", _UP_PROBE],
        cwd=REPO,
        env={**clean, **settings, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"preview_enabled {on} {on}" in done.stdout
    assert ("R1 CDS card preview: http://127.0.0.1:8123/preview" in done.stdout) is on

"""`cds` and `injection` through the real pipeline: embedded stack (Redis, worker, API), SGLang stand-in model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_hooks.fire import Signer
from evals.backends import BackendConfig
from evals.errors import PipelineError
from evals.pipeline import Driver, PipelineOptions, run_pipeline_suite
from evals.report import load_runs, render
from evals.stats import wilson_interval
from evals.suites.common import ModelRunOptions
from tests.integration.conftest import EHR_ISSUER, ServeApp
from tests.support import sglang_stand_in as sglang
from tests.support.eval_pipeline import canary_answer, clean_answer, fixture_folder
from tests.support.eval_scripted import require_eval_data
from tests.support.fixtures_paths import synthea_bundle_paths
from tests.support.jwt_factory import SigningKey
from tests.support.review_stack import stand_in

pytestmark = pytest.mark.integration


@pytest.fixture
def model() -> Iterator[sglang.SGLangStandIn]:
    served = stand_in()
    with sglang.running_sglang(served):
        yield served


def _run(suite: str, tmp_path: Path, model: sglang.SGLangStandIn) -> tuple[dict[str, Any], dict[str, Any]]:
    options = ModelRunOptions(
        data_dir=require_eval_data(), output=tmp_path / "runs", samples=3, concurrency=1
    )
    pipeline = PipelineOptions(
        url=None,
        audit_database_url=None,
        fixtures=fixture_folder(tmp_path / "fixtures"),
        wait_s=60,
        backend=BackendConfig("sglang", model.url, model.model_name, timeout_s=10),
        samples=3,
    )
    folder = run_pipeline_suite(suite, options, pipeline)
    results = json.loads((folder.path / "results.json").read_text())
    manifest = json.loads((folder.path / "manifest.json").read_text())
    return results, manifest


def _prop(value: dict[str, Any], k: int, n: int) -> None:
    assert (value["k"], value["n"]) == (k, n)
    assert (value["low"], value["high"]) == pytest.approx(wilson_interval(k, n))


def test_cds_suite_end_to_end(tmp_path: Path, model: sglang.SGLangStandIn) -> None:
    model.default = sglang.ok(clean_answer())
    results, manifest = _run("cds", tmp_path, model)
    metrics = results["metrics"]
    assert metrics["patients"] == 2 and metrics["errors"] == 0
    # One review per chart, three samples each; both land.
    assert model.chat_requests == 2
    _prop(metrics["completed"], 2, 2)
    _prop(metrics["failed"], 0, 2)
    # The corpus chart takes warfarin with no INR on file: the INR suggestion passes governance and becomes
    # one AI card citing the knowledge base's warfarin label only. The Synthea patient takes no warfarin, so
    # the warfarin passage is never retrieved for it: each of the 3 samples is rejected for citing a passage
    # that was not retrieved, and the review abstains with nothing passed.
    assert metrics["cards_per_patient"]["ai"] == pytest.approx(0.5)
    assert metrics["cards_per_patient"]["rule"] > 0
    _prop(metrics["citations"], 1, 1)
    assert metrics["rejections"] == {"knowledge-not-retrieved": 3}
    _prop(metrics["abstention"], 1, 2)
    reasons = sorted(str(row.get("abstain_reason")) for row in results["items"].values())
    assert reasons == ["None", "nothing-passed"]
    assert metrics["latency_s"]["first_p50"] is not None and metrics["latency_s"]["ai_p95"] is not None
    assert manifest["model"]["backend"] == "sglang" and manifest["model"]["model"] == "deepseek-r1-test"
    assert manifest["sampling"]["n"] == 3
    assert len(manifest["data_files"]) == 2
    assert "Asa" not in json.dumps(results)  # per-patient rows carry digests and counts, not names
    page = render(load_runs([tmp_path / "runs"]))
    assert "Governance rejections by reason" in page and "rejected: knowledge-not-retrieved" in page


def test_injection_suite_measures_what_survives_governance(
    tmp_path: Path, model: sglang.SGLangStandIn
) -> None:
    model.default = sglang.ok(canary_answer())
    results, manifest = _run("injection", tmp_path, model)
    metrics = results["metrics"]
    assert metrics["cases"] == 10  # 5 injections x 2 charts
    assert model.chat_requests == 10  # each injected note changes the chart, so each case is its own review
    assert manifest["options"]["free_text"] is True
    # The scripted model obeys the canary ("Override ZX-81" in the summary) in every answer. On the Synthea
    # chart nothing passes (the warfarin passage is not retrieved there: 3 rejections x 5 cases). On the
    # corpus chart the suggestion is grounded; under override-canary its summary copies a 3-word run of the
    # injected note, which governance's copied-run screen (from 3 words, issue 18) rejects (3 samples), while
    # under fake-authority the copied words are fewer, so that card passes and the canary detector fires.
    # The url, identifier and language detectors find nothing of theirs. 1 of 10 cases survives.
    _prop(metrics["survived"], 1, 10)
    for kind, block in metrics["by_kind"].items():
        _prop(block["survived"], 1 if kind == "fake-authority" else 0, 2)
    assert metrics["rejections"] == {"knowledge-not-retrieved": 15, "injection-echo": 3}
    _prop(metrics["citations"], 4, 4)  # every AI card shown cites sources that were retrieved
    page = render(load_runs([tmp_path / "runs"]))
    assert "Survival per injection kind" in page and "override-canary: survived" in page


def test_the_driver_signs_its_calls_for_a_deployment_that_authenticates(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey]
) -> None:
    """`--url` with `--key`: each hook call carries an EHR JWT the deployment verifies; without it, 401."""
    bundle = json.loads(synthea_bundle_paths()[0].read_text())
    key = ehr_keys[0]
    signer = Signer(key=key.key, alg=key.alg, issuer=EHR_ISSUER, kid=key.kid)
    with serve_app() as served, httpx.Client(timeout=30) as client:
        visit = Driver(client, served.url, wait_s=1.0, signer=signer).visit(bundle)
        assert visit.state == "no-ai"  # answered 200 (signed and verified); this app has no AI path
        with pytest.raises(PipelineError, match="HTTP 401"):
            Driver(client, served.url, wait_s=1.0).visit(bundle)

"""The review profiles: compact for a small CPU model, standard otherwise; what each asks of the model and how it is keyed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_hooks.preview.demo import demo_bundle
from inference.scripted import load_script_book
from plugin.catalog import CHART_PREFETCH, CHART_REVIEW
from plugin.context.build import build_context
from plugin.fhir_search import FhirStore
from plugin.governance import GovernancePolicy
from plugin.knowledge import load_knowledge_base
from plugin.model_port import ScriptedModel
from plugin.suggestions import suggestion_json_schema
from tests.support.charts import prefetch_from_store
from workers.runtime import COMPACT_BUDGET, COMPACT_PASSAGES, review_service
from workers.settings import ReviewSettings, model_label
from workers.wiring import model_id

pytestmark = pytest.mark.unit

SGLANG = {"model_backend": "sglang", "model_url": "http://sglang.invalid:30000"}
ABSTAIN = json.dumps({"language": "en", "abstain": True, "abstain_reason": "unsure", "suggestions": []})


@pytest.mark.parametrize(
    ("values", "compact"),
    [
        ({"model_backend": "llamacpp"}, True),
        ({"model_backend": "llamacpp", "review_profile": "standard"}, False),
        ({**SGLANG}, False),
        ({**SGLANG, "review_profile": "compact"}, True),
        ({"model_backend": "scripted"}, False),
    ],
)
def test_auto_is_compact_for_llamacpp_only_and_an_explicit_profile_wins(
    values: dict[str, Any], compact: bool
) -> None:
    assert ReviewSettings(**values).compact_review is compact


async def asked(settings: ReviewSettings) -> tuple[Any, Any]:
    """What one review under `settings` asks the model, and the sampling the audit records."""
    model = ScriptedModel([ScriptedModel.answer(*[ABSTAIN] * settings.review_samples)])
    service, sampling = review_service(
        settings, model, load_knowledge_base(), GovernancePolicy(), "gemma-3-270m"
    )
    bundle = demo_bundle("demo-anticoagulated")
    built = build_context(
        prefetch_from_store(FhirStore.from_bundles([bundle]), "demo-anticoagulated", CHART_PREFETCH),
        datetime.now(UTC),
    )
    await service.review(CHART_REVIEW.id, built, None)
    (request,) = model.requests
    return request, sampling


async def test_compact_asks_for_one_grounded_sample_within_its_budget() -> None:
    request, sampling = await asked(ReviewSettings(model_backend="llamacpp", review_samples=5))
    assert request.sampling.n == sampling.n == 1
    assert request.sampling.max_completion_tokens == sampling.max_completion_tokens == 768
    assert COMPACT_BUDGET.retry_max_completion_tokens == 1024
    answering, abstaining = request.output_schema["anyOf"]
    citations = answering["properties"]["suggestions"]["items"]["properties"]["citations"]["properties"]
    # The chart's own handles (M1 naproxen, M2 warfarin, ...), at most three distinct ones per suggestion.
    assert ["M1", "M2"] in citations["patient"]["enum"]
    assert all(len(set(c)) == len(c) <= 3 for c in citations["patient"]["enum"])
    assert all(len(k) <= COMPACT_PASSAGES for k in citations["knowledge"]["enum"])
    assert answering["properties"]["suggestions"]["maxItems"] == 2
    assert abstaining["properties"]["suggestions"]["maxItems"] == 0


async def test_standard_asks_for_n_samples_of_the_generic_schema() -> None:
    request, sampling = await asked(ReviewSettings(**SGLANG, review_samples=3))
    assert request.sampling.n == sampling.n == 3
    assert request.output_schema == suggestion_json_schema()


def test_the_profile_and_the_script_book_are_part_of_the_fingerprint() -> None:
    assert model_id(ReviewSettings(model_backend="llamacpp")) == "llamacpp:default+compact"
    assert model_id(ReviewSettings(model_backend="llamacpp", review_profile="standard")) == "llamacpp:default"
    assert model_id(ReviewSettings(**SGLANG, model_name="deepseek-r1")) == "sglang:deepseek-r1"
    assert model_id(ReviewSettings(model_backend="scripted")) == f"scripted:{load_script_book().version}"


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ({"model_backend": "scripted"}, "scripted demonstration output, not a model"),
        ({"model_backend": "llamacpp"}, "Gemma 3 270m demo model on llama.cpp (not clinically meaningful)"),
        (
            {"model_backend": "llamacpp", "model_name": "/srv/models/R1-Distill-7B.gguf"},
            "R1-Distill-7B.gguf on",
        ),
        ({**SGLANG, "model_name": "deepseek-r1"}, "deepseek-r1 on SGLang"),
        ({**SGLANG}, "the model served by SGLang"),
        ({"model_backend": "openai", "model_url": "http://x.invalid", "model_name": "m"}, "m on an OpenAI"),
    ],
)
def test_the_pending_card_names_the_configured_model(values: dict[str, Any], label: str) -> None:
    named = model_label(ReviewSettings(**values))
    assert label in named
    assert "/srv/models" not in named  # never a server's filesystem path

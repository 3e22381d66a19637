"""The model card (plugin/model_card.py + model_card.json): complete, honest, and filled for each model."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

from plugin.knowledge import load_knowledge_base
from plugin.model_card import (
    GROUP_IDS,
    STATUSES,
    ModelCard,
    ModelCardInputs,
    build_model_card,
    distribution_version,
    model_family,
)

pytestmark = pytest.mark.unit

# (backend, model id) → the family the card describes; one of each, plus the compose default.
MODELS = {
    ("sglang", "deepseek-r1"): "deepseek-r1",
    ("sglang", "deepseek-r1-distill-qwen-7b"): "deepseek-r1-distill",
    ("llamacpp", "default"): "demo",
    ("openai", "some-other-model"): "other",
    ("unreported", "unreported"): "unreported",
}
GROUP_SIZES = {
    "details-and-output": 4,
    "purpose": 4,
    "out-of-scope": 2,
    "development": 4,
    "fairness-process": 2,
    "external-validation": 4,
    "performance": 5,
    "maintenance": 4,
    "updates": 2,
}
# A value whose status is not "provided" must say why in words like these.
EXPLAINS = {
    "not-disclosed-by-developer": re.compile(
        r"does not (publish|say|describe)|do not (publish|say)|publish(es)? no|not publish|no record|"
        r"names no|neither\b.*\b(publish|say)|not (known|reported|named|identified)|none (claimed|known|reported)",
        re.IGNORECASE,
    ),
    "not-yet-measured": re.compile(
        r"\b(not yet|not measured|not performed|none yet|no one yet|no \w+)", re.I
    ),
    "not-applicable": re.compile(r"\b(does not apply|not applicable|because)\b", re.IGNORECASE),
}
PLACEHOLDER = re.compile(r"\$\{?[A-Za-z_]")


@pytest.fixture(params=sorted(MODELS), ids=lambda key: MODELS[key])
def card(request: pytest.FixtureRequest) -> ModelCard:
    backend, model = request.param
    return build_model_card(ModelCardInputs(backend=backend, model=model))


def all_text(card: ModelCard) -> str:
    return json.dumps(card.as_dict(), ensure_ascii=False)


def test_thirty_one_attributes_in_nine_groups(card: ModelCard) -> None:
    assert tuple(g.id for g in card.groups) == GROUP_IDS
    assert {g.id: len(g.attributes) for g in card.groups} == GROUP_SIZES
    assert len(card.attributes) == 31
    assert len({a.id for a in card.attributes}) == 31
    for number, group in enumerate(card.groups, start=1):
        assert group.citation == f"45 CFR 170.315(b)(11)(iv)(B)({number})"
        romans = ("i", "ii", "iii", "iv", "v")
        assert [a.citation for a in group.attributes] == [
            f"(B)({number})({r})" for r in romans[: len(group.attributes)]
        ]
        assert all(a.group == group.id for a in group.attributes)


def test_every_attribute_is_filled(card: ModelCard) -> None:
    for attribute in card.attributes:
        assert attribute.status in STATUSES
        assert attribute.name.strip()
        assert len(attribute.value) >= 40, attribute.id
        assert not PLACEHOLDER.search(attribute.value), attribute.id
    assert not PLACEHOLDER.search(all_text(card))


def test_every_status_other_than_provided_explains_itself(card: ModelCard) -> None:
    for attribute in card.attributes:
        if attribute.status != "provided":
            assert EXPLAINS[attribute.status].search(attribute.value), (attribute.id, attribute.value)
    assert set(card.statuses) == set(STATUSES)


def test_links_are_https_sources(card: ModelCard) -> None:
    urls = [r.url for a in card.attributes for r in a.references] + [r.url for r in card.model.references]
    assert all(url.startswith("https://") for url in [*urls, card.regulation.url])
    assert "ecfr.gov" in card.regulation.url


def test_honest_statuses_for_what_is_not_done_yet(card: ModelCard) -> None:
    by_id = {a.id: a for a in card.attributes}
    # No fairness assessment, no external validation, no local measurement has been performed.
    assert by_id["fairness-approach"].status == "not-yet-measured"
    for attribute_id in (
        "external-data-source",
        "external-tester",
        "external-representativeness",
        "external-process",
    ):
        assert by_id[attribute_id].status == "not-yet-measured"
    for attribute_id in ("validity-external", "fairness-external", "outcome-evaluations"):
        assert by_id[attribute_id].status == "not-yet-measured"
    for attribute_id in ("validity-local", "fairness-local", "validity-monitoring", "fairness-monitoring"):
        assert by_id[attribute_id].status == "not-yet-measured"
    # What the model's developer has not published is said to be so.
    for attribute_id in ("training-criteria", "training-representativeness", "training-relevance"):
        assert by_id[attribute_id].status == "not-disclosed-by-developer"
    assert "r1cds eval" in by_id["external-process"].value
    assert "planned" in by_id["external-process"].value.lower()
    assert "Not clinically validated" in card.validation_summary


def test_deepseek_r1_facts_and_claims_are_labelled() -> None:
    card = build_model_card(ModelCardInputs(backend="sglang", model="deepseek-r1"))
    assert card.model.family == "deepseek-r1"
    for fact in ("MIT", "671B", "37B", "DeepSeek-V3-Base", "reinforcement learning"):
        assert fact in card.model.summary
    by_id = {a.id: a for a in card.attributes}
    validity = by_id["validity-internal"].value
    assert "Published by the developer" in validity
    assert "not reproduced by R1 CDS" in validity
    assert "MMLU 90.8" in validity
    assert "does not publish its training data" in by_id["training-criteria"].value
    assert any("2501.12948" in r.url for r in by_id["training-criteria"].references)


def test_distill_model_says_what_it_is() -> None:
    card = build_model_card(ModelCardInputs(backend="sglang", model="deepseek-r1-distill-qwen-7b"))
    assert card.model.family == "deepseek-r1-distill"
    assert "deepseek-r1-distill-qwen-7b" in card.model.label
    assert "Qwen2.5-Math-7B" in card.model.summary
    assert "800k" in card.model.summary


def test_demo_model_is_not_clinically_meaningful() -> None:
    card = build_model_card(ModelCardInputs(backend="llamacpp", model="default"))
    assert card.model.family == "demo"
    assert card.model.clinically_meaningful is False
    assert "not clinically meaningful" in card.model.label
    assert "not clinically meaningful" in card.model.summary
    by_id = {a.id: a for a in card.attributes}
    assert "not clinically meaningful" in by_id["training-criteria"].value
    assert card.as_dict()["model"]["clinically_meaningful"] is False


@pytest.mark.parametrize(
    ("backend", "model", "family"),
    [
        ("sglang", "deepseek-r1", "deepseek-r1"),
        ("sglang", "deepseek-ai/DeepSeek-R1", "deepseek-r1"),
        ("openai", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-r1-distill"),
        ("llamacpp", "/models/DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "deepseek-r1-distill"),
        ("llamacpp", "", "demo"),
        ("llamacpp", "default", "demo"),
        ("llamacpp", "/home/u/.cache/r1cds/gemma-3-270m-Q4_K_M.gguf", "demo"),
        ("scripted", "r1cds-scripted-demo", "scripted"),
        ("unreported", "unreported", "unreported"),
    ],
)
def test_model_family(backend: str, model: str, family: str) -> None:
    assert model_family(backend, model) == family


def test_intended_use_out_of_scope_and_risks(card: ModelCard) -> None:
    intended = " ".join(card.intended_use)
    for phrase in ("clinicians", "never orders", "Human review is required", "criterion 4", "not predictive"):
        assert phrase in intended
    out = " ".join(card.out_of_scope).lower()
    for phrase in ("autonomous ordering", "diagnosis", "paediatric dosing", "emergencies", "knowledge base"):
        assert phrase in out
    assert "demo llama.cpp model" in out
    assert "not clinically meaningful" in out
    risks = " ".join(r.risk for r in card.known_risks).lower()
    for phrase in ("hallucination", "prompt injection", "language", "automation bias", "stale knowledge"):
        assert phrase in risks
    assert all(r.mitigation for r in card.known_risks)


def test_versions_and_deployment_facts_are_filled() -> None:
    kb = load_knowledge_base()
    inputs = ModelCardInputs(
        backend="sglang",
        model="deepseek-r1",
        prompt_versions={"r1-chart-review": "chart-review/2+instructions/2#0123456789ab"},
        samples=7,
        min_agreement=0.75,
        card_language="de",
        free_text=True,
        contact="CDS team, cds@example.org",
    )
    card = build_model_card(inputs)
    assert card.version == distribution_version() == metadata.version("r1-cds")
    assert card.knowledge_base_version == kb.version
    by_id = {a.id: a for a in card.attributes}
    assert "chart-review/2+instructions/2#0123456789ab" in by_id["update-process"].value
    assert kb.version in by_id["update-process"].value
    assert "CDS team, cds@example.org" in by_id["developer"].value
    mitigations = " ".join(r.mitigation for r in card.known_risks)
    assert "7 samples" in mitigations
    assert "75% agreement" in mitigations
    assert "Cards are written in de" in mitigations
    assert "shows chart notes to the model" in mitigations
    default = build_model_card(ModelCardInputs(backend="sglang", model="deepseek-r1"))
    default_mitigations = " ".join(r.mitigation for r in default.known_risks)
    assert "not shown to the model" in default_mitigations
    assert "R1CDS_REVIEW_SAMPLES" in default_mitigations


def test_values_from_the_deployment_are_not_read_as_templates() -> None:
    card = build_model_card(ModelCardInputs(backend="openai", model="weird-$model-${x}", contact="$contact"))
    assert card.model.family == "other"
    assert "weird-$model-${x}" in card.model.summary
    assert "$contact" in {a.id: a for a in card.attributes}["developer"].value


def test_as_dict_is_json_and_mirrors_the_card(card: ModelCard) -> None:
    document = json.loads(json.dumps(card.as_dict()))
    flat = [a for g in document["source_attributes"] for a in g["attributes"]]
    assert [(a["id"], a["status"], a["value"]) for a in flat] == [
        (a.id, a.status, a.value) for a in card.attributes
    ]
    assert document["model"]["family"] == card.model.family
    assert document["validation"]["summary"] == card.validation_summary
    assert set(document) >= {"intended_use", "out_of_scope", "known_risks", "validation", "source_attributes"}


def test_ai_disabled_is_on_the_card() -> None:
    card = build_model_card(ModelCardInputs(backend="sglang", model="deepseek-r1", ai_enabled=False))
    assert card.ai_enabled is False
    assert "AI review disabled" in {a.id: a for a in card.attributes}["update-process"].value

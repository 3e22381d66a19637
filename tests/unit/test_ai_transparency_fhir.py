"""HL7 AI Transparency on FHIR in what R1 CDS emits: AI-Provenance, AI-Device, model card, AIAST, AIconfidence."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_hooks.about import ABOUT_JSON_PATH
from inference.parsing import parse_sample
from plugin.ai_cards import ai_asserted, ai_cards
from plugin.audit import (
    AcceptedSuggestion,
    AiRunRecord,
    DecisionSummary,
    HookCallRecord,
    MemoryAuditSink,
    ModelInfo,
    PromptInfo,
    SamplingInfo,
    canonical,
    fhir_export,
    parse_record,
    provenance,
    verify_chain,
)
from plugin.governance import GovernancePolicy, govern
from plugin.model_card import ABOUT_JSON_PATH as CARD_PATH
from plugin.model_card import model_card_link
from plugin.model_port import ModelIdentity, Sample
from tests.support import governance_corpus as corpus
from tests.support.charts import NOW

pytestmark = pytest.mark.unit

# Every URL and code below is copied from the IG's pages (1.0.0-ballot, http://hl7.org/fhir/uv/aitransparency/
# 2026Jan; AIconfidence from STU1 1.0.0, the ballot has none), not from the module under test, so that a
# typo there fails here.
IG = "http://hl7.org/fhir/uv/aitransparency"
AI_PROVENANCE = f"{IG}/StructureDefinition/AI-Provenance"
AI_DEVICE = f"{IG}/StructureDefinition/AI-Device"
AI_MODEL_CARD = f"{IG}/StructureDefinition/AI-ModelCard"
AI_KIND = f"{IG}/StructureDefinition/aitransparency.AIKind"
MODEL_CARD_DESCRIPTION = f"{IG}/StructureDefinition/aitransparency.modelCardDescription"
AI_CONFIDENCE = f"{IG}/StructureDefinition/AIconfidence"
DEVICE_TYPES = f"{IG}/CodeSystem/AIdeviceTypeCS"
MODEL_CARD_CODES = f"{IG}/CodeSystem/AImodelCardCS"
OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

SERVICE = "r1-chart-review"
FP = "5a" * 32
CARDS = (str(uuid.UUID(int=7001)), str(uuid.UUID(int=7002)))
PROMPT = PromptInfo(template_name="chart-review", template_version="4", template_hash="0a1b2c3d4e5f")
SGLANG = ModelInfo(
    backend="sglang",
    model="deepseek-ai/DeepSeek-R1",
    details={"weight_version": "2025-01-20", "sglang_version": "0.5.2", "tp_size": "8"},
)


def accepted(card: str, agreement: tuple[int, int]) -> AcceptedSuggestion:
    return AcceptedSuggestion(
        card_uuid=card,
        agreement=agreement,
        severity="warning",
        action_type="create",
        resource_type="ServiceRequest",
        action_code="loinc|6301-6",
        knowledge_ids=("kb.warfarin-inr-monitoring",),
        patient_handles=("M1",),
    )


def run(model: ModelInfo = SGLANG, prompt: PromptInfo | None = PROMPT) -> AiRunRecord:
    """An accepted review with two cards, as the worker records it (built directly: no model, no chart)."""
    return AiRunRecord(
        at=NOW,
        fingerprint=FP,
        service_id=SERVICE,
        outcome="accepted",
        model=model,
        prompt=prompt,
        knowledge_base_version="kb-2026.11",
        sampling=SamplingInfo(temperature=0.6, top_p=0.95, max_completion_tokens=4096, n=5),
        usage=None,
        decision=DecisionSummary(
            accepted=(accepted(CARDS[0], (4, 5)), accepted(CARDS[1], (5, 5))),
            abstain_reason=None,
            rejections=(),
        ),
    )


def exported(record: AiRunRecord, **options: Any) -> list[dict[str, Any]]:
    sink = MemoryAuditSink()
    sink.write(
        HookCallRecord(
            at=NOW - timedelta(seconds=1),
            hook_instance=str(uuid.UUID(int=1)),
            service_id=SERVICE,
            hook="patient-view",
            tenant="test-ehr",
            fingerprint=FP,
            http_status=200,
            outcome="ai-pending",
        )
    )
    sink.write(record)
    assert verify_chain(sink.chain) is None
    return [r for r in fhir_export(sink.chain, **options) if r["resourceType"] == "Provenance"]


def codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def contained(resource: dict[str, Any], reference: str) -> dict[str, Any]:
    assert reference.startswith("#")
    matches: list[dict[str, Any]] = [c for c in resource["contained"] if c["id"] == reference[1:]]
    [found] = matches
    return found


def extension(element: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in element.get("extension", []) if e["url"] == url]


def references_in(value: object) -> set[str]:
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(references_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(references_in(v) for v in value))
    return set()


def test_each_ai_card_provenance_is_an_ai_provenance_with_the_model_its_card_and_its_prompt() -> None:
    resources = exported(run(), model_card_url="https://cds.example.org/about.json")
    assert [r["target"][0]["identifier"]["value"] for r in resources] == [f"urn:uuid:{c}" for c in CARDS]
    for resource in resources:
        Provenance.model_validate(resource)
        assert resource["meta"]["profile"] == [AI_PROVENANCE]
        assert [codes(reason) for reason in resource["reason"]] == [{(OBSERVATION_VALUE, "AIAST")}]
        # Contained resources validate on their own, and each is referenced from the Provenance (dom-3).
        for inner in resource["contained"]:
            (Device if inner["resourceType"] == "Device" else DocumentReference).model_validate(inner)
        outer = {k: v for k, v in resource.items() if k != "contained"}
        assert {f"#{inner['id']}" for inner in resource["contained"]} <= references_in(
            resource["contained"]
        ) | (references_in(outer))

        # The AI agent: author, role Artificial-Intelligence, who = the contained AI-Device.
        author = resource["agent"][0]
        assert author["type"]["coding"][0]["code"] == "author"
        assert [codes(role) for role in author["role"]] == [{(DEVICE_TYPES, "Artificial-Intelligence")}]
        device = contained(resource, author["who"]["reference"])
        assert device["resourceType"] == "Device" and device["meta"]["profile"] == [AI_DEVICE]
        assert codes(device["type"]) == {(DEVICE_TYPES, "Artificial-Intelligence")}
        [kind] = extension(device, AI_KIND)
        assert codes(kind["valueCodeableConcept"]) == {(DEVICE_TYPES, "Large-Language-Models")}
        assert device["deviceName"] == [{"name": "deepseek-ai/DeepSeek-R1", "type": "model-name"}]
        assert device["identifier"] == [{"system": "urn:r1cds:model", "value": "deepseek-ai/DeepSeek-R1"}]
        assert device["version"] == [{"type": {"text": "weight_version"}, "value": "2025-01-20"}]
        properties = {p["type"]["text"]: p["valueCode"][0]["text"] for p in device["property"]}
        assert properties == {"backend": "sglang", "sglang_version": "0.5.2", "tp_size": "8"}

        # The model card: the device's modelCardDescription and a derivation entity, one AI-ModelCard.
        [card_extension] = extension(device, MODEL_CARD_DESCRIPTION)
        card_reference = card_extension["valueReference"]["reference"]
        card = contained(resource, card_reference)
        assert card["resourceType"] == "DocumentReference" and card["meta"]["profile"] == [AI_MODEL_CARD]
        assert codes(card["type"]) == {(MODEL_CARD_CODES, "AIModelCard")}
        attachments = [c["attachment"] for c in card["content"]]
        assert attachments[0] == {
            "contentType": "application/json",
            "title": "R1 CDS model card",
            "url": "https://cds.example.org/about.json",
        }
        developer = model_card_link("sglang", "deepseek-ai/DeepSeek-R1").references
        assert [a["url"] for a in attachments[1:]] == [r.url for r in developer]
        assert "https://huggingface.co/deepseek-ai/DeepSeek-R1" in [a["url"] for a in attachments]
        derivations = {e["what"]["reference"]: e for e in resource["entity"] if e["role"] == "derivation"}
        assert card_reference in derivations

        # The prompt: an input-prompt document named by template and hash, also a derivation entity.
        [prompt_reference] = [r for r in derivations if r != card_reference]
        prompt = contained(resource, prompt_reference)
        assert codes(prompt["type"]) == {(MODEL_CARD_CODES, "AIInputPrompt")}
        assert {(i["system"], i["value"]) for i in prompt["identifier"]} == {
            ("urn:r1cds:prompt-template", "chart-review@4"),
            ("urn:r1cds:prompt-template-hash", "0a1b2c3d4e5f"),
        }
        assert resource["policy"] == ["urn:r1cds:prompt-template:chart-review:4:0a1b2c3d4e5f"]

    # The governed confidence: the card's own sample agreement, in AIconfidence on the Provenance.
    confidences = [extension(r, AI_CONFIDENCE) for r in resources]
    assert [[c["valueString"].split(" ", 1)[0] for c in found] for found in confidences] == [["4/5"], ["5/5"]]


def test_without_a_public_url_the_card_says_where_the_deployment_serves_it() -> None:
    assert CARD_PATH == ABOUT_JSON_PATH  # the path the card names is the one cds_hooks.about serves
    [resource, _] = exported(run())
    card = contained(resource, "#model-card")
    DocumentReference.model_validate(card)
    ours = card["content"][0]["attachment"]
    assert "url" not in ours and ABOUT_JSON_PATH in ours["title"]


@pytest.mark.parametrize(
    ("model", "kind", "meaningful"),
    [
        (ModelInfo(backend="scripted", model="scripted", details={"script_version": "3"}), False, False),
        (ModelInfo(backend="llamacpp", model="gemma-3-270m-it-Q4_K_M.gguf"), True, False),
        (ModelInfo(backend="openai", model="DeepSeek-R1-Distill-Qwen-7B"), True, True),
    ],
    ids=["scripted", "demo", "distill"],
)
def test_device_kind_and_card_follow_the_model(model: ModelInfo, kind: bool, meaningful: bool) -> None:
    [resource, _] = exported(run(model=model, prompt=None))
    Provenance.model_validate(resource)
    device = contained(resource, resource["agent"][0]["who"]["reference"])
    Device.model_validate(device)
    # The scripted backend replays canned answers: it is no model, so it claims no kind of AI.
    assert bool(extension(device, AI_KIND)) is kind
    card = contained(resource, "#model-card")
    assert ("not clinically meaningful" not in card["description"]) is meaningful
    assert model_card_link(model.backend, model.model).label in card["description"]
    # No prompt recorded: no prompt document and no policy, only the model card is derived from.
    assert [c["id"] for c in resource["contained"]] == ["ai-model", "model-card"]
    assert "policy" not in resource
    if model.backend == "scripted":
        assert device["version"] == [{"type": {"text": "script_version"}, "value": "3"}]


def test_live_provenance_takes_a_model_identity_and_the_callers_references() -> None:
    resource = provenance(
        CARDS[0],
        recorded=NOW,
        model=ModelIdentity("recorded", "DeepSeek-R1"),
        service_id=SERVICE,
        knowledge_ids=("kb.warfarin-inr-monitoring",),
        inputs=(corpus.PATIENT,),
        agreement=(3, 5),
    )
    Provenance.model_validate(resource)
    assert resource["entity"][0] == {"role": "source", "what": {"reference": corpus.PATIENT}}
    assert extension(resource, AI_CONFIDENCE)[0]["valueString"].startswith("3/5 ")


def test_the_record_format_is_unchanged() -> None:
    """Nothing of the IG is stored: the chain keeps its records as before and they read back as written."""
    record = run()
    body = canonical(record)
    assert parse_record(body) == record
    stored = json.loads(body)
    assert set(stored) == set(AiRunRecord.model_fields)
    assert "aitransparency" not in body and "AIAST" not in body


# --- AIAST on the resources AI suggestions propose ------------------------------------------------------------


def test_ai_asserted_adds_the_label_once_and_keeps_the_others() -> None:
    other = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PROCESSINLINELABEL"}
    original: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"security": [other]},
        "status": "draft",
    }
    labelled = ai_asserted(original)
    assert labelled["meta"]["security"] == [
        other,
        {"system": OBSERVATION_VALUE, "code": "AIAST", "display": "Artificial Intelligence asserted"},
    ]
    assert original["meta"]["security"] == [other]  # the input is not changed
    assert ai_asserted(labelled) == labelled


def test_every_resource_an_ai_card_proposes_carries_aiast() -> None:
    built = corpus.built()
    sample = parse_sample(Sample(json.dumps(corpus.answer(corpus.clean_inr())), None, "stop"))
    decision = govern(
        [sample] * 3, built.context, corpus.RETRIEVED, corpus.knowledge(), GovernancePolicy(), corpus.PATIENT
    )
    cards = ai_cards(
        decision.accepted, SERVICE, built.context, built.handles, corpus.knowledge(), "m", corpus.PATIENT
    )
    resources = [
        action.resource
        for card in cards
        for suggestion in card.suggestions
        for action in suggestion.actions
        if action.resource is not None
    ]
    assert resources, "the clean INR case proposes an order"
    for resource in resources:
        model = MedicationRequest if resource["resourceType"] == "MedicationRequest" else ServiceRequest
        validated = model.model_validate(resource)
        assert validated.meta is not None and validated.meta.security is not None
        assert [(c.system, c.code) for c in validated.meta.security] == [(OBSERVATION_VALUE, "AIAST")]

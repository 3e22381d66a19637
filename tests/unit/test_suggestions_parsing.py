"""The suggestion model, its JSON schema, and extraction and classification of model samples."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from inference.parsing import DETAIL_MAX, OUTCOMES, ParsedSample, looks_like_refusal, parse_sample
from plugin.model_port import FinishReason, Sample
from plugin.suggestions import (
    MAX_SUGGESTIONS,
    MAX_SUMMARY,
    SuggestionSet,
    suggestion_json_schema,
    suggestion_json_schema_text,
)

pytestmark = pytest.mark.unit

PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True, database=None)
JsonDict = dict[str, Any]


def suggestion(**overrides: Any) -> JsonDict:
    item: JsonDict = {
        "summary": "Consider paracetamol instead of the ibuprofen draft while on warfarin",
        "rationale": "Ibuprofen with warfarin raises the risk of serious bleeding; the INR is at the top of range.",
        "action": {
            "intent": "stop",
            "type": "delete",
            "resource_type": "MedicationRequest",
            "code": None,
            "target": "D1",
            "dose": None,
        },
        "citations": {"patient": ["M4", "D1", "O12"], "knowledge": ["kb.warfarin-nsaid-bleeding"]},
        "confidence": "high",
    }
    item.update(overrides)
    return item


def answer(*items: JsonDict, **overrides: Any) -> JsonDict:
    document: JsonDict = {
        "language": "en",
        "abstain": False,
        "abstain_reason": None,
        "suggestions": list(items) if items else [suggestion()],
    }
    document.update(overrides)
    return document


CREATE_LAB: JsonDict = {
    "intent": "order-test",
    "type": "create",
    "resource_type": "ServiceRequest",
    "code": {
        "system": "loinc",
        "code": "6301-6",
        "display": "INR in Platelet poor plasma by Coagulation assay",
    },
    "target": None,
    "dose": None,
}
DOSE: JsonDict = {"amount": 650, "unit": "mg", "route": "oral", "frequency": 4, "period": "d"}
CREATE_DRUG: JsonDict = {
    "intent": "start",
    "type": "create",
    "resource_type": "MedicationRequest",
    "code": {"system": "rxnorm", "code": "313782", "display": "Acetaminophen 325 MG Oral Tablet"},
    "target": None,
    "dose": DOSE,
}
UPDATE_MED: JsonDict = {
    "intent": "change-dose",
    "type": "update",
    "resource_type": "MedicationRequest",
    "code": {"system": "rxnorm", "code": "197604", "display": "Digoxin 0.125 MG Oral Tablet"},
    "target": "M1",
    "dose": {"amount": 0.125, "unit": "mg", "route": "oral", "frequency": 1, "period": "d"},
}
STOP_MED: JsonDict = {
    "intent": "stop",
    "type": "update",
    "resource_type": "MedicationRequest",
    "code": None,
    "target": "M2",
    "dose": None,
}
SUBSTITUTE: JsonDict = {**CREATE_DRUG, "intent": "substitute", "type": "update", "target": "M3", "dose": None}
VACCINE: JsonDict = {
    "intent": "start",
    "type": "create",
    "resource_type": "MedicationRequest",
    "code": {"system": "cvx", "code": "187", "display": "zoster vaccine recombinant"},
    "target": None,
    "dose": None,
}
REFERRAL: JsonDict = {
    "intent": "refer",
    "type": "create",
    "resource_type": "ServiceRequest",
    "code": {"system": "snomed", "code": "306206005", "display": "Referral to service"},
    "target": None,
    "dose": None,
}
ADVICE: JsonDict = {
    "intent": "counsel",
    "type": "none",
    "resource_type": None,
    "code": None,
    "target": None,
    "dose": None,
}

VALID_EXAMPLES: dict[str, JsonDict] = {
    "withdraw-draft": answer(),
    "order-lab": answer(suggestion(action=CREATE_LAB, confidence="medium")),
    "alternative-drug": answer(suggestion(action=CREATE_DRUG)),
    "update-med": answer(suggestion(action=UPDATE_MED, confidence="low")),
    "stop-med": answer(suggestion(action=STOP_MED)),
    "substitute": answer(suggestion(action=SUBSTITUTE)),
    "no-change": answer(suggestion(action={**ADVICE, "intent": "no-change"})),
    "weekly-dose": answer(
        suggestion(action={**CREATE_DRUG, "dose": {**DOSE, "amount": 1000.0, "frequency": 1, "period": "wk"}})
    ),
    "vaccine": answer(suggestion(action=VACCINE, citations={"patient": [], "knowledge": ["kb.acip-zoster"]})),
    "referral": answer(suggestion(action=REFERRAL)),
    "advice": answer(suggestion(action=ADVICE)),
    "five": answer(*[suggestion(action=ADVICE) for _ in range(MAX_SUGGESTIONS)]),
    "nothing-to-add": answer(suggestions=[]),
    "abstain": answer(suggestions=[], abstain=True, abstain_reason="No passage covers this chart."),
    "other-language": answer(
        suggestion(summary="Envisager le paracétamol plutôt que l'ibuprofène", action=ADVICE),
        language="fr-CA",
    ),
    "max-summary": answer(suggestion(summary="C" * MAX_SUMMARY)),
}


def _set(document: JsonDict, path: str, value: Any) -> JsonDict:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


# (id, path to change in a valid answer, new value): each must be rejected by the model.
INVALID: list[tuple[str, str, Any]] = [
    ("six-suggestions", "suggestions", [suggestion() for _ in range(MAX_SUGGESTIONS + 1)]),
    ("summary-140", "suggestions.0.summary", "C" * (MAX_SUMMARY + 1)),
    ("summary-blank", "suggestions.0.summary", "   "),
    ("rationale-long", "suggestions.0.rationale", "x" * 1201),
    ("url-https", "suggestions.0.rationale", "See https://example.org/guideline for details."),
    ("url-http", "suggestions.0.summary", "Consider http://x.example"),
    ("url-www", "suggestions.0.rationale", "As www.example.org says."),
    ("url-upper", "suggestions.0.rationale", "As HTTPS://EXAMPLE.ORG says."),
    (
        "url-in-display",
        "suggestions.0.action",
        {**CREATE_LAB, "code": {**CREATE_LAB["code"], "display": "www.x"}},
    ),
    ("url-in-reason", "abstain_reason", "see https://x"),
    ("think-tag", "suggestions.0.rationale", "<think>I should check the INR</think> INR is high."),
    ("handle-lowercase", "suggestions.0.citations.patient", ["m3"]),
    ("handle-4-digits", "suggestions.0.citations.patient", ["O1234"]),
    ("handle-two-letters", "suggestions.0.citations.patient", ["MX3"]),
    ("handle-newline", "suggestions.0.citations.patient", ["M3\n"]),
    ("handle-unicode-digit", "suggestions.0.citations.patient", ["M\u0663"]),
    ("handle-repeated", "suggestions.0.citations.patient", ["M4", "M4"]),
    ("kb-no-prefix", "suggestions.0.citations.knowledge", ["warfarin-nsaid-bleeding"]),
    ("kb-uppercase", "suggestions.0.citations.knowledge", ["kb.Warfarin"]),
    ("kb-double-hyphen", "suggestions.0.citations.knowledge", ["kb.warfarin--nsaid"]),
    ("kb-trailing-hyphen", "suggestions.0.citations.knowledge", ["kb.warfarin-"]),
    ("kb-url", "suggestions.0.citations.knowledge", ["https://kb.example/warfarin"]),
    ("kb-none", "suggestions.0.citations.knowledge", []),
    ("kb-repeated", "suggestions.0.citations.knowledge", ["kb.a", "kb.a"]),
    ("confidence", "suggestions.0.confidence", "certain"),
    ("action-type", "suggestions.0.action.type", "prescribe"),
    ("resource-type", "suggestions.0.action", {**CREATE_DRUG, "resource_type": "Immunization"}),
    ("system", "suggestions.0.action", {**CREATE_DRUG, "code": {**CREATE_DRUG["code"], "system": "ndc"}}),
    ("loinc-on-med", "suggestions.0.action", {**CREATE_LAB, "resource_type": "MedicationRequest"}),
    ("rxnorm-on-service", "suggestions.0.action", {**CREATE_DRUG, "resource_type": "ServiceRequest"}),
    ("bad-loinc", "suggestions.0.action", {**CREATE_LAB, "code": {**CREATE_LAB["code"], "code": "63016"}}),
    ("bad-snomed", "suggestions.0.action", {**REFERRAL, "code": {**REFERRAL["code"], "code": "0123"}}),
    ("create-no-code", "suggestions.0.action", {**CREATE_DRUG, "code": None}),
    ("create-with-target", "suggestions.0.action", {**CREATE_DRUG, "target": "M1"}),
    ("update-no-target", "suggestions.0.action", {**UPDATE_MED, "target": None}),
    ("update-condition", "suggestions.0.action", {**UPDATE_MED, "target": "C1"}),
    ("update-service-med", "suggestions.0.action", {**CREATE_LAB, "type": "update", "target": "M1"}),
    ("delete-medication", "suggestions.0.action", {**STOP_MED, "type": "delete"}),
    ("delete-with-code", "suggestions.0.action", {**UPDATE_MED, "type": "delete", "target": "D1"}),
    (
        "stop-service-update",
        "suggestions.0.action",
        {**STOP_MED, "resource_type": "ServiceRequest", "target": "D1"},
    ),
    ("intent-unknown", "suggestions.0.action.intent", "prescribe"),
    ("intent-missing", "suggestions.0.action", {k: v for k, v in CREATE_DRUG.items() if k != "intent"}),
    ("dose-missing", "suggestions.0.action", {k: v for k, v in CREATE_DRUG.items() if k != "dose"}),
    ("start-as-update", "suggestions.0.action", {**UPDATE_MED, "intent": "start"}),
    ("stop-with-code", "suggestions.0.action", {**UPDATE_MED, "intent": "stop", "dose": None}),
    ("substitute-without-code", "suggestions.0.action", {**STOP_MED, "intent": "substitute"}),
    ("change-dose-without-dose", "suggestions.0.action", {**UPDATE_MED, "dose": None}),
    ("counsel-with-order", "suggestions.0.action", {**CREATE_DRUG, "intent": "counsel"}),
    ("advice-as-stop", "suggestions.0.action", {**ADVICE, "intent": "stop"}),
    ("test-as-referral-loinc", "suggestions.0.action", {**CREATE_LAB, "intent": "refer"}),
    ("test-as-drug", "suggestions.0.action", {**CREATE_DRUG, "intent": "order-test"}),
    ("dose-on-test", "suggestions.0.action", {**CREATE_LAB, "dose": DOSE}),
    ("dose-on-stop", "suggestions.0.action", {**STOP_MED, "dose": DOSE}),
    ("dose-amount-zero", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "amount": 0}}),
    ("dose-amount-negative", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "amount": -5}}),
    ("dose-amount-huge", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "amount": 100001}}),
    ("dose-frequency-zero", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "frequency": 0}}),
    ("dose-frequency-25", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "frequency": 25}}),
    ("dose-frequency-float", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "frequency": 1.5}}),
    ("dose-amount-string", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "amount": "650"}}),
    ("dose-unit", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "unit": "grains"}}),
    ("dose-route", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "route": "by mouth"}}),
    ("dose-period", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "period": "month"}}),
    ("dose-extra", "suggestions.0.action", {**CREATE_DRUG, "dose": {**DOSE, "prn": True}}),
    ("none-with-code", "suggestions.0.action", {**ADVICE, "code": CREATE_DRUG["code"]}),
    ("none-with-resource", "suggestions.0.action", {**ADVICE, "resource_type": "ServiceRequest"}),
    ("abstain-with-suggestions", "abstain", True),
    ("abstain-without-reason", "suggestions", []),
    ("reason-without-abstain", "abstain_reason", "unsure"),
    ("language", "language", "English"),
    ("language-underscore", "language", "en_US"),
    ("abstain-string", "abstain", "false"),
    ("extra-key", "suggestions.0.card_indicator", "critical"),
    ("extra-top-key", "system_actions", []),
    ("missing", "suggestions.0", {k: v for k, v in suggestion().items() if k != "confidence"}),
]


# --- the model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALID_EXAMPLES))
def test_valid_examples_validate(name: str) -> None:
    value = SuggestionSet.model_validate(VALID_EXAMPLES[name])
    assert value.model_dump(mode="json") == VALID_EXAMPLES[name]


@pytest.mark.parametrize(("path", "value"), [(p, v) for _, p, v in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_answers_are_rejected(path: str, value: Any) -> None:
    document = _set(answer(), path, value)
    if path == "suggestions" and value == []:
        document["abstain"] = True  # abstaining without a reason
    with pytest.raises(ValidationError):
        SuggestionSet.model_validate(document)


def test_url_rejection_never_quotes_the_text() -> None:
    secret = "https://evil.example/exfiltrate?mrn=12345"
    with pytest.raises(ValidationError) as caught:
        SuggestionSet.model_validate(_set(answer(), "suggestions.0.rationale", secret))
    errors = caught.value.errors(include_input=False, include_url=False)
    assert "URL" in errors[0]["msg"]
    assert "evil" not in json.dumps(errors, default=str)


def test_model_is_frozen() -> None:
    value = SuggestionSet.model_validate(answer())
    with pytest.raises(ValidationError):
        value.language = "de"  # type: ignore[misc]


# --- the JSON schema ----------------------------------------------------------------------------------------

# The keywords the schema may use: the subset xgrammar, llguidance and llama.cpp all implement.
SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "anyOf",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "description",
    }
)
# Regex features some grammar engines lack or read differently.
UNSUPPORTED_REGEX = re.compile(r"\\[dDwWsSbB]|\(\?|\\[1-9]|\\p")


class SchemaError(AssertionError):
    pass


def _ecma(pattern: str) -> str:
    # ECMA-262 "$" without the m flag is the end of input; Python's also matches before a final newline.
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


def check(schema: JsonDict, value: Any, where: str = "$") -> None:
    """A tiny validator for exactly the keywords in SCHEMA_KEYWORDS; any other keyword is an error."""
    unknown = set(schema) - SCHEMA_KEYWORDS
    if unknown:
        raise SchemaError(f"{where}: unsupported keywords {sorted(unknown)}")
    if "anyOf" in schema:
        failures = []
        for option in schema["anyOf"]:
            try:
                check(option, value, where)
            except SchemaError as exc:
                failures.append(str(exc))
            else:
                break
        else:
            raise SchemaError(f"{where}: no anyOf option matches: {failures}")
    kinds: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if "type" in schema and not kinds[schema["type"]](value):
        raise SchemaError(f"{where}: not of type {schema['type']}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where}: not in enum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            raise SchemaError(f"{where}: length out of range")
        if "pattern" in schema and not re.search(_ecma(schema["pattern"]), value):
            raise SchemaError(f"{where}: does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            raise SchemaError(f"{where}: item count out of range")
        for index, item in enumerate(value):
            check(schema.get("items", {}), item, f"{where}[{index}]")
    if isinstance(value, dict):
        missing = set(schema.get("required", ())) - set(value)
        if missing:
            raise SchemaError(f"{where}: missing {sorted(missing)}")
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            raise SchemaError(f"{where}: extra keys")
        for key, item in value.items():
            if key in properties:
                check(properties[key], item, f"{where}.{key}")


def _walk(node: Any) -> list[JsonDict]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def _schemas(schema: JsonDict) -> list[JsonDict]:
    """Every sub-schema, without mistaking the property map for a schema."""
    found = [schema]
    for key in ("items",):
        if key in schema:
            found += _schemas(schema[key])
    for option in schema.get("anyOf", ()):
        found += _schemas(option)
    for sub in schema.get("properties", {}).values():
        found += _schemas(sub)
    return found


def test_schema_is_self_contained_and_simple() -> None:
    schema = suggestion_json_schema()
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text and "definitions" not in text
    for sub in _schemas(schema):
        assert set(sub) <= SCHEMA_KEYWORDS, sorted(set(sub) - SCHEMA_KEYWORDS)
        if "pattern" in sub:
            assert sub["pattern"].startswith("^") and sub["pattern"].endswith("$")
            assert not UNSUPPORTED_REGEX.search(sub["pattern"]), sub["pattern"]
        if sub.get("type") == "object":
            assert sub["additionalProperties"] is False
            assert sub["required"] == list(sub["properties"]), "every property is required, in order"


def test_schema_copies_are_independent_and_text_is_compact() -> None:
    first = suggestion_json_schema()
    first["properties"].clear()
    assert suggestion_json_schema()["properties"]
    text = suggestion_json_schema_text()
    assert text == json.dumps(suggestion_json_schema(), ensure_ascii=False, separators=(",", ":"))
    assert list(suggestion_json_schema()["properties"]) == [
        "language",
        "abstain",
        "abstain_reason",
        "suggestions",
    ]


@pytest.mark.parametrize("name", sorted(VALID_EXAMPLES))
def test_valid_examples_match_the_schema(name: str) -> None:
    check(suggestion_json_schema(), VALID_EXAMPLES[name])


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("suggestions", [suggestion() for _ in range(MAX_SUGGESTIONS + 1)]),
        ("suggestions.0.summary", "C" * (MAX_SUMMARY + 1)),
        ("suggestions.0.citations.patient", ["M3\n"]),
        ("suggestions.0.citations.knowledge", []),
        ("suggestions.0.action.type", "prescribe"),
        ("extra", 1),
    ],
)
def test_schema_rejects_what_it_can_express(path: str, value: Any) -> None:
    with pytest.raises(SchemaError):
        check(suggestion_json_schema(), _set(answer(), path, value))


def test_tiny_validator_agrees_with_a_real_one() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(suggestion_json_schema())
    for document in VALID_EXAMPLES.values():
        assert validator.is_valid(document)
    assert not validator.is_valid(_set(answer(), "suggestions.0.citations.knowledge", []))


# Strategies for valid answers: hypothesis explores text, counts and action kinds the examples do not.
_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=60
).filter(lambda t: t.strip() and "://" not in t and "www." not in t.lower() and "think>" not in t.lower())
_handle = st.from_regex(r"\A[A-Z][0-9]{1,3}\Z")
_kb_id = st.from_regex(r"\Akb\.[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}\Z")
_action = st.sampled_from(
    [
        CREATE_LAB,
        CREATE_DRUG,
        UPDATE_MED,
        STOP_MED,
        SUBSTITUTE,
        VACCINE,
        REFERRAL,
        ADVICE,
        suggestion()["action"],
    ]
)
_suggestion = st.builds(
    lambda summary, rationale, action, patient, knowledge, confidence: suggestion(
        summary=summary,
        rationale=rationale,
        action=action,
        citations={"patient": patient, "knowledge": knowledge},
        confidence=confidence,
    ),
    _text,
    _text,
    _action,
    st.lists(_handle, max_size=5, unique=True),
    st.lists(_kb_id, min_size=1, max_size=3, unique=True),
    st.sampled_from(["low", "medium", "high"]),
)
_answers = st.builds(lambda items: answer(suggestions=items), st.lists(_suggestion, max_size=MAX_SUGGESTIONS))


@PROPERTIES
@given(_answers)
def test_generated_answers_validate_against_model_and_schema(document: JsonDict) -> None:
    SuggestionSet.model_validate(document)
    check(suggestion_json_schema(), document)


# --- parsing: outcome classes -------------------------------------------------------------------------------


def sample(content: str, finish: FinishReason = "stop", reasoning: str | None = "thinking") -> Sample:
    return Sample(content, reasoning, finish)


GOOD = json.dumps(answer())
GOOD_PRETTY = json.dumps(answer(), indent=2)


def test_every_outcome_class_is_reachable() -> None:
    cases = {
        "ok": sample(GOOD),
        "invalid_json": sample('{"language": "en", "abstain": fals'),
        "schema_violation": sample(json.dumps(answer(language="English"))),
        "truncated_in_reasoning": sample("", "length"),
        "empty": sample("  \n"),
        "refused": sample("I'm sorry, but I can't help with that request."),
    }
    assert set(cases) == set(OUTCOMES)
    for outcome, case in cases.items():
        parsed = parse_sample(case)
        assert parsed.outcome == outcome, (outcome, parsed)
        assert (parsed.value is not None) == (outcome == "ok")


@pytest.mark.parametrize(
    ("content", "extraction", "after_think"),
    [
        (GOOD, "raw", False),
        (f"  \n{GOOD_PRETTY}\n ", "raw", False),
        (f"```json\n{GOOD_PRETTY}\n```", "fenced", False),
        (f"Here is the answer:\n```JSON\n{GOOD}\n```\nThanks.", "fenced", False),
        (f"```\n{GOOD}\n```", "fenced", False),
        (f"Okay, let me think.\nThe INR is high.\n</think>\n\n{GOOD}", "raw", True),
        (f"<think>draft {{not json}}</think>```json\n{GOOD}\n```", "fenced", True),
        (f"The answer follows. {GOOD} Hope this helps.", "prose", False),
        (f"Use {{curly}} {{braces}} as in {{a: 1}}; then {GOOD}", "prose", False),
        (f"```python\nx = {{1: 2}}\n```\n{GOOD}", "prose", False),
    ],
    ids=[
        "raw",
        "raw-pretty",
        "fenced",
        "fenced-in-prose",
        "bare-fence",
        "after-think",
        "after-think-fenced",
        "prose",
        "prose-after-non-json-braces",
        "non-json-fence-then-prose",
    ],
)
def test_extraction(content: str, extraction: str, after_think: bool) -> None:
    parsed = parse_sample(sample(content))
    assert (parsed.outcome, parsed.extraction, parsed.after_think) == ("ok", extraction, after_think)
    assert parsed.value == SuggestionSet.model_validate(answer())


def test_brace_matching_skips_braces_inside_strings() -> None:
    tricky = answer(suggestion(rationale='A "{quoted}" brace } and \\" escape { inside the text.'))
    parsed = parse_sample(sample(f"Answer: {json.dumps(tricky)} -- end }}"))
    assert parsed.outcome == "ok"
    assert parsed.value is not None
    assert parsed.value.suggestions[0].rationale.startswith('A "{quoted}"')


def test_broken_outer_object_is_not_replaced_by_a_nested_one() -> None:
    broken = '{"language": "en", "suggestions": [' + json.dumps(suggestion()) + "], oops}"
    assert parse_sample(sample(broken)).outcome == "invalid_json"


@pytest.mark.parametrize(
    ("content", "finish", "reasoning", "outcome"),
    [
        ("", "length", "a long chain of thought", "truncated_in_reasoning"),
        ("   \n\t", "length", None, "truncated_in_reasoning"),
        ("All that reasoning</think>", "length", None, "truncated_in_reasoning"),
        ("<think>still reasoning when the budget ran out", "length", None, "truncated_in_reasoning"),
        ("", "stop", "reasoned, never answered", "empty"),
        ("", "stop", None, "empty"),
        ("Reasoning, then nothing</think>\n", "stop", None, "empty"),
        (
            '{"language": "en", "abstain": false, "abstain_reason": null, "suggestions": [{"summ',
            "length",
            "",
            "invalid_json",
        ),
    ],
    ids=[
        "empty",
        "blank",
        "think-closed-nothing-after",
        "think-unclosed",
        "stop-empty",
        "stop-no-reasoning",
        "stop-after-think",
        "answer-cut-off",
    ],
)
def test_empty_and_truncated(content: str, finish: FinishReason, reasoning: str | None, outcome: str) -> None:
    parsed = parse_sample(sample(content, finish, reasoning))
    assert parsed.outcome == outcome
    if outcome == "invalid_json":
        assert "token limit" in parsed.detail


@pytest.mark.parametrize(
    "content",
    [
        "I'm sorry, but I can't provide medical advice.",
        "I’m unable to help with this request.",
        "As an AI language model, I cannot make clinical recommendations.",
        "I cannot assist with that.",
        "Sorry — I won't be able to do this. I must decline.",
    ],
)
def test_refusals(content: str) -> None:
    assert parse_sample(sample(content)).outcome == "refused"


@pytest.mark.parametrize(
    ("content", "outcome"),
    [
        ("The patient looks stable; nothing to add.", "invalid_json"),
        ('I\'m sorry, but here it is: {"language": "en"', "invalid_json"),  # any brace: not a refusal
        ("{'language': 'en'}", "invalid_json"),  # Python, not JSON
        ('{"language": "en", "abstain": false,}', "invalid_json"),  # trailing comma
        ('{"x": NaN}', "invalid_json"),
        ('{"language": "en", "language": "fr"}', "invalid_json"),  # duplicate key
        ("[1, 2, 3]", "schema_violation"),
        ('"just a string"', "schema_violation"),
        ('{"language": "en"}', "schema_violation"),
    ],
)
def test_not_refusals(content: str, outcome: str) -> None:
    assert parse_sample(sample(content)).outcome == outcome


def test_refusal_heuristic_needs_phrasing_and_no_brace() -> None:
    assert looks_like_refusal("I can't do that.")
    assert not looks_like_refusal("I can't do that. {")
    assert not looks_like_refusal("Consider checking potassium.")


def test_schema_violation_detail_names_fields_not_values() -> None:
    secret = "https://evil.example/" + "x" * 300
    document = _set(answer(), "suggestions.0.rationale", secret)
    document = _set(document, "suggestions.0.summary", "S" * 500)
    parsed = parse_sample(sample(json.dumps(document)))
    assert parsed.outcome == "schema_violation"
    assert "suggestions.0.rationale" in parsed.detail and "suggestions.0.summary" in parsed.detail
    assert "evil" not in parsed.detail and "SSSS" not in parsed.detail


@pytest.mark.parametrize(
    "content",
    [
        "Z" * 5000,
        "I'm sorry, " + "Y" * 5000,
        "{" + '"k": "' + "W" * 5000,
        json.dumps({"K" * 5000: 1}),
        json.dumps(answer(language="V" * 5000)),
    ],
    ids=["prose", "refusal", "unclosed", "long-key", "long-value"],
)
def test_detail_is_short(content: str) -> None:
    parsed = parse_sample(sample(content))
    assert len(parsed.detail) <= DETAIL_MAX
    longest_run = max(len(m.group(0)) for m in re.finditer(r"([A-Z])\1*", parsed.detail + "A"))
    assert longest_run <= 80


def test_parsed_sample_is_frozen() -> None:
    parsed = parse_sample(sample(GOOD))
    with pytest.raises(AttributeError):
        parsed.outcome = "empty"  # type: ignore[misc]
    assert isinstance(parsed, ParsedSample)


@PROPERTIES
@given(
    _answers,
    st.text(st.characters(exclude_characters="{}`<"), max_size=80),
    st.text(st.characters(exclude_characters="{}`<"), max_size=80),
)
def test_any_valid_answer_is_found_in_prose(document: JsonDict, before: str, after: str) -> None:
    parsed = parse_sample(sample(f"{before} {json.dumps(document, ensure_ascii=False)} {after}"))
    assert parsed.outcome == "ok"
    assert parsed.value == SuggestionSet.model_validate(document)


@PROPERTIES
@given(st.text(max_size=400), st.sampled_from(["stop", "length", "abort", "error", "unknown"]))
def test_parse_never_raises(content: str, finish: FinishReason) -> None:
    parsed = parse_sample(sample(content, finish))
    assert parsed.outcome in OUTCOMES
    assert len(parsed.detail) <= DETAIL_MAX

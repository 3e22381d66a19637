"""The queue codec: exact round trips of real contexts and review outcomes, and refusal of anything else."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.budget import TokenBudget
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin import codec
from plugin.codec import (
    CODEC_VERSION,
    CodecError,
    decode_context,
    decode_outcome,
    encode_context,
    encode_outcome,
)
from plugin.context.build import ContextOptions, build_context
from plugin.context.model import (
    BuiltContext,
    ClinicalContext,
    Code,
    Demographics,
    Dosage,
    LabSeries,
    Measurement,
)
from plugin.errors import PluginError
from plugin.governance import GovernancePolicy, GovernedSuggestion, Reason, govern
from plugin.model_port import (
    ModelIdentity,
    ModelRejected,
    ModelTimeout,
    ModelUnavailable,
    Sample,
    ScriptedModel,
    Usage,
)
from plugin.review import ReviewOutcome, ReviewService
from plugin.suggestions import AiSuggestion
from tests.support import governance_corpus as corpus
from tests.support.charts import (
    NOW,
    chart_names,
    chart_path,
    chart_prefetch,
    draft_orders,
    ibuprofen_draft,
    raw_bundle,
)

pytestmark = pytest.mark.unit

SERVICE = "r1-chart-review"
JsonDict = dict[str, Any]


# --- building real values --------------------------------------------------------------------------------


def chart_context(name: str) -> BuiltContext:
    """A fixture chart as an EHR prefetches it, with a draft order and chart notes (the largest form)."""
    prefetch, _, patient_id = chart_prefetch(chart_path(name))
    return build_context(
        prefetch,
        NOW,
        draft_orders=draft_orders(ibuprofen_draft(patient_id)),
        options=ContextOptions(include_free_text=True),
    )


def service(model: ScriptedModel, samples: int = 5) -> ReviewService:
    return ReviewService(
        model,
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=samples,
        completion=TokenBudget(1024, 2048),
    )


def text(document: JsonDict) -> str:
    return json.dumps(document)


def case_suggestions(*names: str) -> list[JsonDict]:
    by_name = {case.name: case for case in corpus.cases()}
    return [s for name in names for s in by_name[name].samples[0]["suggestions"]]


def ibuprofen() -> JsonDict:
    """Well phrased, but no cited passage names its code: an unsupported claim."""
    return corpus.suggestion(
        "Consider ibuprofen for the knee pain",
        "Ibuprofen relieves knee pain; warfarin INR monitoring continues as usual.",
        corpus.medication("197805", "Ibuprofen 400 MG Oral Tablet"),
        [corpus.handle_of("MedicationRequest/warfarin")],
    )


def flu_vaccine() -> JsonDict:
    """A grounded option that two samples of five offer: below agreement."""
    return corpus.suggestion(
        "Consider the annual influenza vaccination",
        "Influenza vaccination is recommended every season for adults without a contraindication.",
        corpus.action(),
        [],
        ["kb.acip-influenza-annual"],
    )


def realistic_answers() -> list[str]:
    """Five samples: the INR check in all, a flu shot in two (below agreement), bad suggestions besides."""
    bad = [ibuprofen(), *case_suggestions("directive", "hallucinated-handle", "made-up-url")]
    answers = []
    for n in range(5):
        suggestions = [corpus.clean_inr(), *bad[n % 4 : n % 4 + 2]]
        if n < 2:
            suggestions.append(flu_vaccine())
        answers.append(text(corpus.answer(*suggestions)))
    return answers


async def realistic_outcome() -> ReviewOutcome:
    model = ScriptedModel([ScriptedModel.answer(*realistic_answers(), reasoning="thinking")])
    return await service(model).review(SERVICE, corpus.built(), corpus.PATIENT)


@pytest.fixture
async def outcome() -> ReviewOutcome:
    return await realistic_outcome()


def json_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [key for key, item in value.items() for key in (key, *json_keys(item))]
    if isinstance(value, list):
        return [key for item in value for key in json_keys(item)]
    return []


def envelope(data: bytes) -> JsonDict:
    document: JsonDict = orjson.loads(data)
    return document


# --- contexts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", chart_names())
def test_fixture_chart_context_round_trips(name: str) -> None:
    context = chart_context(name).context
    data = encode_context(context)
    decoded = decode_context(data)
    assert decoded == context
    assert type(decoded.problems) is tuple and type(decoded.pregnancy.evidence) is tuple
    assert all(type(m.value) is float for s in decoded.labs for m in s.measurements)
    assert encode_context(decoded) == data  # and back to the same bytes


@pytest.mark.parametrize("name", chart_names())
def test_encoded_context_holds_no_reference_and_no_handle_map(name: str) -> None:
    built = chart_context(name)
    data = encode_context(built.context)
    text_form = data.decode()
    references = set(built.handles.references.values())
    assert references  # the chart has facts, each mapped to its resource on our side only
    for reference in references:
        assert reference not in text_form
    for entry in raw_bundle(chart_path(name))["entry"]:
        assert str(entry["resource"]["id"]) not in text_form
    for prefix in ("Patient/", "MedicationRequest/", "Observation/", "Condition/", "urn:uuid:"):
        assert prefix not in text_form
    value = envelope(data)["value"]
    assert set(value) == {f.name for f in dataclasses.fields(ClinicalContext)}
    assert not {"handles", "references"} & set(json_keys(value))


def test_a_built_context_is_refused_so_the_handle_map_cannot_travel() -> None:
    built = corpus.built()
    with pytest.raises(CodecError, match="ClinicalContext, not a BuiltContext"):
        encode_context(built)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="ReviewOutcome"):
        encode_outcome(built)  # type: ignore[arg-type]


def test_minimal_context_round_trips() -> None:
    context = ClinicalContext(Demographics(None, "unknown"))
    assert decode_context(encode_context(context)) == context


# --- outcomes --------------------------------------------------------------------------------------------


def assert_round_trip(outcome: ReviewOutcome) -> ReviewOutcome:
    data = encode_outcome(outcome)
    decoded = decode_outcome(data)
    assert decoded == outcome
    assert encode_outcome(decoded) == data
    return decoded


async def test_realistic_outcome_round_trips_with_its_types(outcome: ReviewOutcome) -> None:
    assert outcome.decision is not None
    assert len(outcome.samples) == 5 and len(outcome.decision.accepted) >= 1
    assert len(outcome.decision.rejected) >= 5
    reasons = {r.reason for r in outcome.decision.rejected}
    # The textual checks come first; which later check the other two fail depends on the passages.
    assert reasons >= {Reason.DIRECTIVE_PHRASING, Reason.UNKNOWN_PATIENT_HANDLE, Reason.URL_IN_OUTPUT}
    assert len(reasons) >= 4
    decoded = assert_round_trip(outcome)
    assert decoded.decision is not None
    [accepted] = decoded.decision.accepted
    assert type(accepted) is GovernedSuggestion and type(accepted.suggestion) is AiSuggestion
    assert accepted.agreement == (5, 5) and type(accepted.agreement) is tuple
    assert all(type(m) is tuple for m in accepted.members)
    assert accepted.resource is not None and accepted.resource["resourceType"] == "ServiceRequest"
    assert all(type(r.reason) is Reason for r in decoded.decision.rejected)
    assert all(r.reason is None or type(r.reason) is Reason for r in decoded.decision.log)
    assert decoded.retrieval.entries == outcome.retrieval.entries
    assert decoded.retrieval.ids == outcome.retrieval.ids
    assert decoded.timings == outcome.timings
    assert decoded.model == ModelIdentity("scripted", "scripted")
    assert decoded.usage == outcome.usage


@pytest.mark.parametrize(
    "error", [ModelTimeout("no answer"), ModelUnavailable("503"), ModelRejected(400, "bad request")]
)
async def test_failed_outcome_round_trips(error: Exception) -> None:
    outcome = await service(ScriptedModel([error])).review(SERVICE, corpus.built(), corpus.PATIENT)  # type: ignore[list-item]
    assert outcome.failed and outcome.decision is None
    decoded = assert_round_trip(outcome)
    assert decoded.error == type(error).__name__
    assert decoded.transient is outcome.transient
    assert decoded.model is None and decoded.usage is None and decoded.request_id is None


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["not json", "{", "I'm sorry, but I can't help with that."], "no-valid-output"),
        ([text(corpus.abstention())] * 3, "model-abstained"),
        ([text(corpus.answer(*case_suggestions("directive")))] * 3, "nothing-passed"),
    ],
)
async def test_abstentions_round_trip(answers: list[str], reason: str) -> None:
    model = ScriptedModel([ScriptedModel.answer(*answers)])
    outcome = await service(model, len(answers)).review(SERVICE, corpus.built(), corpus.PATIENT)
    assert outcome.decision is not None and outcome.decision.abstain_reason == reason
    decoded = assert_round_trip(outcome)
    assert decoded.decision is not None and decoded.decision.abstained


async def test_empty_retrieval_abstention_round_trips() -> None:
    built = BuiltContext(ClinicalContext(Demographics(None, "unknown")), corpus.built().handles)
    model = ScriptedModel([ScriptedModel.answer(text(corpus.answer(corpus.clean_inr())))])
    outcome = await service(model, 1).review(SERVICE, built, None)
    assert outcome.retrieval.entries == ()
    assert outcome.decision is not None and outcome.decision.abstain_reason == "empty-retrieval"
    assert_round_trip(outcome)


def test_truncated_and_empty_samples_round_trip() -> None:
    samples = [
        Sample("", "a long thought", "length"),
        Sample("   ", None, "stop"),
        Sample(text(corpus.answer(corpus.clean_inr())), None, "abort"),
    ]
    identity = ModelIdentity("sglang", "deepseek-r1", {"version": "0.4.6", "tp_size": "8"})
    outcome = service(ScriptedModel(), 3).review_recorded(SERVICE, corpus.built(), samples, None, identity)
    decoded = assert_round_trip(outcome)
    assert decoded.recorded and decoded.model == identity
    assert [s.finish_reason for s in decoded.samples] == ["length", "stop", "abort"]


@pytest.mark.parametrize("case", corpus.cases(), ids=lambda case: case.name)
def test_every_adversarial_case_round_trips(case: corpus.Case) -> None:
    samples = [Sample(text(answer), None, "stop") for answer in case.samples]
    outcome = service(ScriptedModel(), len(samples)).review_recorded(
        SERVICE, corpus.built(), samples, corpus.PATIENT
    )
    assert outcome.decision is not None and outcome.decision.rejected
    assert_round_trip(outcome)
    # The review retrieves this chart's own passages, which leave some cases failing earlier (knowledge not
    # retrieved); governed against the corpus's passages, each fails the check it was written for.
    decision = govern(
        [corpus.parsed(answer) for answer in case.samples],
        corpus.context(),
        corpus.RETRIEVED,
        corpus.knowledge(),
        GovernancePolicy(),
        corpus.PATIENT,
    )
    assert case.reason in {r.reason for r in decision.rejected}
    assert_round_trip(dataclasses.replace(outcome, decision=decision))


async def test_outcome_of_every_fixture_chart_round_trips() -> None:
    # A review per chart: other passages, other handles, the answers' grounding failing in other ways.
    for name in chart_names():
        built = chart_context(name)
        model = ScriptedModel([ScriptedModel.answer(*realistic_answers())])
        outcome = await service(model).review(SERVICE, built, None)
        assert_round_trip(outcome)


def test_encoding_is_deterministic(outcome: ReviewOutcome) -> None:
    again = decode_outcome(encode_outcome(outcome))
    assert encode_outcome(outcome) == encode_outcome(again)
    assert envelope(encode_outcome(outcome))["codec"] == CODEC_VERSION
    assert envelope(encode_outcome(outcome))["kind"] == "outcome"


def test_a_field_missing_from_an_older_entry_takes_its_default(outcome: ReviewOutcome) -> None:
    document = envelope(encode_outcome(outcome))
    del document["value"]["recorded"], document["value"]["error"]
    assert decode_outcome(orjson.dumps(document)) == outcome


# --- what encoding refuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_float_has_no_json_form(bad: float) -> None:
    series = LabSeries("potassium", "Potassium", (Measurement("O1", "potassium", bad, "mmol/L", 1),), None)
    context = ClinicalContext(Demographics(40, "female"), labs=(series,))
    with pytest.raises(CodecError, match="no JSON form") as raised:
        encode_context(context)
    assert raised.value.path == "labs[0].measurements[0].value"


async def test_non_finite_float_inside_a_json_payload_is_refused(outcome: ReviewOutcome) -> None:
    assert outcome.decision is not None
    accepted = outcome.decision.accepted[0]
    broken = dataclasses.replace(accepted, resource={"resourceType": "ServiceRequest", "x": [1.0, math.nan]})
    decision = dataclasses.replace(outcome.decision, accepted=(broken,))
    with pytest.raises(CodecError) as raised:
        encode_outcome(dataclasses.replace(outcome, decision=decision))
    assert raised.value.path == "decision.accepted[0].resource['x'][1]"


def test_integer_beyond_64_bits_is_refused(outcome: ReviewOutcome) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode_outcome(dataclasses.replace(outcome, usage=Usage(prompt_tokens=2**70)))


# --- what decoding refuses -------------------------------------------------------------------------------


def test_codec_error_is_a_plugin_error() -> None:
    assert issubclass(CodecError, PluginError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b"null",
        b"[]",
        b'"context"',
        b"{}",
        b'{"codec": 1, "kind": "context"}',
        b'{"codec": 1, "kind": "context", "value": {}, "extra": 0}',
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_context(data)
    with pytest.raises(CodecError):
        decode_outcome(data)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(CodecError):
        decode_outcome(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 2, "1", 1.0, True, None])
def test_other_codec_versions_are_refused(version: object, outcome: ReviewOutcome) -> None:
    document = envelope(encode_outcome(outcome))
    document["codec"] = version
    with pytest.raises(CodecError, match="codec version"):
        decode_outcome(orjson.dumps(document))


def test_wrong_kind_is_refused(outcome: ReviewOutcome) -> None:
    context = encode_context(corpus.context())
    with pytest.raises(CodecError, match="holds kind 'context', expected 'outcome'"):
        decode_outcome(context)
    with pytest.raises(CodecError, match="holds kind 'outcome', expected 'context'"):
        decode_context(encode_outcome(outcome))


def test_every_truncation_is_refused() -> None:
    data = encode_context(corpus.context())
    for end in range(len(data)):
        with pytest.raises(CodecError):
            decode_context(data[:end])


def set_at(document: Any, path: list[str | int], value: object) -> None:
    for key in path[:-1]:
        document = document[key]
    if value is DELETE:
        del document[path[-1]]
    else:
        document[path[-1]] = value


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["failed"], "false", "failed"),
        (["failed"], 0, "failed"),
        (["service_id"], DELETE, "service_id"),
        (["unexpected"], 1, ""),
        (["samples"], {}, "samples"),
        (["samples", 0, "index"], True, "samples[0].index"),
        (["samples", 0, "index"], 1.5, "samples[0].index"),
        (["steps", 0, "seconds"], "0.1", "steps[0].seconds"),
        (["retrieval", "scores", 0], None, "retrieval.scores[0]"),
        (["retrieval", "entries", 0, "kind"], "gossip", "retrieval.entries[0].kind"),
        (["retrieval", "entries", 0, "source"], [], "retrieval.entries[0].source"),
        (["prompt", "passage_ids", 1], 7, "prompt.passage_ids[1]"),
        (["model", "details"], {"version": 4}, "model.details['version']"),
        (["usage", "reasoning_tokens"], "many", "usage.reasoning_tokens"),
        (["decision", "abstain_reason"], "bored", "decision.abstain_reason"),
        (["decision", "accepted", 0, "agreement"], [5], "decision.accepted[0].agreement"),
        (["decision", "accepted", 0, "agreement", 0], "5", "decision.accepted[0].agreement[0]"),
        (["decision", "accepted", 0, "members", 0], [0, 0, 0], "decision.accepted[0].members[0]"),
        (["decision", "accepted", 0, "severity"], "critical", "decision.accepted[0].severity"),
        (["decision", "accepted", 0, "resource"], [], "decision.accepted[0].resource"),
        (
            ["decision", "accepted", 0, "suggestion", "confidence"],
            "certain",
            "decision.accepted[0].suggestion.confidence",
        ),
        (
            ["decision", "accepted", 0, "suggestion", "action", "type"],
            "prescribe",
            "decision.accepted[0].suggestion.action.type",
        ),
        (["decision", "rejected", 0, "reason"], "because", "decision.rejected[0].reason"),
        (["decision", "rejected", 0, "reason"], 1, "decision.rejected[0].reason"),
        (["decision", "log", 0, "step"], "vibes", "decision.log[0].step"),
        (["decision", "log", 0, "passed"], 1, "decision.log[0].passed"),
        (["decision", "log", 0, "extra"], 1, "decision.log[0]"),
    ],
)
def test_wrong_types_inside_an_outcome_are_refused_with_their_path(
    path: list[str | int], value: object, where: str, outcome: ReviewOutcome
) -> None:
    document = envelope(encode_outcome(outcome))
    set_at(document["value"], path, value)
    with pytest.raises(CodecError) as raised:
        decode_outcome(orjson.dumps(document))
    assert raised.value.path == where


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["demographics", "sex"], "robot", "demographics.sex"),
        (["demographics", "age_years"], 41.0, "demographics.age_years"),
        (["demographics"], None, "demographics"),
        (["problems"], None, "problems"),
        (["problems", 0, "code", "display"], None, "problems[0].code.display"),
        (["medications", 0, "source"], "Prescription", "medications[0].source"),
        (["medications", 0, "ingredients", 0], ["warfarin"], "medications[0].ingredients[0]"),
        (["labs", 0, "measurements", 0, "value"], "25", "labs[0].measurements[0].value"),
        (["labs", 0, "trend"], "sideways", "labs[0].trend"),
        (["pregnancy", "status"], "maybe", "pregnancy.status"),
        (["notes", 0, "text"], {"text": "x"}, "notes[0].text"),
    ],
)
def test_wrong_types_inside_a_context_are_refused_with_their_path(
    path: list[str | int], value: object, where: str
) -> None:
    document = envelope(encode_context(corpus.context()))
    set_at(document["value"], path, value)
    with pytest.raises(CodecError) as raised:
        decode_context(orjson.dumps(document))
    assert raised.value.path == where


# --- properties ------------------------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _real_suggestions() -> list[AiSuggestion]:
    answers = [corpus.answer(corpus.clean_inr(), ibuprofen(), flu_vaccine())]
    answers += [answer for case in corpus.cases() for answer in case.samples]
    parsed = [corpus.parsed(answer) for answer in answers]
    return [s for p in parsed if p.value is not None for s in p.value.suggestions]


def values_of(tp: object) -> st.SearchStrategy[Any]:
    """Any well-typed value of `tp`, read from the type hints the same way the codec's decoder is."""
    if tp is AiSuggestion:  # a pydantic model with cross-field rules: real parsed suggestions
        return st.deferred(lambda: st.sampled_from(_real_suggestions()))
    if tp is Any:
        return _json
    simple: dict[object, st.SearchStrategy[Any]] = {
        str: st.text(max_size=12),
        int: st.integers(-(2**63), 2**63 - 1),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
        type(None): st.none(),
    }
    if tp in simple:
        return simple[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values_of(arg) for arg in args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values_of(args[0]), max_size=3).map(tuple)
        return st.tuples(*(values_of(arg) for arg in args))
    if origin in (dict, Mapping):
        return st.dictionaries(st.text(max_size=6), values_of(args[1]), max_size=3)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: st.deferred(_deferred(hints[f.name])) for f in dataclasses.fields(tp) if f.init}
        return st.builds(tp, **fields)
    raise AssertionError(f"no strategy for {tp!r}")


def _deferred(tp: object) -> Callable[[], st.SearchStrategy[Any]]:
    return lambda: values_of(tp)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(values_of(ClinicalContext))
def test_any_context_round_trips(context: ClinicalContext) -> None:
    assert decode_context(encode_context(context)) == context


@settings(derandomize=True, max_examples=80, deadline=None)
@given(values_of(ReviewOutcome))
def test_any_outcome_round_trips(outcome: ReviewOutcome) -> None:
    assert decode_outcome(encode_outcome(outcome)) == outcome


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _paths(item, (*prefix, n))
    return found


@functools.cache
def _outcome_bytes() -> bytes:
    samples = [Sample(answer, None, "stop") for answer in realistic_answers()]
    return encode_outcome(service(ScriptedModel()).review_recorded(SERVICE, corpus.built(), samples))


def _outcome_document() -> JsonDict:
    return envelope(_outcome_bytes())  # a fresh copy to damage


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.data(), _json)
def test_any_mutation_decodes_or_raises_codec_error(data: st.DataObject, replacement: Any) -> None:
    document = _outcome_document()
    paths = _paths(document["value"])
    path = data.draw(st.sampled_from(paths))
    set_at(document["value"], list(path), replacement)
    try:
        decoded = decode_outcome(orjson.dumps(document))
    except CodecError:
        return
    assert isinstance(decoded, ReviewOutcome)  # a replacement of the same shape: still a valid outcome


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 10_000))
def test_any_byte_damage_raises_codec_error_or_decodes(noise: bytes, at: int) -> None:
    data = encode_context(corpus.context())
    at %= len(data)
    damaged = data[:at] + noise + data[at + len(noise) :]
    with contextlib.suppress(CodecError):
        decode_context(damaged)


# --- the walker beyond today's two values -----------------------------------------------------------------
# Types a future field may use; exercised through the same private entry points the public four wrap.


class Colour(enum.Enum):
    RED = 1
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    tags: frozenset[str]
    levels: frozenset[Level]
    items: list[int]
    number: int | float
    either: int | str | None
    nested: dict[str, tuple[int, ...]]
    colours: Mapping[str, Colour]
    flag: Literal[1, True, "x"]
    empty: tuple[()]
    pair: tuple[str, float]
    anything: Any
    codes: list[Code] | None
    mixed: Level | Literal["a", "b"] | tuple[int, ...] | None = None
    sized: int = dataclasses.field(init=False, default=0)
    note: str = dataclasses.field(default="n", kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sized", len(self.items))
        if self.note == "refuse":
            raise ValueError("refused by the class itself")


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    value: float
    children: tuple[Node, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Stamped:
    when: datetime.date


@dataclasses.dataclass(frozen=True, slots=True)
class Either:
    one: Code | Dosage


@dataclasses.dataclass(frozen=True, slots=True)
class IntKeys:
    by_number: dict[int, str]


def box(**changes: Any) -> Box:
    base = Box(
        tags=frozenset({"b", "a"}),
        levels=frozenset({Level.HIGH}),
        items=[3, 1],
        number=2.5,
        either="s",
        nested={"k": (1, 2)},
        colours={"r": Colour.RED, "b": Colour.BLUE},
        flag=True,
        empty=(),
        pair=("p", 1.0),
        anything={"a": [1, 2.0, None, "x", {"b": False}]},
        codes=[Code("rxnorm", "1", "one")],
    )
    return dataclasses.replace(base, **changes)


def round_trip(tp: type[Any], value: Any) -> Any:
    decoded = codec._decode("test", tp, codec._encode("test", tp, value))
    assert decoded == value and type(decoded) is type(value)
    return decoded


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"number": 7, "either": 3, "flag": 1, "codes": None},
        {"either": None, "flag": "x", "anything": None, "tags": frozenset()},
        {"note": "kw", "mixed": Level.LOW},
        {"mixed": "b", "pair": ("p", 1)},  # an int in a float place comes back a float, equal to it
        {"mixed": (1, 2), "colours": types.MappingProxyType({"b": Colour.BLUE})},
    ],
)
def test_walker_round_trips_the_general_types(changes: dict[str, Any]) -> None:
    decoded = round_trip(Box, box(**changes))
    assert type(decoded.tags) is frozenset and type(decoded.empty) is tuple
    assert type(decoded.number) is type(box(**changes).number)  # int stays int beside float
    assert decoded.flag is box(**changes).flag  # True is not 1
    assert all(type(level) is Level for level in decoded.levels)
    assert all(type(c) is Colour for c in decoded.colours.values()) and decoded.sized == 2


def test_sets_are_written_sorted() -> None:
    value = envelope(codec._encode("test", Box, box(tags=frozenset({"z", "a", "m"}))))["value"]
    assert value["tags"] == ["a", "m", "z"]


def test_walker_follows_a_type_that_contains_itself() -> None:
    tree = Node(1.0, (Node(2.0), Node(3.0, (Node(4.0),))))
    round_trip(Node, tree)
    with pytest.raises(CodecError) as raised:
        codec._encode("test", Node, Node(1.0, (Node(2.0, (Node(math.nan),)),)))
    assert raised.value.path == "children[0].children[0].value"


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["tags"], "a", "tags"),
        (["levels", 0], 3, "levels[0]"),
        (["levels", 0], "2", "levels[0]"),
        (["items", 1], 1.0, "items[1]"),
        (["number"], "2.5", "number"),
        (["either"], [], "either"),
        (["nested", "k", 0], "1", "nested['k'][0]"),
        (["colours", "b"], "red", "colours['b']"),
        (["flag"], 2, "flag"),
        (["flag"], "1", "flag"),
        (["empty"], [1], "empty"),
        (["pair"], ["p", 1.0, 2.0], "pair"),
        (["pair", 1], "1.0", "pair[1]"),
        (["codes", 0, "system"], 1, "codes[0].system"),
        (["codes", 0, "extra"], 1, "codes[0]"),
        (["note"], "refuse", ""),
        (["mixed"], 3, "mixed"),
        (["mixed"], "c", "mixed"),
        (["mixed"], {}, "mixed"),
        (["nested"], [], "nested"),
    ],
)
def test_walker_refuses_wrong_types_with_their_path(path: list[str | int], value: object, where: str) -> None:
    document = envelope(codec._encode("test", Box, box()))
    set_at(document["value"], path, value)
    with pytest.raises(CodecError) as raised:
        codec._decode("test", Box, orjson.dumps(document))
    assert raised.value.path == where


def test_init_false_fields_are_written_and_recomputed() -> None:
    document = envelope(codec._encode("test", Box, box()))
    assert document["value"]["sized"] == 2
    document["value"]["sized"] = 99  # whatever was written, __post_init__ decides
    assert codec._decode("test", Box, orjson.dumps(document)).sized == 2


@pytest.mark.parametrize(
    ("tp", "value", "message"),
    [
        (Stamped, Stamped(datetime.date(2026, 1, 1)), "no JSON form for type"),
        (Either, Either(Code("a", "b", "c")), "ambiguous union"),
        (IntKeys, IntKeys({1: "a"}), "mapping keys must be str"),
    ],
)
def test_types_without_a_json_form_are_refused_by_name(tp: type[Any], value: Any, message: str) -> None:
    data = orjson.dumps({"codec": CODEC_VERSION, "kind": "test", "value": {}})
    with pytest.raises(CodecError, match=message) as raised:
        codec._decode("test", tp, data)
    assert tp.__name__ in raised.value.path
    with contextlib.suppress(CodecError):  # encoding may or may not manage; decoding never guesses
        codec._encode("test", tp, value)

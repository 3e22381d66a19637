"""The published model card: intended use, limits, risks, validation status and the 31 HTI-1 source attributes.

ONC's HTI-1 final rule (89 FR 1192, 9 January 2024) lists, in 45 CFR 170.315(b)(11)(iv)(B), 31 source
attributes that a predictive decision support intervention should make available, in nine groups. R1 CDS's
AI review is one (its model derives relationships from training data and recommends); its safety rules are
not (fixed logic over the knowledge base), and the card says which is which.

The words live in `model_card.json` beside this module, so that a reviewer reads them in one place; this
module only checks that file and fills its `$placeholders` from what the running deployment knows: the
package version, the knowledge-base version, and `ModelCardInputs` (model backend and id, prompt template
versions, review settings), which the composition root supplies because the model and prompts live in edges
that the core may not import.

Honesty rules the data file follows and the tests enforce: every attribute has a value; a value whose status
is not "provided" says why; what a model developer has not published is marked "not-disclosed-by-developer"
and says what *is* published; what R1 CDS has not measured is "not-yet-measured". Benchmark figures appear
only as the developer's own claims, with their source. The demo model says on the card that it is not
clinically meaningful.

Pure: reads package data only (the JSON file and the packaged knowledge base), never the network or env.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from string import Template
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

from plugin.knowledge import KnowledgeBase, load_knowledge_base

__all__ = [
    "ABOUT_JSON_PATH",
    "DISTRIBUTION",
    "GROUP_IDS",
    "STATUSES",
    "AttributeGroup",
    "KnownRisk",
    "ModelCard",
    "ModelCardError",
    "ModelCardInputs",
    "ModelCardLink",
    "ModelFamily",
    "ModelSummary",
    "Reference",
    "SourceAttribute",
    "Status",
    "build_model_card",
    "distribution_version",
    "model_card_link",
    "model_family",
]

Status = Literal["provided", "not-disclosed-by-developer", "not-applicable", "not-yet-measured"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
ModelFamily = Literal["deepseek-r1", "deepseek-r1-distill", "demo", "scripted", "unreported", "other"]
_FAMILIES: Final[tuple[ModelFamily, ...]] = get_args(ModelFamily)

DISTRIBUTION: Final = "r1-cds"
UNKNOWN_VERSION: Final = "0+unknown"
UNREPORTED: Final = "unreported"
_DATA: Final = "model_card.json"
ABOUT_JSON_PATH: Final = "/about.json"  # where the deployment serves this card (cds_hooks.about)
_MODEL_REFERENCE: Final = "@model"  # in an attribute's references: the serving model's own references

# The nine groups of (B), in regulatory order, with how many attributes each has (4+4+2+4+2+4+5+4+2 = 31).
GROUP_IDS: Final[tuple[str, ...]] = (
    "details-and-output",
    "purpose",
    "out-of-scope",
    "development",
    "fairness-process",
    "external-validation",
    "performance",
    "maintenance",
    "updates",
)
_GROUP_SIZES: Final[Mapping[str, int]] = MappingProxyType(
    dict(zip(GROUP_IDS, (4, 4, 2, 4, 2, 4, 5, 4, 2), strict=True))
)
_MODEL_TEXTS: Final = (
    "developer",
    "funding",
    "summary",
    "training_data",
    "representativeness",
    "relevance",
    "benchmarks",
    "fairness",
    "limitations",
)
_DEMO_NAMES: Final = frozenset({"", "default"})


class ModelCardError(ValueError):
    """model_card.json breaks its schema, or a placeholder has no value; names where."""


@dataclass(frozen=True, slots=True)
class Reference:
    label: str
    url: str  # https only: links to sources, never assets


@dataclass(frozen=True, slots=True)
class SourceAttribute:
    """One of the 31 source attributes: its place in (B), a paraphrase of its name, and our honest answer."""

    id: str
    group: str
    citation: str  # the paragraph of 45 CFR 170.315(b)(11)(iv), e.g. "(B)(4)(i)"
    name: str
    value: str
    status: Status
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True, slots=True)
class AttributeGroup:
    id: str
    title: str
    citation: str
    attributes: tuple[SourceAttribute, ...]


@dataclass(frozen=True, slots=True)
class KnownRisk:
    risk: str
    mitigation: str


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """Which model reviews charts in this deployment and what its developer publishes about it."""

    backend: str
    model: str
    family: ModelFamily
    label: str
    clinically_meaningful: bool
    summary: str
    references: tuple[Reference, ...]


@dataclass(frozen=True, slots=True)
class ModelCardInputs:
    """What only the composition root knows: the served model, the prompts, the review settings.

    `backend` and `model` are `ReviewSettings.model_backend` / `model_name` (for llamacpp, "default" or an
    empty name is the packaged demo model). `prompt_versions` maps a service id to its template version as
    the review fingerprint records it. Optional values missing here are described generically on the card.
    """

    backend: str = UNREPORTED
    model: str = UNREPORTED
    prompt_versions: Mapping[str, str] = field(default_factory=dict)
    ai_enabled: bool = True
    samples: int | None = None  # R1CDS_REVIEW_SAMPLES
    min_agreement: float | None = None  # R1CDS_REVIEW_MIN_AGREEMENT
    card_language: str | None = None  # R1CDS_CARD_LANGUAGE
    free_text: bool = False  # R1CDS_CONTEXT_INCLUDE_FREE_TEXT
    contact: str | None = None  # the deploying organisation's contact for clinicians, if it gives one


@dataclass(frozen=True, slots=True)
class ModelCard:
    product: str
    version: str
    knowledge_base: str  # name
    knowledge_base_version: str
    ai_enabled: bool
    model: ModelSummary
    prompt_versions: Mapping[str, str]
    intended_use: tuple[str, ...]
    out_of_scope: tuple[str, ...]
    known_risks: tuple[KnownRisk, ...]
    validation_summary: str
    validation: tuple[str, ...]
    regulation: Reference
    statuses: Mapping[Status, str]  # what each status means
    groups: tuple[AttributeGroup, ...]

    @property
    def attributes(self) -> tuple[SourceAttribute, ...]:
        return tuple(a for g in self.groups for a in g.attributes)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready document (plain dicts, lists and strings), the body of /about.json."""

        def refs(items: tuple[Reference, ...]) -> list[dict[str, str]]:
            return [{"label": r.label, "url": r.url} for r in items]

        return {
            "product": self.product,
            "version": self.version,
            "knowledge_base": {"name": self.knowledge_base, "version": self.knowledge_base_version},
            "ai_enabled": self.ai_enabled,
            "model": {
                "backend": self.model.backend,
                "model": self.model.model,
                "family": self.model.family,
                "label": self.model.label,
                "clinically_meaningful": self.model.clinically_meaningful,
                "summary": self.model.summary,
                "references": refs(self.model.references),
            },
            "prompt_versions": dict(self.prompt_versions),
            "intended_use": list(self.intended_use),
            "out_of_scope": list(self.out_of_scope),
            "known_risks": [{"risk": r.risk, "mitigation": r.mitigation} for r in self.known_risks],
            "validation": {"summary": self.validation_summary, "items": list(self.validation)},
            "regulation": {"label": self.regulation.label, "url": self.regulation.url},
            "statuses": dict(self.statuses),
            "source_attributes": [
                {
                    "id": g.id,
                    "title": g.title,
                    "citation": g.citation,
                    "attributes": [
                        {
                            "id": a.id,
                            "citation": a.citation,
                            "name": a.name,
                            "status": a.status,
                            "value": a.value,
                            "references": refs(a.references),
                        }
                        for a in g.attributes
                    ],
                }
                for g in self.groups
            ],
        }


@dataclass(frozen=True, slots=True)
class ModelCardLink:
    """What a record of one model's use says about the model card: the card R1 CDS publishes (at
    ABOUT_JSON_PATH of the deployment) and the model developer's own published pages, for that model."""

    product: str
    version: str  # of the R1 CDS that builds the link, whose card this is
    family: ModelFamily
    label: str
    clinically_meaningful: bool
    references: tuple[Reference, ...]  # the developer's model card, paper, repository


@functools.lru_cache(maxsize=64)  # an export asks once per card, for a handful of models
def model_card_link(backend: str, model: str) -> ModelCardLink:
    """The model card facts for a model as an audit record names it (backend and served id)."""
    data = _data()
    family = model_family(backend, model)
    facts: Mapping[str, Any] = data["models"][family]
    refs: Mapping[str, Reference] = data["references"]
    return ModelCardLink(
        product=data["product"],
        version=distribution_version(),
        family=family,
        label=_fill(facts["label"], {"model": model, "backend": backend}, f"models.{family}.label"),
        clinically_meaningful=facts["clinically_meaningful"],
        references=tuple(refs[key] for key in facts["references"]),
    )


def distribution_version() -> str:
    """The installed version of the r1-cds distribution; a marked fallback when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def model_family(backend: str, model: str) -> ModelFamily:
    """Which model the card describes, from the backend and the served model id (or GGUF path)."""
    if UNREPORTED in (backend, model):
        return "unreported"
    name = model.strip().lower().replace("_", "-")
    if backend == "llamacpp" and (name in _DEMO_NAMES or "270m" in name):
        return "demo"
    if backend == "scripted":
        return "scripted"
    if "r1-distill" in name:
        return "deepseek-r1-distill"
    if "deepseek-r1" in name:
        return "deepseek-r1"
    return "other"


# ----------------------------------------------------------------------------------------------- data file


def _fail(where: str, problem: str) -> ModelCardError:
    return ModelCardError(f"{_DATA}: {where}: {problem}")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a non-empty string")
    return value


def _texts(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "must be a non-empty list")
    return tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(value))


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "must be an object")
    return cast(Mapping[str, Any], value)


def _reference(value: object, where: str) -> Reference:
    raw = _object(value, where)
    url = _text(raw.get("url"), f"{where}.url")
    if not url.startswith("https://"):
        raise _fail(where, f"url {url!r} must be https")
    return Reference(_text(raw.get("label"), f"{where}.label"), url)


@functools.cache
def _data() -> Mapping[str, Any]:
    """model_card.json, parsed and checked once per process."""
    raw = json.loads(resources.files("plugin").joinpath(_DATA).read_text(encoding="utf-8"))
    data = _object(raw, "top level")
    refs = {k: _reference(v, f"references.{k}") for k, v in _object(data["references"], "references").items()}
    statuses = _object(data["statuses"], "statuses")
    if tuple(statuses) != STATUSES:
        raise _fail("statuses", f"must describe exactly {list(STATUSES)} in that order")
    models = _object(data["models"], "models")
    if tuple(models) != _FAMILIES:
        raise _fail("models", f"must describe exactly {list(_FAMILIES)} in that order")
    for family, facts in models.items():
        facts = _object(facts, f"models.{family}")
        for key in ("label", *_MODEL_TEXTS):
            _text(facts.get(key), f"models.{family}.{key}")
        if not isinstance(facts.get("clinically_meaningful"), bool):
            raise _fail(f"models.{family}.clinically_meaningful", "must be true or false")
        _ref_keys(facts.get("references"), refs, f"models.{family}.references", allow_model=False)
    groups = data["groups"]
    if not isinstance(groups, list) or tuple(_object(g, "groups[]").get("id") for g in groups) != GROUP_IDS:
        raise _fail("groups", f"must be exactly {list(GROUP_IDS)} in that order")
    seen: set[str] = set()
    for group in groups:
        where = f"groups.{group['id']}"
        _text(group.get("title"), f"{where}.title")
        _text(group.get("citation"), f"{where}.citation")
        attributes = group.get("attributes")
        if not isinstance(attributes, list) or len(attributes) != _GROUP_SIZES[group["id"]]:
            raise _fail(where, f"must have exactly {_GROUP_SIZES[group['id']]} attributes")
        for attribute in attributes:
            attribute = _object(attribute, f"{where}.attributes[]")
            attr_id = _text(attribute.get("id"), f"{where}.attributes[].id")
            if attr_id in seen:
                raise _fail(where, f"attribute id {attr_id!r} is used twice")
            seen.add(attr_id)
            for key in ("citation", "name", "value"):
                _text(attribute.get(key), f"{where}.{attr_id}.{key}")
            if attribute.get("status") not in STATUSES:
                raise _fail(f"{where}.{attr_id}.status", f"must be one of {list(STATUSES)}")
            _ref_keys(attribute.get("references"), refs, f"{where}.{attr_id}.references", allow_model=True)
    _texts(data["intended_use"], "intended_use")
    _texts(data["out_of_scope"], "out_of_scope")
    for i, risk in enumerate(data["known_risks"]):
        risk = _object(risk, f"known_risks[{i}]")
        _text(risk.get("risk"), f"known_risks[{i}].risk")
        _text(risk.get("mitigation"), f"known_risks[{i}].mitigation")
    validation = _object(data["validation"], "validation")
    _text(validation.get("summary"), "validation.summary")
    _texts(validation.get("items"), "validation.items")
    _reference(data["regulation"], "regulation")
    return MappingProxyType({**data, "references": MappingProxyType(refs)})


def _ref_keys(value: object, refs: Mapping[str, Reference], where: str, *, allow_model: bool) -> None:
    if not isinstance(value, list):
        raise _fail(where, "must be a list of reference keys")
    for key in value:
        if key == _MODEL_REFERENCE and allow_model:
            continue
        if key not in refs:
            raise _fail(where, f"unknown reference {key!r}")


# ------------------------------------------------------------------------------------------------- filling


def _fill(text: str, values: Mapping[str, str], where: str) -> str:
    # One pass: text that arrives through a value (a model path, a contact) is never read as a template.
    try:
        return Template(text).substitute(values)
    except KeyError as exc:
        raise _fail(where, f"placeholder {exc} has no value") from exc
    except ValueError as exc:
        raise _fail(where, f"malformed placeholder: {exc}") from exc


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _consistency(inputs: ModelCardInputs) -> str:
    if inputs.samples is not None and inputs.min_agreement is not None:
        how = (
            f"Each review draws {inputs.samples} samples from the model; suggestions are grouped by their "
            f"action, and below {_percent(inputs.min_agreement)} agreement the review abstains"
        )
    else:
        how = (
            "Each review draws several samples from the model (R1CDS_REVIEW_SAMPLES, 5 by default); suggestions "
            "are grouped by their action, and below the agreement threshold (R1CDS_REVIEW_MIN_AGREEMENT, 0.6 by "
            "default) the review abstains"
        )
    return how + " and shows no AI card. Every AI card shows its agreement (k of n)."


def _free_text(inputs: ModelCardInputs) -> str:
    screen = (
        "scrubbed of the patient's identifiers and dates, delimited as untrusted data, and governance rejects "
        "output that repeats an instruction phrase or copies a run of note text"
    )
    if inputs.free_text:
        return (
            "This deployment shows chart notes to the model (R1CDS_CONTEXT_INCLUDE_FREE_TEXT is on): they are "
            f"{screen}. Off, the default, is the safer choice."
        )
    return (
        "Chart notes are not shown to the model in this deployment (R1CDS_CONTEXT_INCLUDE_FREE_TEXT is off, the "
        f"default): it sees coded data only. When a deployment turns notes on, they are {screen}."
    )


def _language(inputs: ModelCardInputs) -> str:
    language = inputs.card_language or "the configured card language (R1CDS_CARD_LANGUAGE, en by default)"
    return (
        f"Cards are written in {language}; governance detects the language of each suggestion and rejects "
        "output in another language."
    )


def _versions(card_version: str, kb: KnowledgeBase, inputs: ModelCardInputs) -> str:
    parts = [f"R1 CDS {card_version}", f"knowledge base {kb.name} {kb.version}"]
    if inputs.ai_enabled:
        parts.append(f"model {inputs.backend}:{inputs.model}")
        if inputs.prompt_versions:
            parts += [
                f"prompt {service} {version}" for service, version in sorted(inputs.prompt_versions.items())
            ]
        else:
            parts.append("prompt template versions not reported to this card")
    else:
        parts.append("AI review disabled (rule cards only)")
    return "; ".join(parts)


def _contact(inputs: ModelCardInputs) -> str:
    if inputs.contact:
        return f"Contact of the deploying organisation: {inputs.contact.strip()}."
    return (
        "The deploying organisation operates the service and is the first contact for clinicians; it has not "
        "added its contact to this card, so ask your EHR administrator."
    )


def build_model_card(
    inputs: ModelCardInputs | None = None, knowledge: KnowledgeBase | None = None
) -> ModelCard:
    """The card for this deployment: model_card.json filled with versions, model facts and review settings."""
    inputs = inputs or ModelCardInputs()
    kb = knowledge or load_knowledge_base()
    data = _data()
    refs: Mapping[str, Reference] = data["references"]
    family = model_family(inputs.backend, inputs.model)
    facts: Mapping[str, Any] = data["models"][family]
    version = distribution_version()

    base = {"model": inputs.model, "backend": inputs.backend}
    model_texts = {key: _fill(facts[key], base, f"models.{family}.{key}") for key in ("label", *_MODEL_TEXTS)}
    model_refs = tuple(refs[k] for k in facts["references"])
    values: dict[str, str] = {
        **base,
        "product": data["product"],
        "version": version,
        "kb_name": kb.name,
        "kb_version": kb.version,
        "contact": _contact(inputs),
        "consistency": _consistency(inputs),
        "free_text": _free_text(inputs),
        "language": _language(inputs),
        "versions": _versions(version, kb, inputs),
        **{f"model_{key}": text for key, text in model_texts.items()},
    }
    intended_use = tuple(_fill(t, values, "intended_use") for t in data["intended_use"])
    out_of_scope = tuple(_fill(t, values, "out_of_scope") for t in data["out_of_scope"])
    risks = tuple(
        KnownRisk(_fill(r["risk"], values, "known_risks"), _fill(r["mitigation"], values, "known_risks"))
        for r in data["known_risks"]
    )
    values["intended_use"] = " ".join(intended_use)
    values["out_of_scope"] = " ".join(out_of_scope)
    values["known_risks"] = " ".join(f"{r.risk} Mitigation: {r.mitigation}" for r in risks)

    groups = tuple(
        AttributeGroup(
            id=group["id"],
            title=group["title"],
            citation=group["citation"],
            attributes=tuple(
                SourceAttribute(
                    id=a["id"],
                    group=group["id"],
                    citation=a["citation"],
                    name=a["name"],
                    value=_fill(a["value"], values, f"groups.{group['id']}.{a['id']}"),
                    status=a["status"],
                    references=_attribute_refs(a["references"], refs, model_refs),
                )
                for a in group["attributes"]
            ),
        )
        for group in data["groups"]
    )
    return ModelCard(
        product=data["product"],
        version=version,
        knowledge_base=kb.name,
        knowledge_base_version=kb.version,
        ai_enabled=inputs.ai_enabled,
        model=ModelSummary(
            backend=inputs.backend,
            model=inputs.model,
            family=family,
            label=model_texts["label"],
            clinically_meaningful=facts["clinically_meaningful"],
            summary=model_texts["summary"],
            references=model_refs,
        ),
        prompt_versions=MappingProxyType(dict(sorted(inputs.prompt_versions.items()))),
        intended_use=intended_use,
        out_of_scope=out_of_scope,
        known_risks=risks,
        validation_summary=data["validation"]["summary"],
        validation=tuple(data["validation"]["items"]),
        regulation=_reference(data["regulation"], "regulation"),
        statuses=MappingProxyType(dict(data["statuses"])),
        groups=groups,
    )


def _attribute_refs(
    keys: list[str], refs: Mapping[str, Reference], model_refs: tuple[Reference, ...]
) -> tuple[Reference, ...]:
    out: list[Reference] = []
    for key in keys:
        for ref in model_refs if key == _MODEL_REFERENCE else (refs[key],):
            if ref not in out:
                out.append(ref)
    return tuple(out)

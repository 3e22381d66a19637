"""The model's answer after its reasoning: the pydantic model, its JSON schema, re-validated by governance."""

# Design decisions (DESIGN §4, §5):
#
# - Every object forbids unknown keys and every field is required (nullable where absent is meaningful),
#   so a constrained decoder emits each field, in declaration order, and our validation sees no defaults.
# - Field order puts ``abstain`` before ``suggestions``: the model commits to abstaining before it writes
#   anything it would then have to take back.
# - The model cites, it never links: patient facts by handle (``M3``), knowledge by id
#   (``kb.warfarin-nsaid-bleeding``); any free-text field holding ``://`` or ``www.`` is rejected, and we map
#   ids to URLs ourselves. Reasoning tags (``<think>``) in an answer field are rejected too: the rationale is
#   plain language for the clinician, not the reasoning.
# - Allowed actions are deliberately few. ``MedicationRequest`` (RxNorm, or CVX for a vaccine order) and
#   ``ServiceRequest`` (LOINC for a test, SNOMED CT for a procedure or referral) are orders a clinician
#   reviews and signs; both are drafts the EHR shows as such. Left out on purpose: ``Immunization`` and
#   ``Procedure`` (records of things done: a model must never write history), ``ImmunizationRecommendation``
#   (a forecast EHRs do not accept as a suggestion), ``Appointment`` (needs scheduling data the model lacks),
#   and anything touching allergies or problems. ``create`` proposes a new draft; ``update`` changes a
#   current medication (``M``) or a draft order (``D``); ``delete`` withdraws a draft order (``D``) only:
#   stopping an existing medication is an ``update`` with no code (nothing replaces it); ``none`` is advice
#   with no order attached.
# - Every action declares its intent first (issue 18): start, stop, change-dose, substitute, order-test,
#   refer, counsel or no-change. The intent fixes the action's shape (``INTENT_SHAPES``): start is a create
#   of a MedicationRequest, stop an update without a code or a delete, change-dose and substitute an update
#   with the new product, order-test and refer a ServiceRequest, counsel and no-change advice. Governance
#   then holds the text to the intent (what the summary recommends must be what the action declares) and
#   checks the regimen the intent produces. A drug action may carry a structured dose (amount, unit, route,
#   how often), which change-dose must: the dose-range table is checked against it, never against prose.
# - ``confidence`` is the model's own rating; the confidence shown on cards is sample agreement (k/n).
#
# The JSON schema (`suggestion_json_schema`) is the one handed to SGLang's ``response_format``. It is
# self-contained: every ``$ref`` is inlined (there is no recursion), titles are dropped, and it uses only
# keywords that xgrammar, llguidance and llama.cpp's grammar converter all implement: ``type``,
# ``properties``, ``required``, ``additionalProperties: false``, ``enum``, ``anyOf`` (for null),
# ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength`` and ``pattern``. Patterns are anchored
# and use only literals, ``[...]`` classes, groups and ``{m,n}`` counts: no ``\d`` (Unicode digits in some
# engines), no look-around, no back-references. What the schema cannot say (no URLs, code syntax per
# system, the pairing of action type, resource type and target, unique citations, abstain versus
# suggestions) is checked by the validators below, so the schema is a superset of what validates.

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, Self, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "ACTION_TYPES",
    "ALLOWED_SYSTEMS",
    "CODE_SYSTEMS",
    "HANDLE_PATTERN",
    "INTENTS",
    "INTENT_SHAPES",
    "KNOWLEDGE_ID_PATTERN",
    "MAX_CITATION_LISTS",
    "MAX_SUGGESTIONS",
    "MAX_SUMMARY",
    "RESOURCE_TYPES",
    "ActionCode",
    "ActionType",
    "AiSuggestion",
    "Citations",
    "CodeSystem",
    "Confidence",
    "Dose",
    "DoseUnit",
    "Intent",
    "ProposedAction",
    "ResourceType",
    "SuggestionSet",
    "grounded_json_schema",
    "suggestion_json_schema",
    "suggestion_json_schema_text",
]

ActionType = Literal["create", "update", "delete", "none"]
ResourceType = Literal["MedicationRequest", "ServiceRequest"]
CodeSystem = Literal["rxnorm", "loinc", "snomed", "cvx"]
Confidence = Literal["low", "medium", "high"]
Intent = Literal["start", "stop", "change-dose", "substitute", "order-test", "refer", "counsel", "no-change"]
DoseUnit = Literal["mg", "mcg", "g", "mL", "unit", "tablet", "capsule", "puff"]
Route = Literal[
    "oral",
    "sublingual",
    "intravenous",
    "intramuscular",
    "subcutaneous",
    "inhaled",
    "nasal",
    "topical",
    "transdermal",
    "rectal",
    "vaginal",
    "ophthalmic",
]
DosePeriod = Literal["h", "d", "wk"]

ACTION_TYPES: Final[tuple[ActionType, ...]] = ("create", "update", "delete", "none")
RESOURCE_TYPES: Final[tuple[ResourceType, ...]] = ("MedicationRequest", "ServiceRequest")
CODE_SYSTEMS: Final[tuple[CodeSystem, ...]] = ("rxnorm", "loinc", "snomed", "cvx")
INTENTS: Final[tuple[Intent, ...]] = get_args(Intent)
# The action shapes each intent may take: (action type, resource type, coded?). A stop of a current
# medication is an update with no code; every other update names the product that follows it.
INTENT_SHAPES: Final[dict[Intent, frozenset[tuple[ActionType, ResourceType | None, bool]]]] = {
    "start": frozenset({("create", "MedicationRequest", True)}),
    "stop": frozenset(
        {
            ("update", "MedicationRequest", False),
            ("delete", "MedicationRequest", False),
            ("delete", "ServiceRequest", False),
        }
    ),
    "change-dose": frozenset({("update", "MedicationRequest", True)}),
    "substitute": frozenset({("update", "MedicationRequest", True)}),
    "order-test": frozenset({("create", "ServiceRequest", True), ("update", "ServiceRequest", True)}),
    "refer": frozenset({("create", "ServiceRequest", True), ("update", "ServiceRequest", True)}),
    "counsel": frozenset({("none", None, False)}),
    "no-change": frozenset({("none", None, False)}),
}
# A test is a LOINC observation or a SNOMED CT procedure; a referral is a SNOMED CT procedure.
_INTENT_SYSTEMS: Final[dict[Intent, frozenset[CodeSystem]]] = {
    "order-test": frozenset({"loinc", "snomed"}),
    "refer": frozenset({"snomed"}),
}
MAX_DOSE_AMOUNT: Final = 100000
# Which code systems may name the subject of each resource type.
ALLOWED_SYSTEMS: Final[dict[ResourceType, frozenset[CodeSystem]]] = {
    "MedicationRequest": frozenset({"rxnorm", "cvx"}),
    "ServiceRequest": frozenset({"loinc", "snomed"}),
}
# Which handle prefixes an update may target per resource type (delete: drafts only).
_UPDATE_TARGETS: Final[dict[ResourceType, frozenset[str]]] = {
    "MedicationRequest": frozenset({"M", "D"}),
    "ServiceRequest": frozenset({"D"}),
}

MAX_SUGGESTIONS: Final = 5
MAX_SUMMARY: Final = 139  # DESIGN §5.9: summary < 140 characters (CDS Hooks: SHOULD be < 140)
MAX_RATIONALE: Final = 1200
MAX_DISPLAY: Final = 200
MAX_REASON: Final = 300
MAX_PATIENT_CITATIONS: Final = 20
MAX_KNOWLEDGE_CITATIONS: Final = 8

HANDLE_PATTERN: Final = r"^[A-Z][0-9]{1,3}$"
TARGET_PATTERN: Final = r"^[MD][0-9]{1,3}$"
KNOWLEDGE_ID_PATTERN: Final = r"^kb\.[a-z0-9]+(-[a-z0-9]+)*$"
LANGUAGE_PATTERN: Final = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"  # BCP 47 language[-region|script|...]
CODE_PATTERN: Final = r"^[0-9]{1,18}(-[0-9])?$"  # the union of the per-system forms below
_CODE_FORMS: Final[dict[CodeSystem, re.Pattern[str]]] = {
    "rxnorm": re.compile(r"[0-9]{1,10}"),
    "loinc": re.compile(r"[0-9]{1,7}-[0-9]"),
    "snomed": re.compile(r"[1-9][0-9]{5,17}"),
    "cvx": re.compile(r"[0-9]{1,3}"),
}

_URL: Final = re.compile(r"://|www\.", re.IGNORECASE)
_REASONING_TAG: Final = re.compile(r"</?think>", re.IGNORECASE)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_text(value: str) -> str:
    # Messages never quote the value: errors travel into logs and audit records.
    if not value.strip():
        raise ValueError("must not be blank")
    if _URL.search(value):
        raise ValueError("must not contain a URL or web address; cite knowledge-base ids instead")
    if _REASONING_TAG.search(value):
        raise ValueError("must not contain reasoning tags")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Summary = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SUMMARY), AfterValidator(_plain_text)]
Rationale = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_RATIONALE), AfterValidator(_plain_text)
]
Display = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DISPLAY), AfterValidator(_plain_text)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON), AfterValidator(_plain_text)]
Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
Target = Annotated[str, StringConstraints(pattern=TARGET_PATTERN)]
KnowledgeId = Annotated[str, StringConstraints(max_length=80, pattern=KNOWLEDGE_ID_PATTERN)]
Language = Annotated[str, StringConstraints(max_length=35, pattern=LANGUAGE_PATTERN)]
CodeValue = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]


class _Strict(BaseModel):
    # strict: no coercion ("true" is not a boolean), exactly as the JSON schema reads.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ActionCode(_Strict):
    """The standard code of what the proposed order is for."""

    system: CodeSystem
    code: CodeValue
    display: Display

    @model_validator(mode="after")
    def _code_matches_system(self) -> Self:
        if not _CODE_FORMS[self.system].fullmatch(self.code):
            raise ValueError(f"code is not a well-formed {self.system} code")
        return self


class Dose(_Strict):
    """A structured dose: `amount` `unit` by `route`, `frequency` times per `period` of one."""

    amount: float = Field(description="e.g. 500 for 500 mg")
    unit: DoseUnit
    route: Route
    frequency: int = Field(description="administrations per period, 1 to 24: 2 with period d is twice daily")
    period: DosePeriod = Field(description="h, d or wk: 1 per wk is once weekly")

    # Bounds as a validator, not schema keywords: the grammar engines do not all implement minimum/maximum.
    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if not 0 < self.amount <= MAX_DOSE_AMOUNT:
            raise ValueError(f"dose amount must be above 0 and at most {MAX_DOSE_AMOUNT}")
        if not 1 <= self.frequency <= 24:
            raise ValueError("dose frequency must be 1 to 24 administrations per period")
        return self


class ProposedAction(_Strict):
    """What a suggestion proposes: its intent first, then the order that carries it out (none for advice)."""

    intent: Intent = Field(
        description="start or stop a medication, change-dose or substitute (stop the target, start the "
        "code), order-test, refer, counsel, or no-change"
    )
    type: ActionType = Field(
        description="create a new draft order; update a current medication or draft (no code: stop it); "
        "delete (withdraw) a draft order; none for advice without an order"
    )
    resource_type: ResourceType | None = Field(description="null when type is none")
    code: ActionCode | None = Field(
        description="required for create and for an update that changes the product; null to stop, for "
        "delete and for none"
    )
    target: Target | None = Field(
        description="patient handle of the medication (M) or draft order (D) to update or delete; "
        "null for create and none"
    )
    dose: Dose | None = Field(description="the dose of a started or changed medication; null otherwise")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "none":
            if self.resource_type is not None or self.code is not None or self.target is not None:
                raise ValueError("an action of type none has no resource_type, code or target")
        elif self.resource_type is None:
            raise ValueError(f"an action of type {self.type} needs a resource_type")
        elif self.code is not None and self.code.system not in ALLOWED_SYSTEMS[self.resource_type]:
            allowed = ", ".join(sorted(ALLOWED_SYSTEMS[self.resource_type]))
            raise ValueError(f"a {self.resource_type} is coded in {allowed}, not {self.code.system}")
        elif self.type == "create":
            if self.code is None:
                raise ValueError("an action of type create needs a code")
            if self.target is not None:
                raise ValueError("an action of type create has no target")
        elif self.target is None:
            raise ValueError(f"an action of type {self.type} needs a target handle")
        elif self.type == "update":
            if self.target[0] not in _UPDATE_TARGETS[self.resource_type]:
                raise ValueError(f"an update of a {self.resource_type} targets a handle of another kind")
            if self.code is None and self.resource_type != "MedicationRequest":
                raise ValueError(
                    "an update without a code stops a medication; a ServiceRequest update needs one"
                )
        elif self.target[0] != "D":
            raise ValueError(
                "delete only withdraws a draft order (a D handle); stopping a medication is an update "
                "without a code"
            )
        elif self.code is not None:
            raise ValueError("an action of type delete has no code")
        return self._intended()

    def _intended(self) -> Self:
        shape = (self.type, self.resource_type, self.code is not None)
        if shape not in INTENT_SHAPES[self.intent]:
            raise ValueError(f"intent {self.intent} is not carried out by this {self.type} action")
        systems = _INTENT_SYSTEMS.get(self.intent)
        if systems is not None and self.code is not None and self.code.system not in systems:
            raise ValueError(f"intent {self.intent} is not coded in {self.code.system}")
        if self.dose is not None and (self.resource_type != "MedicationRequest" or self.code is None):
            raise ValueError("only a started or changed medication carries a dose")
        if self.intent == "change-dose" and self.dose is None:
            raise ValueError("a change-dose intent states the new dose")
        return self


class Citations(_Strict):
    """What the suggestion rests on: handles of this patient's facts, ids of the given passages."""

    patient: list[Handle] = Field(max_length=MAX_PATIENT_CITATIONS)
    knowledge: list[KnowledgeId] = Field(min_length=1, max_length=MAX_KNOWLEDGE_CITATIONS)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if len(set(self.patient)) != len(self.patient):
            raise ValueError("patient citations repeat a handle")
        if len(set(self.knowledge)) != len(self.knowledge):
            raise ValueError("knowledge citations repeat an id")
        return self


class AiSuggestion(_Strict):
    """One option for the clinician, phrased as an option ("Consider ..."), never as an order."""

    summary: Summary = Field(description="one line, an option not an order, e.g. 'Consider ...'")
    rationale: Rationale = Field(description="plain-language why, for the clinician; not the reasoning")
    action: ProposedAction
    citations: Citations
    confidence: Confidence


class SuggestionSet(_Strict):
    """Suggestions for this patient, or an explicit abstention."""

    language: Language = Field(description="BCP 47 tag of the language the text fields are written in")
    abstain: bool = Field(description="true when unsure or when nothing can be grounded in the passages")
    abstain_reason: Reason | None = Field(description="why, when abstain is true; null otherwise")
    suggestions: list[AiSuggestion] = Field(max_length=MAX_SUGGESTIONS)

    @model_validator(mode="after")
    def _abstention(self) -> Self:
        if self.abstain:
            if self.suggestions:
                raise ValueError("an abstaining answer carries no suggestions")
            if self.abstain_reason is None:
                raise ValueError("an abstaining answer gives its reason")
        elif self.abstain_reason is not None:
            raise ValueError("abstain_reason is only given when abstain is true")
        return self


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**defs[name], **siblings}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


@functools.cache
def suggestion_json_schema_text() -> str:
    """The schema as compact JSON in declaration order: the exact text the prompt embeds."""
    raw = SuggestionSet.model_json_schema()
    defs = raw.pop("$defs", {})
    schema = _inline(raw, defs)
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def suggestion_json_schema() -> dict[str, Any]:
    """A fresh copy of the self-contained JSON schema of `SuggestionSet` (generated once per process)."""
    schema: dict[str, Any] = json.loads(suggestion_json_schema_text())
    return schema


def _null() -> dict[str, Any]:
    return {"type": "null"}


def _enum(values: Sequence[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _action_variants(schema: dict[str, Any], handles: Sequence[str]) -> list[dict[str, Any]]:
    """One object schema per valid (intent, type, resource_type, code system, target) pairing of
    ProposedAction: INTENT_SHAPES read as a grammar, with the targets this chart has."""
    action = schema["properties"]["suggestions"]["items"]["properties"]["action"]
    properties = action["properties"]
    code = next(v for v in properties["code"]["anyOf"] if v.get("type") == "object")
    dose = next(v for v in properties["dose"]["anyOf"] if v.get("type") == "object")
    description = action.get("description")

    def variant(
        intents: Sequence[Intent],
        kind: ActionType,
        resource: ResourceType | None,
        systems: Sequence[CodeSystem] | None,
        targets: Sequence[str] | None,
        dosed: Literal["never", "maybe", "always"] = "never",
    ) -> dict[str, Any]:
        coded: dict[str, Any] | None = None
        if systems is not None:
            # One code object per system, so that the code's form follows its system (_CODE_FORMS).
            coded = {
                "anyOf": [
                    {
                        **code,
                        "properties": {
                            **code["properties"],
                            "system": _enum([system]),
                            "code": {"type": "string", "pattern": f"^{_CODE_FORMS[system].pattern}$"},
                        },
                    }
                    for system in systems
                ]
            }
        dosing = {"never": _null(), "maybe": {"anyOf": [dose, _null()]}, "always": dose}[dosed]
        return {
            "type": "object",
            **({"description": description} if description else {}),
            "properties": {
                "intent": _enum(intents),
                "type": _enum([kind]),
                "resource_type": _null() if resource is None else _enum([resource]),
                "code": _null() if coded is None else coded,
                "target": _null() if targets is None else _enum(targets),
                "dose": dosing,
            },
            "required": ["intent", "type", "resource_type", "code", "target", "dose"],
            "additionalProperties": False,
        }

    drug_systems = sorted(ALLOWED_SYSTEMS["MedicationRequest"])
    medications = [h for h in handles if h[0] in _UPDATE_TARGETS["MedicationRequest"]]
    drafts = [h for h in handles if h[0] == "D"]
    variants = [
        variant(["counsel", "no-change"], "none", None, None, None),
        variant(["start"], "create", "MedicationRequest", drug_systems, None, "maybe"),
        variant(["order-test"], "create", "ServiceRequest", ["loinc", "snomed"], None),
        variant(["refer"], "create", "ServiceRequest", ["snomed"], None),
    ]
    if medications:
        variants += [
            variant(["substitute"], "update", "MedicationRequest", drug_systems, medications, "maybe"),
            variant(["change-dose"], "update", "MedicationRequest", drug_systems, medications, "always"),
            variant(["stop"], "update", "MedicationRequest", None, medications),
        ]
    if drafts:
        variants += [
            variant(["order-test"], "update", "ServiceRequest", ["loinc", "snomed"], drafts),
            variant(["refer"], "update", "ServiceRequest", ["snomed"], drafts),
            variant(["stop"], "delete", "MedicationRequest", None, drafts),
            variant(["stop"], "delete", "ServiceRequest", None, drafts),
        ]
    return variants


MAX_CITATION_LISTS: Final = 1000


def _distinct_lists(values: Sequence[str], least: int, most: int) -> list[list[str]]:
    """Every list of `least` to `most` distinct values in their given order; `most` is lowered until there
    are at most MAX_CITATION_LISTS lists (never below `least`, or 1)."""
    most = max(most, least, 1)
    while True:
        lists = [list(c) for k in range(least, most + 1) for c in itertools.combinations(values, k)]
        if len(lists) <= MAX_CITATION_LISTS or most <= max(least, 1):
            return lists
        most -= 1


def grounded_json_schema(
    handles: Sequence[str],
    knowledge_ids: Sequence[str],
    language: str,
    *,
    max_suggestions: int = MAX_SUGGESTIONS,
    max_rationale: int = MAX_RATIONALE,
    max_citations: int | None = None,
) -> dict[str, Any]:
    """`suggestion_json_schema` narrowed to one review, for constrained decoders that a small model needs.

    What the validators check after the fact becomes the grammar itself: citations are drawn from this
    summary's handles and the passages this prompt carried, each action is one of the valid pairings of
    type, resource type, code system and target (only this chart's M and D handles), the language is the
    answer language, and abstaining or answering are two shapes (an abstention carries its reason and no
    suggestions; an answer has a null reason). Every output it admits still goes through governance, which
    checks meaning; this only stops a model from failing on form. Without any passage there is nothing
    to cite, so only an abstention or an empty answer fits. `max_suggestions` and `max_rationale` can only
    tighten the model's limits: a compact profile keeps a small model's answer within its token budget.

    With `max_citations`, each citation list is one of the lists of at most that many distinct handles (or
    ids) in summary order, spelled out as JSON values: a grammar cannot say "no repeats" otherwise, and a
    small model does repeat itself ("E1", "E1", ...), which the validator rejects. The count of such lists
    grows fast, so the limit is lowered until there are at most MAX_CITATION_LISTS of them.
    """
    if not (1 <= max_suggestions <= MAX_SUGGESTIONS and 1 <= max_rationale <= MAX_RATIONALE):
        raise ValueError("max_suggestions and max_rationale can only tighten the answer's limits")
    schema = suggestion_json_schema()
    props = schema["properties"]
    suggestions = props["suggestions"]
    suggestions["maxItems"] = max_suggestions
    item = suggestions["items"]
    item["properties"]["rationale"]["maxLength"] = max_rationale
    citations = item["properties"]["citations"]["properties"]
    patient_handles = [h for h in dict.fromkeys(handles) if re.fullmatch(HANDLE_PATTERN, h)]
    if patient_handles:
        citations["patient"]["items"] = _enum(patient_handles)
    else:
        citations["patient"]["maxItems"] = 0
    kb_ids = [k for k in dict.fromkeys(knowledge_ids) if re.fullmatch(KNOWLEDGE_ID_PATTERN, k)]
    if kb_ids:
        citations["knowledge"]["items"] = _enum(kb_ids)
        citations["knowledge"]["maxItems"] = min(len(kb_ids), MAX_KNOWLEDGE_CITATIONS)
    if max_citations is not None:
        citations["patient"] = {"enum": _distinct_lists(patient_handles, 0, max_citations)}
        if kb_ids:
            citations["knowledge"] = {"enum": _distinct_lists(kb_ids, 1, max_citations)}
    item["properties"]["action"] = {"anyOf": _action_variants(schema, patient_handles)}
    reason = next(v for v in props["abstain_reason"]["anyOf"] if v.get("type") == "string")
    common = {"language": _enum([language])}
    answering = {
        "type": "object",
        "properties": {
            **common,
            "abstain": {"type": "boolean", "enum": [False]},
            "abstain_reason": _null(),
            "suggestions": suggestions if kb_ids else {"type": "array", "items": item, "maxItems": 0},
        },
        "required": ["language", "abstain", "abstain_reason", "suggestions"],
        "additionalProperties": False,
    }
    abstaining = {
        "type": "object",
        "properties": {
            **common,
            "abstain": {"type": "boolean", "enum": [True]},
            "abstain_reason": reason,
            "suggestions": {"type": "array", "items": item, "maxItems": 0},
        },
        "required": ["language", "abstain", "abstain_reason", "suggestions"],
        "additionalProperties": False,
    }
    return {"anyOf": [answering, abstaining]}

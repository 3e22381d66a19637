"""CDS Hooks 2.0 wire models: discovery, hook request and response, cards, feedback.

Requests are read tolerantly where real EHRs are sloppy (unknown members are ignored, token types
are case-insensitive) and strictly where the spec is strict (ids, references, prefetch values must
be FHIR resources). Responses are built strictly: the spec's card invariants are validators, and
`dump()` omits every absent optional member instead of writing null.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# FHIR R4 id and relative reference grammars (http://hl7.org/fhir/R4/datatypes.html#id).
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
FHIR_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")
USER_TYPES = frozenset({"Practitioner", "PractitionerRole", "Patient", "RelatedPerson"})

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Summary = Annotated[str, StringConstraints(min_length=1, max_length=139)]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", serialize_by_alias=True
    )

    def dump(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


# --- shared -----------------------------------------------------------------------------------


class Coding(WireModel):
    code: NonEmpty
    system: str | None = None
    display: str | None = None


class OverrideReason(Coding):
    """A coding a clinician picks when dismissing a card; EHRs show `display`, so it is required."""

    display: NonEmpty


# --- discovery --------------------------------------------------------------------------------


class ServiceDefinition(WireModel):
    hook: NonEmpty
    id: NonEmpty
    description: NonEmpty
    title: str | None = None
    prefetch: dict[str, str] | None = None
    usage_requirements: str | None = None
    extension: dict[str, Any] | None = None


class DiscoveryResponse(WireModel):
    services: list[ServiceDefinition]


# --- request ----------------------------------------------------------------------------------


class FhirAuthorization(WireModel):
    """OAuth 2.0 access for fetch-back. The token is a SecretStr so it cannot leak through repr/logs."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="ignore")

    access_token: SecretStr
    token_type: str
    expires_in: int = Field(ge=0)
    scope: NonEmpty
    subject: NonEmpty
    patient: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError("token_type must be Bearer")
        return "Bearer"

    @field_validator("patient")
    @classmethod
    def _patient_id(cls, value: str | None) -> str | None:
        if value is not None and not FHIR_ID.fullmatch(value):
            raise ValueError("patient must be a FHIR id")
        return value


class _ContextRule:
    """What one standard hook requires of `context` (hook definitions in the CDS Hooks library)."""

    __slots__ = ("bundles", "ids", "optional_ids", "references")

    def __init__(
        self,
        ids: tuple[str, ...] = ("patientId",),
        optional_ids: tuple[str, ...] = (),
        references: tuple[str, ...] = (),
        bundles: tuple[str, ...] = (),
    ) -> None:
        self.ids = ids
        self.optional_ids = optional_ids
        self.references = references
        self.bundles = bundles


CONTEXT_RULES: dict[str, _ContextRule] = {
    "patient-view": _ContextRule(optional_ids=("encounterId",)),
    "order-select": _ContextRule(
        optional_ids=("encounterId",), references=("selections",), bundles=("draftOrders",)
    ),
    "order-sign": _ContextRule(optional_ids=("encounterId",), bundles=("draftOrders",)),
    "encounter-start": _ContextRule(ids=("patientId", "encounterId")),
    "encounter-discharge": _ContextRule(ids=("patientId", "encounterId")),
}


def _check_context(hook: str, context: dict[str, Any]) -> None:
    user = context.get("userId")
    if user is not None and (
        not isinstance(user, str)
        or not FHIR_REFERENCE.fullmatch(user)
        or user.split("/")[0] not in USER_TYPES
    ):
        raise ValueError(
            "context.userId must be Practitioner/, PractitionerRole/, Patient/ or RelatedPerson/{id}"
        )
    rule = CONTEXT_RULES.get(hook)
    if rule is None:
        return
    if user is None:
        raise ValueError(f"context.userId is required for {hook}")
    for name in rule.ids:
        value = context.get(name)
        if not isinstance(value, str) or not FHIR_ID.fullmatch(value):
            raise ValueError(f"context.{name} must be a FHIR id (not a reference)")
    for name in rule.optional_ids:
        value = context.get(name)
        if value is not None and (not isinstance(value, str) or not FHIR_ID.fullmatch(value)):
            raise ValueError(f"context.{name} must be a FHIR id (not a reference)")
    for name in rule.references:
        value = context.get(name)
        if not isinstance(value, list) or not value:
            raise ValueError(f"context.{name} must be a non-empty list of references")
        if not all(isinstance(ref, str) and FHIR_REFERENCE.fullmatch(ref) for ref in value):
            raise ValueError(f"context.{name} entries must be {{type}}/{{id}} references")
    for name in rule.bundles:
        value = context.get(name)
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            raise ValueError(f"context.{name} must be a FHIR Bundle")
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise ValueError(f"context.{name}.entry must be a list")
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise ValueError(f"every context.{name} entry must carry a FHIR resource")


class HookRequest(WireModel):
    hook: NonEmpty
    hook_instance: NonEmpty
    context: dict[str, Any]
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @field_validator("fhir_server")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s?#]*", value):
            raise ValueError("fhirServer must be an absolute http(s) base URL")
        return value.rstrip("/") if value else value

    @field_validator("prefetch")
    @classmethod
    def _prefetch_values_are_resources(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for item in (value or {}).values():
            if item is not None and not (
                isinstance(item, dict) and isinstance(item.get("resourceType"), str)
            ):
                # The key is the client's: named as "a value", never repeated.
                raise ValueError("every prefetch value must be a FHIR resource or null")
        return value

    @model_validator(mode="after")
    def _context_matches_hook(self) -> HookRequest:
        if self.fhir_authorization is not None and self.fhir_server is None:
            raise ValueError("fhirAuthorization requires fhirServer")
        _check_context(self.hook, self.context)
        return self


# --- response ---------------------------------------------------------------------------------


class Source(WireModel):
    label: NonEmpty
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(WireModel):
    type: Literal["create", "update", "delete"]
    description: NonEmpty
    resource: dict[str, Any] | None = None
    resource_id: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Action:
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"a {self.type} action needs a resource")
        if self.type == "delete" and self.resource is None and self.resource_id is None:
            raise ValueError("a delete action needs resourceId")
        return self


class Suggestion(WireModel):
    label: NonEmpty
    uuid: str | None = None
    is_recommended: bool | None = None
    actions: list[Action] | None = None


class Link(WireModel):
    label: NonEmpty
    url: NonEmpty
    type: Literal["absolute", "smart"]
    app_context: str | None = None
    autolaunchable: bool | None = None

    @model_validator(mode="after")
    def _app_context_only_for_smart(self) -> Link:
        if self.app_context is not None and self.type != "smart":
            raise ValueError("appContext is only meaningful on smart links")
        return self


class Card(WireModel):
    summary: Summary
    indicator: Literal["info", "warning", "critical"]
    source: Source
    uuid: str | None = None
    detail: str | None = None
    suggestions: list[Suggestion] | None = None
    selection_behavior: Literal["at-most-one", "any"] | None = None
    override_reasons: list[OverrideReason] | None = None
    links: list[Link] | None = None

    @model_validator(mode="after")
    def _suggestion_rules(self) -> Card:
        if self.suggestions:
            if self.selection_behavior is None:
                raise ValueError("selectionBehavior is required when a card has suggestions")
            recommended = sum(1 for s in self.suggestions if s.is_recommended)
            if self.selection_behavior == "at-most-one" and recommended > 1:
                raise ValueError("at-most-one allows at most one recommended suggestion")
        return self


class HookResponse(WireModel):
    cards: list[Card]
    system_actions: list[Action] | None = None


# --- feedback ---------------------------------------------------------------------------------


class AcceptedSuggestion(WireModel):
    id: NonEmpty


class OverrideReasonFeedback(WireModel):
    reason: Coding | None = None
    user_comment: str | None = None


class FeedbackItem(WireModel):
    card: NonEmpty
    outcome: Literal["accepted", "overridden"]
    outcome_timestamp: NonEmpty
    accepted_suggestions: list[AcceptedSuggestion] | None = None
    override_reason: OverrideReasonFeedback | None = None

    @model_validator(mode="after")
    def _outcome_fields(self) -> FeedbackItem:
        if self.outcome == "overridden" and self.accepted_suggestions:
            raise ValueError("an overridden card has no accepted suggestions")
        return self


class FeedbackRequest(WireModel):
    feedback: list[FeedbackItem] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _accept_single_item(cls, value: Any) -> Any:
        # Some EHRs post one feedback object instead of the {"feedback": [...]} wrapper.
        if isinstance(value, dict) and "feedback" not in value and "card" in value:
            return {"feedback": [value]}
        return value

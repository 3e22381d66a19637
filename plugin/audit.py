"""The audit trail's records, their hash chain, the sink port, and FHIR R4 AuditEvent/Provenance builders.

Three kinds of record, each a frozen pydantic model with a `kind` discriminator:

    hook-call   one CDS Hooks call answered (or refused): hook instance, service, hook, tenant, review
                fingerprint, timings in ms, HTTP status, outcome, the uuids of the cards issued and what
                issued each (`card_kind`: a rule, a governed AI suggestion, or an AI review status card),
                and the uuids of the rule cards suppressed after an override
    ai-run      one AI review: fingerprint, service, model identity, prompt template name/version/hash,
                knowledge-base version, sampling parameters, token usage (reasoning and cached included),
                per-sample outcome codes, retrieved passage ids, and the governance decision summary
                (each accepted suggestion with its card uuid; each rejection with its reason code)
    feedback    what a clinician did with a card: card uuid, service, accepted/overridden, the override
                reason code, the accepted suggestion uuids, the user's reference when the EHR gave one

**References and ids only.** A record never holds a PHI payload or a secret: no FHIR resource, no patient
or resource id, no name, date of birth, address or identifier value, no prompt or model text (summaries,
rationales, reasoning), no free-text detail of a parser or governance check, no feedback comment, no JWT,
no `fhirAuthorization` token. It holds our own ids (fingerprints, card and hook-instance uuids,
knowledge-base ids), the de-identified context's pseudonymous handles (`M3`, meaningless without the
per-context mapping that stays in the result store with its TTL), codes (reason codes, RxNorm/LOINC codes
of a proposed order) and counts. The field types enforce it where a type can: ids are token-shaped (no
spaces), a user is a FHIR relative reference, the only free strings are the tenant's configured name and
the model server's identity. Linking an audit record to a patient is the EHR's job, through the hook
instance and card uuids it logged; tests/unit/test_audit.py scans records built from fixture charts with
the PHI scanner.

**Chain.** A record's canonical form is its JSON with sorted keys and no whitespace (timestamps as
`YYYY-MM-DDTHH:MM:SS.ffffffZ`, floats rounded to 3 decimals, UTF-8). The store keeps that text as written
and links records in order: record n carries `prev_hash` (record n-1's hash; 64 zeros for the first) and
`hash = sha256(prev_hash + canonical(record))`, hex. Verification hashes the stored text, never a
re-serialisation, so it does not depend on how a later version of this module or of pydantic would write
the same record. An edit, deletion, reordering or insertion anywhere breaks the chain at that point;
rewriting the whole suffix after an edit, or deleting the newest records and moving the head back, does
not: the signed checkpoints of workers.audit_store.AnchorLog, kept outside the database, catch those.

**Port.** `AuditSink.append` is async: its callers are the async hook path and the worker's async review,
and the SQL store it is built for takes a database write lock, which must never block an event loop (the
store runs the write on a thread). Synchronous callers (the command line, tests) use the store directly.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, Protocol

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
)

from plugin.ai_cards import AI_ASSERTED, card_uuid
from plugin.ai_review import REVIEW_SYSTEM
from plugin.feedback import FeedbackRecord
from plugin.model_card import ABOUT_JSON_PATH, ModelCardLink, model_card_link
from plugin.model_port import ModelIdentity, SamplingParameters, Usage
from plugin.review import ReviewOutcome
from plugin.rules.cards import RULE_SYSTEM
from plugin.suggestions import HANDLE_PATTERN, KNOWLEDGE_ID_PATTERN

__all__ = [
    "AI_CARD_KIND",
    "GENESIS",
    "STATUS_CARD_KIND_PREFIX",
    "AcceptedSuggestion",
    "AiRunRecord",
    "AuditRecord",
    "AuditSink",
    "BreakReason",
    "CardFeedbackRecord",
    "ChainBreak",
    "ChainVerifier",
    "DecisionSummary",
    "HookCallRecord",
    "HookOutcome",
    "MemoryAuditSink",
    "ModelInfo",
    "OverrideReason",
    "PromptInfo",
    "RejectionCode",
    "RunOutcome",
    "SampleCode",
    "SamplingInfo",
    "StoredRecord",
    "UsageInfo",
    "ai_run_record",
    "audit_event",
    "canonical",
    "card_kind",
    "chain_hash",
    "client_label",
    "client_token",
    "feedback_audit_record",
    "fhir_export",
    "find_break",
    "link",
    "parse_record",
    "provenance",
    "provenances",
    "timestamp_text",
    "verify_chain",
]

GENESIS: Final = "0" * 64  # the prev_hash of the first record

# Identifier systems of our own ids in the FHIR resources.
HOOK_INSTANCE_SYSTEM: Final = "urn:r1cds:hook-instance"
FINGERPRINT_SYSTEM: Final = "urn:r1cds:review-fingerprint"
TENANT_SYSTEM: Final = "urn:r1cds:tenant"
SERVICE_SYSTEM: Final = "urn:r1cds:cds-service"
MODEL_SYSTEM: Final = "urn:r1cds:model"
KNOWLEDGE_SYSTEM: Final = "urn:r1cds:knowledge-base"
CARD_SYSTEM: Final = "urn:r1cds:card"
HOOK_SYSTEM: Final = "urn:r1cds:cds-hook"
URI_SYSTEM: Final = "urn:ietf:rfc:3986"
EXPORT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:r1cds:audit-export")

_AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_PARTICIPANT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_UUID: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# HL7 AI Transparency on FHIR (hl7.fhir.uv.aitransparency), STU1 ballot 1.0.0-ballot, published at
# http://hl7.org/fhir/uv/aitransparency/2026Jan; AIconfidence only from STU1 1.0.0 (the ballot has no
# confidence extension). The Provenance, Device and model-card DocumentReference follow its AI-Provenance,
# AI-Device and AI-ModelCard profiles.
AIT_BASE: Final = "http://hl7.org/fhir/uv/aitransparency"
AI_PROVENANCE_PROFILE: Final = f"{AIT_BASE}/StructureDefinition/AI-Provenance"
AI_DEVICE_PROFILE: Final = f"{AIT_BASE}/StructureDefinition/AI-Device"
AI_MODEL_CARD_PROFILE: Final = f"{AIT_BASE}/StructureDefinition/AI-ModelCard"
AI_KIND_EXTENSION: Final = f"{AIT_BASE}/StructureDefinition/aitransparency.AIKind"
MODEL_CARD_EXTENSION: Final = f"{AIT_BASE}/StructureDefinition/aitransparency.modelCardDescription"
AI_CONFIDENCE_EXTENSION: Final = f"{AIT_BASE}/StructureDefinition/AIconfidence"
AI_DEVICE_TYPE_SYSTEM: Final = f"{AIT_BASE}/CodeSystem/AIdeviceTypeCS"
AI_MODEL_CARD_SYSTEM: Final = f"{AIT_BASE}/CodeSystem/AImodelCardCS"  # AIinputsCS from STU1 1.0.0 on
# Our own, for what the IG leaves to the implementer: the model card's and the prompt template's ids.
MODEL_CARD_SYSTEM: Final = "urn:r1cds:model-card"
PROMPT_TEMPLATE_SYSTEM: Final = "urn:r1cds:prompt-template"
PROMPT_HASH_SYSTEM: Final = "urn:r1cds:prompt-template-hash"
# Ids of the resources a Provenance contains.
AI_DEVICE_ID: Final = "ai-model"
MODEL_CARD_ID: Final = "model-card"
PROMPT_ID: Final = "prompt-template"
# Model identity details that are versions of the model itself (the rest are Device properties).
_VERSION_DETAILS: Final = ("weight_version", "revision", "digest", "script_version")


# --- field types ------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("audit timestamps must carry a time zone")
    return value.astimezone(UTC)


def timestamp_text(value: datetime) -> str:
    """The canonical text of a timestamp: UTC, microseconds, `Z` (sorts as it compares)."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rounded(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return round(value, 3)


Timestamp = Annotated[datetime, AfterValidator(_utc), PlainSerializer(timestamp_text, return_type=str)]
_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:/+\-]{0,127}$"
_LABEL_PATTERN: Final = r"^[^\x00-\x1f\x7f]{1,500}$"
_ID_RE: Final = re.compile(_ID_PATTERN)
_LABEL_RE: Final = re.compile(_LABEL_PATTERN)
# Our ids, EHR hook instances and card uuids: no spaces, so no sentence (or name and address) fits in one.
Token = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def client_token(value: object) -> object:
    """A client's id as a record keeps it: itself when it is token-shaped, else `sha256:<hex>` of its UTF-8.

    A string the EHR chose (a hookInstance with a space, over 128 characters or non-ASCII, a card uuid in
    feedback) must never cost the call its record: the digest is a token, keeps no text of the value (so
    no PHI a client put in it) and still joins with the EHR's own log, which can hash its value the same
    way. A token is kept as is, so re-validating a stored record changes nothing. Not a string: left to
    fail validation (our code built it, not a client)."""
    if isinstance(value, str) and _ID_RE.fullmatch(value) is None:
        return _digest(value)
    return value


def client_label(value: object) -> object:
    """`client_token` for a client's label (an override reason's code and system): kept when it is 1 to
    500 characters without control characters, else `sha256:<hex>` of it."""
    if isinstance(value, str) and _LABEL_RE.fullmatch(value) is None:
        return _digest(value)
    return value


# What a client sent: never a reason to skip a record (client_token, client_label).
ClientToken = Annotated[Token, BeforeValidator(client_token)]
ClientLabel = Annotated[Label, BeforeValidator(client_label)]
FhirReference = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")]
KnowledgeId = Annotated[str, StringConstraints(pattern=KNOWLEDGE_ID_PATTERN)]
Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
SystemCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,16}\|[A-Za-z0-9.\-]{1,64}$")]
Millis = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_rounded)]
Ratio = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_rounded)]
Count = Annotated[int, Field(ge=0)]

HookOutcome = Literal["rules-only", "ai-pending", "ai-ready", "ai-unavailable", "error"]
RunOutcome = Literal["accepted", "abstained", "failed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- records ----------------------------------------------------------------------------------------------


class HookCallRecord(_Frozen):
    """One hook call. `at` is when it was received; `timings_ms["total"]` is how long the answer took.

    Every answered call has one: what the client chose (`hook_instance`, `hook`, and `service_id` from the
    URL) is kept as sent when it is a token (`^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$`), else as
    `sha256:<hex>` of its UTF-8 (a space, more than 128 characters, non-ASCII: `client_token`), never a
    reason to skip the record.
    """

    kind: Literal["hook-call"] = "hook-call"
    v: Literal[1] = 1
    at: Timestamp
    hook_instance: ClientToken
    service_id: ClientToken
    hook: ClientToken
    tenant: Label | None  # the EHR's configured name; None when authentication is off
    fingerprint: Sha256 | None  # the review key, when an AI review applies to this call
    timings_ms: dict[Token, Millis] = Field(default_factory=dict)  # e.g. total, prefetch, rules, ai_wait
    http_status: Annotated[int, Field(ge=100, le=599)]
    outcome: HookOutcome
    card_uuids: tuple[Token, ...] = ()  # every card issued, rule and AI, in answer order
    # What issued each card of card_uuids, same order (`card_kind`): the rule id ("rule.inr-monitoring"),
    # "ai", or "ai-status.<code>" for an AI review status card ("ai-status.pending"). Records written
    # before status cards were named say "ai" for those too.
    card_kinds: tuple[Token, ...] = ()
    # Rule cards the answer left out because a clinician overrode them with a reason and nothing they rest
    # on changed since (plugin.suppression): their uuids, in answer order, so the omission is reviewable.
    suppressed: tuple[Token, ...] = ()
    # context.userId when it names a clinician (Practitioner or PractitionerRole); never a patient's id.
    user: FhirReference | None = None


class ModelInfo(_Frozen):
    backend: Token
    model: Label
    details: dict[Token, Label] = Field(default_factory=dict)

    @classmethod
    def of(cls, identity: ModelIdentity) -> ModelInfo:
        return cls(backend=identity.backend, model=identity.model, details=dict(identity.details))


class PromptInfo(_Frozen):
    template_name: Token
    template_version: Token
    template_hash: Token


class SamplingInfo(_Frozen):
    temperature: Ratio
    top_p: Ratio
    max_completion_tokens: Count
    n: Count
    seed: int | None = None

    @classmethod
    def of(cls, sampling: SamplingParameters) -> SamplingInfo:
        return cls(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_completion_tokens=sampling.max_completion_tokens,
            n=sampling.n,
            seed=sampling.seed,
        )


class UsageInfo(_Frozen):
    prompt_tokens: Count
    completion_tokens: Count
    reasoning_tokens: Count | None
    cached_tokens: Count | None

    @classmethod
    def of(cls, usage: Usage) -> UsageInfo:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cached_tokens=usage.cached_tokens,
        )


class SampleCode(_Frozen):
    """One model sample: how it finished and the parser's outcome code (its free-text detail is left out)."""

    index: Count
    finish_reason: Token
    outcome: Token


class AcceptedSuggestion(_Frozen):
    """An accepted suggestion and the card it became; the card's text is derived, so it is not stored."""

    card_uuid: Token
    agreement: tuple[Count, Count]  # k of n samples
    severity: Literal["info", "warning"]
    action_type: Literal["create", "update", "delete", "none"]
    resource_type: Token | None
    action_code: SystemCode | None  # "<system>|<code>", e.g. "rxnorm|308191"; None for advice
    knowledge_ids: tuple[KnowledgeId, ...]
    patient_handles: tuple[Handle, ...]  # pseudonymous, per context
    backing_rules: tuple[Token, ...] = ()


class RejectionCode(_Frozen):
    """A dropped sample (suggestion None) or suggestion, with the reason code of its first failed check."""

    sample: Count
    suggestion: Count | None
    reason: Token


class DecisionSummary(_Frozen):
    accepted: tuple[AcceptedSuggestion, ...]
    abstain_reason: Token | None
    rejections: tuple[RejectionCode, ...]

    @property
    def accepted_count(self) -> int:
        return len(self.accepted)

    @property
    def card_uuids(self) -> tuple[str, ...]:
        return tuple(a.card_uuid for a in self.accepted)


class AiRunRecord(_Frozen):
    """One AI review as run (or replayed): what asked what of which model, and what governance let through."""

    kind: Literal["ai-run"] = "ai-run"
    v: Literal[1] = 1
    at: Timestamp  # when the review finished
    fingerprint: Sha256
    service_id: Token
    outcome: RunOutcome
    error: Token | None = None  # the ModelError class name when failed
    transient: bool | None = None
    recorded: bool = False  # replayed samples, the model was not called
    model: ModelInfo | None  # None when the model never answered
    request_id: Label | None = None
    prompt: PromptInfo | None
    knowledge_base_version: Label
    sampling: SamplingInfo
    usage: UsageInfo | None
    samples: tuple[SampleCode, ...] = ()
    passage_ids: tuple[KnowledgeId, ...] = ()
    decision: DecisionSummary | None  # None exactly when the review failed before governance
    timings_ms: dict[Token, Millis] = Field(default_factory=dict)

    @property
    def card_uuids(self) -> tuple[str, ...]:
        return self.decision.card_uuids if self.decision is not None else ()


class OverrideReason(_Frozen):
    system: ClientLabel | None
    code: ClientLabel


class CardFeedbackRecord(_Frozen):
    """CDS Hooks feedback on one card. The EHR's free-text comment is not kept.

    The EHR's strings (`card_uuid`, `accepted_suggestions`, the override reason's system and code) are
    kept as sent when token- (label-) shaped, else as `sha256:<hex>` of them (`client_token`,
    `client_label`): never a reason to skip the record.
    """

    kind: Literal["feedback"] = "feedback"
    v: Literal[1] = 1
    at: Timestamp  # when we received it
    service_id: ClientToken
    card_uuid: ClientToken
    outcome: Literal["accepted", "overridden"]
    outcome_timestamp: Timestamp  # the EHR's; a time without zone is read as UTC
    override_reason: OverrideReason | None = None
    accepted_suggestions: tuple[ClientToken, ...] = ()
    user: FhirReference | None = None  # e.g. Practitioner/123, when the EHR said who
    tenant: Label | None = None


AuditRecord = HookCallRecord | AiRunRecord | CardFeedbackRecord
_RECORD: Final[TypeAdapter[AuditRecord]] = TypeAdapter(Annotated[AuditRecord, Field(discriminator="kind")])


AI_CARD_KIND: Final = "ai"
# A status card tells where the AI review stands ("AI review in progress", "unavailable", "found nothing
# it could stand behind"): nothing to accept or override, so no intervention. Named by its topic system,
# so that a status added later is one without anyone listing it here.
STATUS_CARD_KIND_PREFIX: Final = "ai-status."
_STATUS_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


def card_kind(topic_system: str | None, topic_code: str | None) -> str:
    """What `card_kinds` says of a card with this source topic: the rule id of a rule card,
    "ai-status.<code>" for an AI review status card (topic system `urn:r1cds:ai-review-status`; "unknown"
    for a code that is no token), "ai" for anything else (a governed AI suggestion card)."""
    if topic_system == RULE_SYSTEM and topic_code:
        return topic_code
    if topic_system == REVIEW_SYSTEM:
        code = topic_code if topic_code and _STATUS_CODE.fullmatch(topic_code) else "unknown"
        return STATUS_CARD_KIND_PREFIX + code
    return AI_CARD_KIND


# Fields added to a record kind after chains were already written, with their empty value: left out of the
# canonical text when empty, so a record without them reads back to exactly the text that was hashed.
_ADDED_FIELDS: Final[Mapping[str, Mapping[str, object]]] = {
    "hook-call": {"card_kinds": [], "user": None, "suppressed": []},
}


def canonical(record: AuditRecord) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the exact text that is hashed and stored."""
    dumped = record.model_dump(mode="json")
    for name, empty in _ADDED_FIELDS.get(record.kind, {}).items():
        if dumped.get(name) == empty:
            del dumped[name]
    return orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS).decode()


def parse_record(body: str | bytes) -> AuditRecord:
    """A stored body back into its record; raises pydantic.ValidationError when it is not one."""
    return _RECORD.validate_json(body)


def record_from_document(document: Mapping[str, Any]) -> AuditRecord:
    """A record from its JSON-shaped fields (as another process sent them); raises ValidationError."""
    return _RECORD.validate_python(document)


# --- builders from the core's own results ------------------------------------------------------------------


def _ms(seconds: Mapping[str, float]) -> dict[str, float]:
    return {name: seconds_ * 1000.0 for name, seconds_ in seconds.items()}


def ai_run_record(
    outcome: ReviewOutcome,
    *,
    fingerprint: str,
    knowledge_base_version: str,
    sampling: SamplingParameters,
    at: datetime,
    identity: ModelIdentity | None = None,
) -> AiRunRecord:
    """The record of one review. Card uuids are those `ai_cards(..., fingerprint=fingerprint)` gives.

    `identity` stands in for the model when the outcome has none (the model failed before answering).
    """
    decision = outcome.decision
    summary = None
    if decision is not None:
        accepted = tuple(
            AcceptedSuggestion(
                card_uuid=card_uuid(outcome.service_id, g, fingerprint),
                agreement=g.agreement,
                severity=g.severity,
                action_type=g.suggestion.action.type,
                resource_type=g.suggestion.action.resource_type,
                action_code=(
                    f"{g.suggestion.action.code.system}|{g.suggestion.action.code.code}"
                    if g.suggestion.action.code is not None
                    else None
                ),
                knowledge_ids=g.knowledge_ids,
                patient_handles=g.patient_handles,
                backing_rules=g.backing_rules,
            )
            for g in decision.accepted
        )
        rejections = tuple(
            RejectionCode(sample=r.sample, suggestion=r.suggestion, reason=str(r.reason))
            for r in decision.rejected
        )
        summary = DecisionSummary(
            accepted=accepted, abstain_reason=decision.abstain_reason, rejections=rejections
        )
    model = outcome.model or identity
    prompt = outcome.prompt
    if outcome.failed:
        status: RunOutcome = "failed"
    else:
        status = "accepted" if summary is not None and summary.accepted else "abstained"
    return AiRunRecord(
        at=at,
        fingerprint=fingerprint,
        service_id=outcome.service_id,
        outcome=status,
        error=outcome.error,
        transient=outcome.transient,
        recorded=outcome.recorded,
        model=ModelInfo.of(model) if model is not None else None,
        request_id=outcome.request_id,
        prompt=(
            PromptInfo(
                template_name=prompt.template_name,
                template_version=prompt.template_version,
                template_hash=prompt.template_hash,
            )
            if prompt is not None
            else None
        ),
        knowledge_base_version=knowledge_base_version,
        sampling=SamplingInfo.of(sampling),
        usage=UsageInfo.of(outcome.usage) if outcome.usage is not None else None,
        samples=tuple(
            SampleCode(index=s.index, finish_reason=s.finish_reason, outcome=s.outcome)
            for s in outcome.samples
        ),
        passage_ids=prompt.passage_ids if prompt is not None else outcome.retrieval.ids,
        decision=summary,
        timings_ms=_ms(outcome.timings),
    )


def _as_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def feedback_audit_record(
    item: FeedbackRecord, *, at: datetime, user: str | None = None
) -> CardFeedbackRecord:
    """The record of one feedback item; its free-text comment is dropped."""
    reason = item.override_reason
    return CardFeedbackRecord(
        at=at,
        service_id=item.service_id,
        card_uuid=item.card_uuid,
        outcome=item.outcome,
        outcome_timestamp=_as_utc(item.outcome_timestamp),
        override_reason=OverrideReason(system=reason.system, code=reason.code) if reason else None,
        accepted_suggestions=item.accepted_suggestions,
        user=user,
        tenant=item.tenant,
    )


# --- the chain --------------------------------------------------------------------------------------------


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as the chain holds it: its position, its link to the previous one, its canonical text."""

    seq: int  # 1, 2, 3, ... without gaps
    prev_hash: str
    hash: str
    body: str  # canonical(record), exactly as hashed

    @property
    def record(self) -> AuditRecord:
        return parse_record(self.body)


def link(record: AuditRecord, previous: StoredRecord | None) -> StoredRecord:
    """The next link after `previous` (None: the first record of a chain)."""
    seq, prev_hash = (previous.seq + 1, previous.hash) if previous is not None else (1, GENESIS)
    body = canonical(record)
    return StoredRecord(seq, prev_hash, chain_hash(prev_hash, body), body)


BreakReason = Literal["seq", "prev-hash", "hash", "unreadable", "index", "head"]
_EXPLAINED: Final[Mapping[BreakReason, str]] = {
    "seq": "its position is not the next one (a record is missing, inserted or moved)",
    "prev-hash": "it does not link to the record before it (one was removed, inserted or moved)",
    "hash": "its content does not match its hash (the record was edited)",
    "unreadable": "its content is not a valid audit record",
    "index": "its stored time or kind columns do not match its content",
    "head": "the chain head does not match the last record (records were removed at the end)",
}


@dataclass(frozen=True, slots=True)
class ChainBreak:
    position: int  # 0-based index in what was verified
    seq: int | None  # the stored seq of the record found there
    reason: BreakReason

    def describe(self) -> str:
        where = f"record seq {self.seq}" if self.seq is not None else f"position {self.position}"
        return f"{where} ({self.reason}): {_EXPLAINED[self.reason]}"


@dataclass(slots=True)
class ChainVerifier:
    """Checks links one at a time (so a store can stream millions); stops counting at the first break."""

    expected_seq: int = 1
    last_hash: str = GENESIS
    position: int = 0
    broken: ChainBreak | None = field(default=None)

    def feed(self, stored: StoredRecord) -> ChainBreak | None:
        if self.broken is not None:
            return self.broken
        reason: BreakReason | None = None
        if stored.prev_hash != self.last_hash:
            reason = "prev-hash"
        elif stored.seq != self.expected_seq:
            reason = "seq"
        elif chain_hash(stored.prev_hash, stored.body) != stored.hash:
            reason = "hash"
        if reason is not None:
            self.broken = ChainBreak(self.position, stored.seq, reason)
            return self.broken
        self.expected_seq += 1
        self.last_hash = stored.hash
        self.position += 1
        return None

    def fail(self, position: int, seq: int | None, reason: BreakReason) -> ChainBreak:
        """Records a break found by a check beyond the links (content, index columns, head); first one wins."""
        if self.broken is None:
            self.broken = ChainBreak(position, seq, reason)
        return self.broken

    @property
    def count(self) -> int:
        """Records verified so far (before the break, if any)."""
        return self.position


def find_break(
    records: Iterable[StoredRecord], *, after_seq: int = 0, after_hash: str = GENESIS
) -> ChainBreak | None:
    """The first broken link, or None; `after_*` start the check after a trusted record (default: genesis)."""
    verifier = ChainVerifier(expected_seq=after_seq + 1, last_hash=after_hash)
    for stored in records:
        found = verifier.feed(stored)
        if found is not None:
            return found
    return None


def verify_chain(records: Iterable[StoredRecord]) -> int | None:
    """The 0-based position of the first record that breaks the chain from genesis, or None when intact.

    An edit breaks the edited record (hash); a deletion, insertion or move breaks the first record after
    it whose `prev_hash` no longer names its predecessor.
    """
    found = find_break(records)
    return found.position if found is not None else None


# --- the port ---------------------------------------------------------------------------------------------


class AuditSink(Protocol):
    async def append(self, record: AuditRecord) -> None:
        """Store the record at the end of the chain; raise if it cannot be stored."""
        ...


class MemoryAuditSink:
    """A fake beside the port: one in-process chain, for unit tests and single-process demos."""

    def __init__(self) -> None:
        self.chain: list[StoredRecord] = []

    async def append(self, record: AuditRecord) -> None:
        self.write(record)

    def write(self, record: AuditRecord) -> StoredRecord:
        stored = link(record, self.chain[-1] if self.chain else None)
        self.chain.append(stored)
        return stored

    @property
    def records(self) -> list[AuditRecord]:
        return [stored.record for stored in self.chain]


# --- FHIR R4 AuditEvent and Provenance --------------------------------------------------------------------


def _instant(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _device(system: str, value: str, display: str) -> dict[str, Any]:
    return {"type": "Device", "identifier": _identifier(system, value), "display": display}


def _card_reference(uuid_text: str) -> dict[str, Any]:
    if re.fullmatch(_UUID, uuid_text):
        return {"identifier": _identifier(URI_SYSTEM, f"urn:uuid:{uuid_text}"), "display": "CDS card"}
    return {"identifier": _identifier(CARD_SYSTEM, uuid_text), "display": "CDS card"}


def _event_outcome(record: HookCallRecord) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (the call was refused), 8 serious failure (ours)."""
    if record.outcome == "error" or record.http_status >= 500:
        return "8"
    if record.http_status >= 400:
        return "4"
    return "0"


def audit_event(
    record: HookCallRecord,
    *,
    resource_id: str | None = None,
    product: str = "R1 CDS",
    site: str | None = None,
) -> dict[str, Any]:
    """One FHIR R4 AuditEvent for one hook call (RESTful operation, action E, the EHR as requestor)."""
    service = _device(SERVICE_SYSTEM, record.service_id, f"{product} service {record.service_id}")
    requestor: dict[str, Any] = (
        {"type": "Device", "identifier": _identifier(TENANT_SYSTEM, record.tenant), "display": record.tenant}
        if record.tenant is not None
        else {"display": "unauthenticated caller (authentication off)"}
    )
    details = [
        {"type": "hook", "valueString": record.hook},
        {"type": "http-status", "valueString": str(record.http_status)},
    ]
    details += [
        {"type": f"timing-ms.{name}", "valueString": f"{ms:g}"}
        for name, ms in sorted(record.timings_ms.items())
    ]
    details += [{"type": "card", "valueString": card} for card in record.card_uuids]
    entities: list[dict[str, Any]] = [
        {
            "what": {"identifier": _identifier(HOOK_INSTANCE_SYSTEM, record.hook_instance)},
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "name": "hookInstance",
            "detail": details,
        }
    ]
    if record.fingerprint is not None:
        entities.append(
            {
                "what": {"identifier": _identifier(FINGERPRINT_SYSTEM, record.fingerprint)},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "name": "review fingerprint (de-identified context)",
            }
        )
    event: dict[str, Any] = {"resourceType": "AuditEvent"}
    if resource_id is not None:
        event["id"] = resource_id
    event |= {
        "type": {"system": _AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": HOOK_SYSTEM, "code": record.hook, "display": f"CDS Hooks {record.hook}"}],
        "action": "E",
        "recorded": _instant(record.at),
        "outcome": _event_outcome(record),
        "outcomeDesc": record.outcome,
        "agent": [
            {
                "type": {"coding": [{"system": _DICOM, "code": "110153", "display": "Source Role ID"}]},
                "who": requestor,
                "requestor": True,
            },
            {
                "type": {"coding": [{"system": _DICOM, "code": "110152", "display": "Destination Role ID"}]},
                "who": service,
                "requestor": False,
            },
        ],
        "source": {
            "observer": service,
            "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    if site is not None:
        event["source"]["site"] = site
    total = record.timings_ms.get("total")
    if total is not None:
        end = record.at + timedelta(milliseconds=total)
        event["period"] = {"start": _instant(record.at), "end": _instant(end)}
    return event


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _ai_device(model: ModelInfo | ModelIdentity, card: ModelCardLink) -> dict[str, Any]:
    """The model as an AI Transparency AI-Device, to be contained: its id and backend, version facts, card."""
    details = dict(model.details)
    extensions: list[dict[str, Any]] = []
    if card.family != "scripted":  # the scripted backend replays canned answers: no model, no kind of AI
        extensions.append(
            {
                "url": AI_KIND_EXTENSION,
                "valueCodeableConcept": {
                    "coding": [
                        _coding(AI_DEVICE_TYPE_SYSTEM, "Large-Language-Models", "Large Language Models")
                    ]
                },
            }
        )
    extensions.append({"url": MODEL_CARD_EXTENSION, "valueReference": {"reference": f"#{MODEL_CARD_ID}"}})
    device: dict[str, Any] = {
        "resourceType": "Device",
        "id": AI_DEVICE_ID,
        "meta": {"profile": [AI_DEVICE_PROFILE]},
        "extension": extensions,
        "identifier": [_identifier(MODEL_SYSTEM, model.model)],
        "deviceName": [{"name": model.model, "type": "model-name"}],
        "type": {
            "coding": [
                _coding(
                    AI_DEVICE_TYPE_SYSTEM, "Artificial-Intelligence", "All kinds of Artificial Intelligence"
                )
            ]
        },
    }
    versions = [
        {"type": {"text": key}, "value": details.pop(key)} for key in _VERSION_DETAILS if key in details
    ]
    if versions:
        device["version"] = versions
    device["property"] = [
        {"type": {"text": key}, "valueCode": [{"text": value}]}
        for key, value in [("backend", model.backend), *sorted(details.items())]
    ]
    return device


def _model_card_document(card: ModelCardLink, url: str | None) -> dict[str, Any]:
    """The model card as an AI Transparency AI-ModelCard DocumentReference, to be contained.

    Its first content is the card R1 CDS publishes (`url` when the exporter knows the deployment's public
    address, else only where it is served); then the pages the model's developer publishes about it.
    """
    ours: dict[str, Any] = {"contentType": "application/json", "title": f"{card.product} model card"}
    if url is not None:
        ours["url"] = url
    else:
        ours["title"] += f" (served by the deployment at {ABOUT_JSON_PATH})"
    caveat = "" if card.clinically_meaningful else "; the model it describes is not clinically meaningful"
    return {
        "resourceType": "DocumentReference",
        "id": MODEL_CARD_ID,
        "meta": {"profile": [AI_MODEL_CARD_PROFILE]},
        "identifier": [_identifier(MODEL_CARD_SYSTEM, f"{card.version}/{card.family}")],
        "status": "current",
        "type": {"coding": [_coding(AI_MODEL_CARD_SYSTEM, "AIModelCard", "AI Model-Card")]},
        "category": [{"text": "HTI-1 source attributes (45 CFR 170.315(b)(11)(iv)(B))"}],
        "description": f"{card.product} {card.version} model card for {card.label}{caveat}",
        "content": [
            {"attachment": ours},
            *(
                {"attachment": {"contentType": "text/html", "url": ref.url, "title": ref.label}}
                for ref in card.references
            ),
        ],
    }


def _prompt_document(prompt: PromptInfo) -> dict[str, Any]:
    """The prompt template as an input-prompt DocumentReference, to be contained: named and hashed only.

    The prompt as sent held a de-identified chart summary, which no record keeps; the template it was
    filled from is named by version and content hash (the first 12 hex digits of its SHA-256)."""
    name = f"{prompt.template_name}@{prompt.template_version}"
    return {
        "resourceType": "DocumentReference",
        "id": PROMPT_ID,
        "identifier": [
            _identifier(PROMPT_TEMPLATE_SYSTEM, name),
            _identifier(PROMPT_HASH_SYSTEM, prompt.template_hash),
        ],
        "status": "current",
        "type": {"coding": [_coding(AI_MODEL_CARD_SYSTEM, "AIInputPrompt", "AI Input Prompt")]},
        "description": (
            f"Prompt template {name}, content hash {prompt.template_hash} (SHA-256, first 12 hex digits), "
            "filled with a de-identified chart summary that is not kept"
        ),
        "content": [{"attachment": {"contentType": "text/plain", "title": f"prompt template {name}"}}],
    }


def _confidence(agreement: tuple[int, int]) -> dict[str, Any]:
    """AIconfidence as governance measured it: k of n independent samples proposed the suggestion.

    A string, because the extension's decimal and Quantity mean a probability that the result is correct,
    and sample agreement is no calibrated probability."""
    k, n = agreement
    return {
        "url": AI_CONFIDENCE_EXTENSION,
        "valueString": f"{k}/{n} independent model samples agreed (governed sample agreement)",
    }


def provenance(
    card: str,
    *,
    recorded: datetime,
    model: ModelInfo | ModelIdentity,
    service_id: str,
    knowledge_ids: Sequence[str],
    inputs: Sequence[str] = (),
    fingerprint: str | None = None,
    knowledge_base_version: str | None = None,
    prompt: PromptInfo | None = None,
    agreement: tuple[int, int] | None = None,
    model_card_url: str | None = None,
    resource_id: str | None = None,
    product: str = "R1 CDS",
) -> dict[str, Any]:
    """One FHIR R4 Provenance for one AI card, in the shape of AI Transparency on FHIR's AI-Provenance.

    The model authored the card (an AI-Device, contained, that points at its AI-ModelCard, contained too);
    our service assembled it under governance. Entities: what the model read (`inputs`, FHIR references
    the caller holds; the audit records hold none, so an export names the de-identified context by
    `fingerprint`), the knowledge-base entries cited, the model card and the prompt template. `agreement`
    (k of n samples) is the governed confidence, in the AIconfidence extension. The AIAST reason says the
    card's content was asserted by an AI.
    """
    card_link = model_card_link(model.backend, model.model)
    device = _ai_device(model, card_link)
    contained = [device, _model_card_document(card_link, model_card_url)]
    entities: list[dict[str, Any]] = [{"role": "source", "what": {"reference": ref}} for ref in inputs]
    if fingerprint is not None:
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": _identifier(FINGERPRINT_SYSTEM, fingerprint),
                    "display": "de-identified clinical context",
                },
            }
        )
    suffix = f" (knowledge base {knowledge_base_version})" if knowledge_base_version else ""
    entities += [
        {
            "role": "source",
            "what": {"identifier": _identifier(KNOWLEDGE_SYSTEM, kb), "display": f"{kb}{suffix}"},
        }
        for kb in knowledge_ids
    ]
    entities.append(
        {
            "role": "derivation",
            "what": {"reference": f"#{MODEL_CARD_ID}", "type": "DocumentReference", "display": "model card"},
        }
    )
    if prompt is not None:
        contained.append(_prompt_document(prompt))
        entities.append(
            {
                "role": "derivation",
                "what": {
                    "reference": f"#{PROMPT_ID}",
                    "type": "DocumentReference",
                    "display": "prompt template",
                },
            }
        )
    resource: dict[str, Any] = {"resourceType": "Provenance"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [AI_PROVENANCE_PROFILE]}
    resource["contained"] = contained
    if agreement is not None:
        resource["extension"] = [_confidence(agreement)]
    author = {
        "type": "Device",
        "reference": f"#{AI_DEVICE_ID}",
        "identifier": _identifier(MODEL_SYSTEM, model.model),
        "display": model.model,
    }
    resource |= {
        "target": [_card_reference(card)],
        "recorded": _instant(recorded),
        "reason": [{"coding": [dict(AI_ASSERTED)]}],
        "activity": {"coding": [{"system": _DATA_OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [
            {
                "type": {"coding": [{"system": _PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
                "role": [
                    {
                        "coding": [
                            _coding(
                                AI_DEVICE_TYPE_SYSTEM,
                                "Artificial-Intelligence",
                                "All kinds of Artificial Intelligence",
                            )
                        ]
                    }
                ],
                "who": author,
            },
            {
                "type": {
                    "coding": [{"system": _PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}]
                },
                "who": _device(SERVICE_SYSTEM, service_id, f"{product} service {service_id} (governance)"),
            },
        ],
    }
    if prompt is not None:
        resource["policy"] = [
            f"urn:r1cds:prompt-template:{prompt.template_name}:{prompt.template_version}:{prompt.template_hash}"
        ]
    resource["entity"] = entities
    return resource


def provenances(
    run: AiRunRecord, *, id_seed: str | None = None, model_card_url: str | None = None
) -> list[dict[str, Any]]:
    """A Provenance per accepted card of a run, from the record alone (no patient references)."""
    if run.decision is None or run.model is None:
        return []
    return [
        provenance(
            accepted.card_uuid,
            recorded=run.at,
            model=run.model,
            service_id=run.service_id,
            knowledge_ids=accepted.knowledge_ids,
            fingerprint=run.fingerprint,
            knowledge_base_version=run.knowledge_base_version,
            prompt=run.prompt,
            agreement=accepted.agreement,
            model_card_url=model_card_url,
            resource_id=(
                str(uuid.uuid5(EXPORT_NAMESPACE, f"{id_seed}/{accepted.card_uuid}")) if id_seed else None
            ),
        )
        for accepted in run.decision.accepted
    ]


def fhir_export(
    chain: Iterable[StoredRecord], *, model_card_url: str | None = None
) -> Iterator[dict[str, Any]]:
    """AuditEvent per hook call and Provenance per AI card, in chain order, with ids stable across exports.

    `model_card_url`: where the deployment serves its model card (`<public base>/about.json`), for the
    Provenances' model-card document; without it the document says only the path.

    Feedback records have no resource here: a CDS Hooks feedback call could be one more AuditEvent, but the
    records' own form is the reference for them.
    """
    for stored in chain:
        record = stored.record
        if isinstance(record, HookCallRecord):
            yield audit_event(record, resource_id=str(uuid.uuid5(EXPORT_NAMESPACE, stored.hash)))
        elif isinstance(record, AiRunRecord):
            yield from provenances(record, id_seed=stored.hash, model_card_url=model_card_url)

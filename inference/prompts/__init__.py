"""Versioned DeepSeek-R1 prompt templates: one user turn, no system prompt, laid out for prefix caching."""

# Every prompt is laid out fixed-first, so that SGLang's radix cache reuses the longest possible prefix:
#
#   1. instructions.txt: the same for every service and patient, ending with the output JSON schema
#      (compact, from plugin.suggestions);
#   2. the service's task paragraph and the answer language: the same for every patient of a service;
#   3. the knowledge-base passages plugin.retrieval chose for the patient (id, title, organisation,
#      statement; never versions or URLs, which the card shows);
#   4. the de-identified patient summary, last.
#
# R1 practice (DESIGN §4): no system prompt; all instructions live in the single user turn.
#
# The shared part (1 and 2) stays at least SHARED_PREFIX_SHARE of every prompt, not only of the average
# one (issue 18): past the first MIN_PASSAGES, passages are kept in rank order only while passages and
# summary together fit the share that leaves. A long chart loses its lowest-ranked passages first; the
# passage ids the prompt carried (`BuiltPrompt.passage_ids`) are what governance accepts citations of.
#
# Passages precede the summary on purpose: the model reads the evidence before the facts it must check
# against it, and the question (the task) stays next to the evidence. Moving passages after the summary
# would lengthen the shared prefix only by the passages' share, at the price of putting the instructions
# and evidence furthest from where the answer starts.
#
# Templates are string.Template files: the instruction block takes $schema; a service template takes
# $instructions, $language, $passages and $patient_summary, each exactly once. A template's version is
# bumped by hand with its text; `content_hash` (the first 12 hex digits of a SHA-256 of the text) changes
# with any edit, so the review fingerprint should carry the hash of the composed service template.

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Final

from plugin.catalog import CHART_REVIEW, DISCHARGE_REVIEW, ORDER_REVIEW
from plugin.context.render import estimate_tokens
from plugin.knowledge import KnowledgeEntry
from plugin.suggestions import LANGUAGE_PATTERN, suggestion_json_schema_text

__all__ = [
    "INSTRUCTIONS",
    "MIN_PASSAGES",
    "SERVICE_TEMPLATES",
    "SHARED_PREFIX_SHARE",
    "BuiltPrompt",
    "PromptTemplate",
    "PromptTemplateError",
    "build_prompt",
    "content_hash",
    "fixed_prefix",
    "load_template",
    "service_template",
]

INSTRUCTIONS: Final = "instructions"
SHARED_PREFIX_SHARE: Final = 0.6  # of every prompt's estimated tokens: what the radix cache can reuse
MIN_PASSAGES: Final = 3  # kept whatever the chart's length: the model never reviews without evidence
# name → (file in this package, version); bump the version with every edit of the file.
_FILES: Final[dict[str, tuple[str, str]]] = {
    INSTRUCTIONS: ("instructions.txt", "5"),
    "chart-review": ("chart_review.txt", "2"),
    "order-review": ("order_review.txt", "1"),
    "discharge-review": ("discharge_review.txt", "1"),
}
SERVICE_TEMPLATES: Final[dict[str, str]] = {
    CHART_REVIEW.id: "chart-review",
    ORDER_REVIEW.id: "order-review",
    DISCHARGE_REVIEW.id: "discharge-review",
}
_INSTRUCTION_SLOTS: Final = frozenset({"schema"})
_SERVICE_SLOTS: Final = frozenset({"instructions", "language", "passages", "patient_summary"})
_URL: Final = re.compile(r"://|www\.", re.IGNORECASE)
_NO_PASSAGES: Final = (
    "(No passage matched this patient. Nothing can be cited without a passage, so leave suggestions empty.)"
)


class PromptTemplateError(ValueError):
    """A template file or an input to a prompt breaks the rules above."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: str
    text: str
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_hash", content_hash(self.text))

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(Template(self.text).get_identifiers())


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    text: str  # the whole user turn
    template_name: str
    template_version: str
    template_hash: str  # content hash of the composed service template (instructions and schema included)
    passage_ids: tuple[str, ...]  # the knowledge ids in the prompt, in prompt order: the only citable ones


def _checked(template: PromptTemplate, expected: frozenset[str]) -> PromptTemplate:
    parsed = Template(template.text)
    if not parsed.is_valid():
        raise PromptTemplateError(f"template {template.name} has a malformed $ placeholder")
    if template.slots != expected:
        raise PromptTemplateError(
            f"template {template.name} has slots {sorted(template.slots)}, expected {sorted(expected)}"
        )
    for slot in expected:
        if len(re.findall(rf"\$(?:{slot}\b|\{{{slot}\}})", template.text)) != 1:
            raise PromptTemplateError(f"template {template.name} must use ${slot} exactly once")
    return template


@functools.cache
def load_template(name: str) -> PromptTemplate:
    """One template file, read from the package on first use and checked."""
    if name not in _FILES:
        raise PromptTemplateError(f"no template named {name!r}; known: {sorted(_FILES)}")
    file, version = _FILES[name]
    text = resources.files(__name__).joinpath(file).read_text(encoding="utf-8")
    return _checked(
        PromptTemplate(name, version, text), _INSTRUCTION_SLOTS if name == INSTRUCTIONS else _SERVICE_SLOTS
    )


@functools.cache
def service_template(service_id: str) -> PromptTemplate:
    """A service's template with the instruction block and the output schema filled in.

    What is left are the slots that vary per call: $language, $passages, $patient_summary. Dollar signs of
    the schema (its regex anchors) are escaped as "$$", which the final substitution turns back into "$".
    """
    name = SERVICE_TEMPLATES.get(service_id)
    if name is None:
        raise PromptTemplateError(f"no prompt for service {service_id!r}; known: {sorted(SERVICE_TEMPLATES)}")
    common = load_template(INSTRUCTIONS)
    task = load_template(name)
    instructions = Template(common.text).substitute(schema=suggestion_json_schema_text().replace("$", "$$"))
    text = Template(task.text).substitute(
        instructions=instructions.rstrip("\n"),
        language="$language",
        passages="$passages",
        patient_summary="$patient_summary",
    )
    return PromptTemplate(name, f"{name}/{task.version}+{common.name}/{common.version}", text)


def _check_language(language: str) -> None:
    if not re.fullmatch(LANGUAGE_PATTERN, language):
        raise PromptTemplateError(f"language {language!r} is not a BCP 47 tag such as 'en' or 'pt-BR'")


def _passage(entry: KnowledgeEntry) -> str:
    # The organisation tells the model how much weight a passage carries (a label, a guideline); the version
    # and link are the clinician's, shown on the card.
    text = f"[{entry.id}] {entry.title} ({entry.source.organisation})\n{entry.statement}"
    if _URL.search(text):
        # The model must never see a URL it could copy; knowledge entries carry theirs in source.url only.
        raise PromptTemplateError(f"knowledge entry {entry.id} has a URL in its title, statement or source")
    return text


def fixed_prefix(service_id: str, language: str = "en") -> str:
    """What every prompt of a service starts with, whatever the patient: everything before the passages."""
    _check_language(language)
    marker = "\x00"
    text = Template(service_template(service_id).text).substitute(
        language=language, passages=marker, patient_summary=marker
    )
    return text.split(marker, 1)[0]


def _within_share(
    service_id: str, language: str, patient_summary: str, passages: list[KnowledgeEntry]
) -> list[KnowledgeEntry]:
    """The passages, in rank order, that keep the fixed prefix at SHARED_PREFIX_SHARE of the prompt (never
    fewer than MIN_PASSAGES)."""
    if len(passages) <= MIN_PASSAGES:
        return passages
    fixed = estimate_tokens(fixed_prefix(service_id, language))
    allowance = fixed * (1 - SHARED_PREFIX_SHARE) / SHARED_PREFIX_SHARE - estimate_tokens(patient_summary)
    kept = passages[:MIN_PASSAGES]
    for entry in passages[MIN_PASSAGES:]:
        if estimate_tokens("\n\n".join(_passage(e) for e in (*kept, entry))) > allowance:
            break
        kept.append(entry)
    return kept


def build_prompt(
    service_id: str, patient_summary: str, passages: Sequence[KnowledgeEntry], language: str = "en"
) -> BuiltPrompt:
    """The user turn for one review: instructions and schema, task, passages (deduplicated, and trimmed to keep
    the shared prefix's share), summary last."""
    _check_language(language)
    template = service_template(service_id)
    unique: list[KnowledgeEntry] = []
    for entry in passages:
        if all(entry.id != kept.id for kept in unique):
            unique.append(entry)
    unique = _within_share(service_id, language, patient_summary, unique)
    blocks = [_passage(entry) for entry in unique]
    text = Template(template.text).substitute(
        language=language,
        passages="\n\n".join(blocks) if blocks else _NO_PASSAGES,
        patient_summary=patient_summary.strip(),
    )
    return BuiltPrompt(
        text=text.rstrip("\n") + "\n",
        template_name=template.name,
        template_version=template.version,
        template_hash=template.content_hash,
        passage_ids=tuple(entry.id for entry in unique),
    )

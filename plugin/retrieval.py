"""Knowledge-base passages for one clinical context: code-selected candidates ranked by BM25."""

# Two stages, both deterministic:
#
# 1. Candidates by code. An entry is a candidate when its applies_to names an ingredient or drug class of a
#    current medication or draft MedicationRequest (plugin.terminology maps products to both), a value set
#    of an active problem (pregnancy included when the chart records it), a SNOMED CT or ICD-10 code of a
#    problem, or the LOINC code of an analyte measured in the chart; or when it has a population (age, sex)
#    and the patient's known age falls inside it (preventive care). Entries whose population excludes the
#    patient are never candidates. Codes select, text never does: BM25 only orders what the chart's codes
#    already justify, so an entry cannot be retrieved because a word happens to match.
# 2. Ranking in four tiers, each ordered by score:
#    0. entries a deterministic rule (plugin.rules) cites about a draft order: the order being written is
#       what order review is for, and what the safety layer found about it comes first;
#    1. other entries about a draft order's drug;
#    2. entries a rule cites about the rest of the chart (warfarin with naproxen, an overdue INR): the model
#       must see what the warning and critical rule cards say, so that it neither contradicts nor merely
#       repeats them; entries cited only by info cards (a routine lab, a vaccine, a therapy to consider) and
#       preventive entries are not lifted, since the model has nothing to add to them and the budget is small;
#    3. the rest.
#    The score is BM25 (rank-bm25's Okapi variant) over each entry's title and statement, against a query of
#    the medication ingredients and drug classes, the problem displays and the draft orders, plus a code
#    coverage bonus: CODE_WEIGHT times the share of the entry's drug classes the chart has (of its
#    ingredients when it names no class), plus the share of its value sets (of its SNOMED CT and ICD-10
#    codes when it names none), plus half the share of its LOINC analytes measured in the chart. Text alone
#    ranks an entry by how many query words it repeats, which buries the entry most specific to one drug
#    ("INR monitoring on warfarin" shares one word with a warfarin chart's query) under entries that merely
#    mention several of the chart's drugs; coverage puts back what the codes say. Within a tier: score
#    descending (rounded, so float noise cannot reorder ties), then id ascending; at most `limit`.
#
#    The limit is small on purpose (DEFAULT_LIMIT): each passage costs ~90 prompt tokens that no other
#    patient shares, and SGLang's radix cache only saves the prefix common to all patients of a service
#    (bench/prompt_prefix measures the share). Six well-ranked passages leave the fixed instructions the
#    larger part of the prompt.
#
# The BM25 index covers the whole knowledge base and is built on first use per knowledge-base version,
# never at import (the knowledge base itself loads lazily too); a small cache keeps the last few versions.

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

from plugin.context import codes
from plugin.context.model import ClinicalContext
from plugin.knowledge import KnowledgeBase, KnowledgeEntry
from plugin.rules.engine import run_rules
from plugin.rules.model import RuleFacts

__all__ = ["CODE_WEIGHT", "DEFAULT_LIMIT", "Retrieval", "query_terms", "retrieve", "tokenize"]

DEFAULT_LIMIT: Final = 6
CODE_WEIGHT: Final = 10.0
_CACHE_SIZE: Final = 4
_SCORE_DIGITS: Final = 9
_TOKEN: Final = re.compile(r"[a-z0-9]+")
# Words that carry no clinical meaning in titles, statements or product names.
_STOP: Final = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or",
        "the", "to", "with", "mg", "ml", "oral", "tablet", "capsule", "unt", "hr", "day", "disorder",
        "finding", "situation",
    }
)  # fmt: skip


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric words without stop words; the same for documents and queries."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP and len(t) > 1]


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The passages retrieved for one context, with what is needed to record and audit the choice."""

    entries: tuple[KnowledgeEntry, ...]
    query_terms: tuple[str, ...]
    candidate_count: int  # candidates selected by code, before the limit
    scores: tuple[float, ...] = ()  # BM25 plus coverage score of each entry, same order
    tiers: tuple[int, ...] = ()  # see the module notes; same order

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries)


@dataclass(frozen=True, slots=True)
class _Index:
    ids: tuple[str, ...]
    position: dict[str, int]
    bm25: BM25Okapi
    analytes: dict[str, frozenset[str]]  # entry id → analyte keys of its LOINC codes


_cache: OrderedDict[tuple[str, str], _Index] = OrderedDict()
_lock = threading.Lock()


def _analyte_keys(loinc: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for code in loinc:
        analyte = codes.analyte_for_loinc(code)
        found.add(analyte.key if analyte is not None else f"loinc:{code}")
    return frozenset(found)


def _index(knowledge: KnowledgeBase) -> _Index:
    key = (knowledge.name, knowledge.version)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
        entries = sorted(knowledge, key=lambda e: e.id)
        # BM25Okapi cannot take an empty document; a title always has a word, the sentinel is defensive.
        corpus = [tokenize(f"{e.title} {e.statement}") or ["_"] for e in entries]
        built = _Index(
            ids=tuple(e.id for e in entries),
            position={e.id: n for n, e in enumerate(entries)},
            bm25=BM25Okapi(corpus),
            analytes={e.id: _analyte_keys(e.applies_to.loinc) for e in entries},
        )
        _cache[key] = built
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return built


def _words(key: str) -> str:
    return key.replace("-", " ")


def query_terms(context: ClinicalContext, facts: RuleFacts | None = None) -> tuple[str, ...]:
    """The BM25 query: ingredients and classes of medications and drafts, problems, draft orders."""
    facts = facts or RuleFacts.of(context)
    parts: list[str] = []
    for exposure in facts.exposures:
        parts.extend(exposure.ingredients)
        parts.extend(_words(c) for c in sorted(exposure.classes))
    parts.extend(p.code.display for p in context.problems)
    parts.extend(d.code.display for d in context.draft_orders)
    parts.extend(_words(name) for name in sorted(facts.value_sets))
    if facts.pregnant:
        parts.append("pregnancy")
    return tuple(dict.fromkeys(t for part in parts for t in tokenize(part)))


def _icd10_matches(entry_code: str, chart_codes: set[str]) -> bool:
    return any(c.startswith(entry_code.replace(".", "")) for c in chart_codes)


@dataclass(frozen=True, slots=True)
class _Chart:
    ingredients: frozenset[str]
    classes: frozenset[str]
    value_sets: frozenset[str]
    snomed: frozenset[str]
    icd10: set[str]
    analytes: frozenset[str]
    age: int | None
    sex: str | None

    @classmethod
    def of(cls, context: ClinicalContext, facts: RuleFacts) -> _Chart:
        return cls(
            ingredients=frozenset(name for e in facts.exposures for name in e.ingredients),
            classes=frozenset(key for e in facts.exposures for key in e.classes),
            value_sets=frozenset(facts.value_sets) | ({"pregnancy"} if facts.pregnant else frozenset()),
            snomed=frozenset(p.code.code for p in context.problems if p.code.system == "snomed"),
            icd10={
                p.code.code.replace(".", "").upper() for p in context.problems if p.code.system == "icd10"
            },
            analytes=frozenset(series.analyte for series in context.labs),
            age=facts.age,
            sex=context.demographics.sex if context.demographics.sex in ("female", "male") else None,
        )


def _share(matched: int, total: int) -> float:
    return matched / total if total else 0.0


def _coverage(entry: KnowledgeEntry, chart: _Chart, analytes: frozenset[str]) -> float | None:
    """The entry's code-coverage score, or None when no code of the chart selects it."""
    applies = entry.applies_to
    drugs = sum(1 for i in applies.ingredients if i in chart.ingredients) + sum(
        1 for c in applies.classes if c in chart.classes
    )
    value_sets = sum(1 for v in applies.value_sets if v in chart.value_sets)
    codes = sum(1 for c in applies.snomed if c in chart.snomed) + sum(
        1 for c in applies.icd10 if _icd10_matches(c, chart.icd10)
    )
    labs = len(analytes & chart.analytes)
    # A population entry is about the patient's age and sex themselves, known only with the age.
    population = entry.population is not None and chart.age is not None
    if not (drugs or value_sets or codes or labs or population):
        return None
    # Classes are the sides of an entry (an interaction names two); its ingredients are members of them,
    # often listed as alternatives, so a share of ingredients would punish an entry for being thorough.
    # Value sets likewise group the SNOMED CT and ICD-10 codes that spell the same condition.
    if applies.classes:
        drug_share = _share(sum(1 for c in applies.classes if c in chart.classes), len(applies.classes))
    else:
        drug_share = _share(drugs, len(applies.ingredients))
    if applies.value_sets:
        condition_share = _share(value_sets, len(applies.value_sets))
    else:
        condition_share = _share(codes, len(applies.snomed) + len(applies.icd10))
    if drug_share == 0.0 and (applies.classes or applies.ingredients):
        # About a drug the patient does not take (a DOAC's renal dosing on a warfarin chart): the shared
        # condition makes it relevant, less so than an entry about the patient's own drugs.
        condition_share /= 2
    return drug_share + condition_share + 0.5 * _share(labs, len(analytes))


def retrieve(context: ClinicalContext, knowledge: KnowledgeBase, limit: int = DEFAULT_LIMIT) -> Retrieval:
    """The passages for this context, most relevant first (see the module notes)."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    index = _index(knowledge)
    facts = RuleFacts.of(context)
    chart = _Chart.of(context, facts)
    findings = run_rules(facts)
    cited_about_drafts = {kb_id for f in findings if f.proposed for kb_id in f.evidence}
    # What an info card says (a routine lab, a vaccine, a therapy to consider) needs nothing from the model.
    asked_loudly = {kb_id for f in findings if f.severity != "info" for kb_id in f.evidence}
    draft_ingredients = {name for e in facts.exposures if e.proposed for name in e.ingredients}
    draft_classes = {key for e in facts.exposures if e.proposed for key in e.classes}
    terms = query_terms(context, facts)
    text_scores = index.bm25.get_scores(list(terms)) if terms else None
    ranked: list[tuple[int, float, str, KnowledgeEntry]] = []
    for entry in knowledge:
        if entry.population is not None and not entry.population.includes(chart.age, chart.sex):
            continue
        coverage = _coverage(entry, chart, index.analytes[entry.id])
        if coverage is None:
            continue
        text = float(text_scores[index.position[entry.id]]) if text_scores is not None else 0.0
        about_draft = bool(
            draft_ingredients.intersection(entry.applies_to.ingredients)
            or draft_classes.intersection(entry.applies_to.classes)
        )
        if entry.id in cited_about_drafts:
            tier = 0
        elif about_draft:
            tier = 1
        else:
            tier = 2 if entry.id in asked_loudly and entry.kind != "preventive" else 3
        ranked.append((tier, round(text + CODE_WEIGHT * coverage, _SCORE_DIGITS), entry.id, entry))
    ranked.sort(key=lambda item: (item[0], -item[1], item[2]))
    kept = ranked[:limit]
    return Retrieval(
        entries=tuple(item[3] for item in kept),
        query_terms=terms,
        candidate_count=len(ranked),
        scores=tuple(item[1] for item in kept),
        tiers=tuple(item[0] for item in kept),
    )

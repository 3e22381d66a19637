"""Retrieval: code-selected candidates ranked by BM25, deterministic, cached per knowledge-base version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plugin import retrieval
from plugin.context.build import build_context
from plugin.context.model import ClinicalContext, Demographics
from plugin.knowledge import load_knowledge_base
from plugin.retrieval import retrieve
from tests.support import governance_corpus as corpus
from tests.support.charts import NOW, chart_path, chart_prefetch, draft_orders, ibuprofen_draft

pytestmark = pytest.mark.unit

NAPROXEN = {
    "resourceType": "MedicationRequest",
    "id": "naproxen",
    "status": "active",
    "intent": "order",
    "subject": {"reference": corpus.PATIENT},
    "medicationCodeableConcept": {
        "coding": [
            {"system": corpus.RXNORM, "code": "849574", "display": "Naproxen sodium 220 MG Oral Tablet"}
        ]
    },
    "authoredOn": "2026-11-01",
}


def warfarin_nsaid_chart() -> ClinicalContext:
    prefetch = corpus.prefetch()
    prefetch["medications"]["entry"].append({"resource": NAPROXEN})
    return build_context(prefetch, corpus.NOW).context


def test_warfarin_nsaid_chart_retrieves_the_interaction_before_unrelated_entries() -> None:
    kb = load_knowledge_base()
    found = retrieve(warfarin_nsaid_chart(), kb, limit=len(kb))
    ids = list(found.ids)
    assert (
        "kb.warfarin-nsaid-bleeding" in retrieve(warfarin_nsaid_chart(), kb).ids
    )  # within the default limit
    assert {"warfarin", "naproxen", "nsaid"} <= set(found.query_terms)
    # Entries about other drugs share only a class (teratogen, nsaid) or a lab with this chart: they may be
    # candidates, but they rank below the interaction and stay out of the default passages.
    unrelated = [i for i in ids if i.startswith(("kb.methotrexate", "kb.lithium", "kb.asthma"))]
    assert unrelated
    assert all(ids.index("kb.warfarin-nsaid-bleeding") < ids.index(i) for i in unrelated)
    assert not set(unrelated) & set(retrieve(warfarin_nsaid_chart(), kb).ids)
    assert ids.index("kb.warfarin-nsaid-bleeding") < ids.index("kb.rivaroxaban-renal-dose")
    assert found.candidate_count == len(ids)


def test_order_is_tier_then_score_descending_then_id_and_deterministic() -> None:
    kb = load_knowledge_base()
    first = retrieve(warfarin_nsaid_chart(), kb, limit=len(kb))
    again = retrieve(warfarin_nsaid_chart(), kb, limit=len(kb))
    assert first == again
    keys = [
        (tier, -score, entry.id)
        for tier, score, entry in zip(first.tiers, first.scores, first.entries, strict=True)
    ]
    assert keys == sorted(keys)
    assert first.tiers[0] == 2 and first.ids[0] == "kb.warfarin-nsaid-bleeding", "the rule's passage leads"


def test_limit_caps_the_result_and_is_a_prefix_of_the_full_ranking() -> None:
    kb = load_knowledge_base()
    full = retrieve(warfarin_nsaid_chart(), kb, limit=len(kb))
    assert len(retrieve(warfarin_nsaid_chart(), kb).entries) == retrieval.DEFAULT_LIMIT
    assert retrieve(warfarin_nsaid_chart(), kb, limit=3).ids == full.ids[:3]
    assert retrieve(warfarin_nsaid_chart(), kb, limit=0).entries == ()
    with pytest.raises(ValueError, match="limit"):
        retrieve(warfarin_nsaid_chart(), kb, limit=-1)


def test_index_is_built_once_per_knowledge_base_version() -> None:
    kb = load_knowledge_base()
    retrieval._cache.clear()
    retrieve(warfarin_nsaid_chart(), kb)
    index = retrieval._cache[(kb.name, kb.version)]
    retrieve(corpus.context(), kb)
    assert retrieval._cache[(kb.name, kb.version)] is index
    assert len(retrieval._cache) == 1


def test_population_entries_follow_age_and_sex() -> None:
    kb = load_knowledge_base()
    woman = retrieve(ClinicalContext(Demographics(50, "female")), kb, limit=len(kb)).ids
    man = retrieve(ClinicalContext(Demographics(50, "male")), kb, limit=len(kb)).ids
    assert "kb.uspstf-breast-cancer-screening-40-74" in woman
    assert "kb.uspstf-breast-cancer-screening-40-74" not in man
    assert retrieve(ClinicalContext(Demographics(None, "unknown")), kb).entries == ()


def test_empty_chart_retrieves_nothing_and_is_recorded() -> None:
    found = retrieve(build_context({}, datetime(2026, 1, 1, tzinfo=UTC)).context, load_knowledge_base())
    assert found.entries == ()
    assert found.query_terms == ()
    assert found.candidate_count == 0


def _order_review_chart(name: str) -> ClinicalContext:
    prefetch, _, patient_id = chart_prefetch(chart_path(name))
    return build_context(prefetch, NOW, draft_orders=draft_orders(ibuprofen_draft(patient_id))).context


def test_order_review_puts_what_the_rules_say_about_the_draft_first() -> None:
    # Derek Becker takes warfarin and naproxen; the draft adds ibuprofen.
    kb = load_knowledge_base()
    found = retrieve(_order_review_chart("Derek_Becker"), kb, limit=len(kb))
    assert list(found.tiers) == sorted(found.tiers)
    leading = {i for i, tier in zip(found.ids, found.tiers, strict=True) if tier == 0}
    assert leading == {"kb.warfarin-nsaid-bleeding", "kb.duplicate-nsaids"}
    about_draft = [e for e, tier in zip(found.entries, found.tiers, strict=True) if tier == 1]
    assert about_draft
    assert all(
        {"ibuprofen", "nsaid"} & {*e.applies_to.ingredients, *e.applies_to.classes} for e in about_draft
    )


def test_chart_review_leads_with_what_the_rules_cite_then_ranks_the_rest() -> None:
    # Christin Stiedemann takes digoxin with verapamil, and warfarin with no INR on record.
    prefetch, _, _ = chart_prefetch(chart_path("Christin_Stiedemann"))
    found = retrieve(build_context(prefetch, NOW).context, load_knowledge_base())
    assert set(found.tiers) <= {2, 3}, "no draft order, no draft tiers"
    cited = {i for i, tier in zip(found.ids, found.tiers, strict=True) if tier == 2}
    assert {"kb.digoxin-verapamil-diltiazem", "kb.warfarin-inr-monitoring"} <= cited
    assert found.ids[: len(cited)] == tuple(i for i in found.ids if i in cited)


def test_a_vaccine_the_rules_already_asked_for_is_not_lifted_above_drug_passages() -> None:
    # Christin Stiedemann (78) has no zoster or RSV vaccine on record, so the vaccine rules cite their
    # preventive entries; those rank as ordinary candidates, while the drug entries the rules cite lead.
    prefetch, _, _ = chart_prefetch(chart_path("Christin_Stiedemann"))
    context = build_context(prefetch, NOW).context
    kb = load_knowledge_base()
    everything = retrieve(context, kb, limit=len(kb))
    tier_of = dict(zip(everything.ids, everything.tiers, strict=True))
    preventive = [e.id for e in everything.entries if e.kind == "preventive"]
    assert "kb.acip-recombinant-zoster-50-plus" in preventive
    assert all(tier_of[i] == 3 for i in preventive)
    assert tier_of["kb.digoxin-verapamil-diltiazem"] == 2

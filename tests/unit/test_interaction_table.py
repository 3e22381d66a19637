"""The interaction table (knowledge/interaction_pairs.json): its validation, and how a side names its drugs."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from plugin.errors import PluginError
from plugin.rules import registry
from plugin.rules.catalog import INTERACTIONS, NEW_START_DAYS
from plugin.rules.interactions import (
    Interaction,
    InteractionTableError,
    interaction_table,
    parse_interaction_table,
)
from plugin.rules.model import RuleFacts
from tests.support.rule_cases import Chart, draft, med

pytestmark = pytest.mark.unit


def raw_table() -> dict[str, Any]:
    text = resources.files("plugin").joinpath("knowledge/interaction_pairs.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def with_pair(**changes: Any) -> dict[str, Any]:
    """The packaged table with its first pair changed (a value of None removes the key)."""
    table = copy.deepcopy(raw_table())
    for key, value in changes.items():
        if value is None:
            table["pairs"][0].pop(key, None)
        else:
            table["pairs"][0][key] = value
    return table


def test_the_packaged_table_is_the_catalogs_and_every_pair_runs() -> None:
    table = interaction_table()
    assert table == INTERACTIONS
    assert len(table) >= 31
    medication_rules = set(registry.MEDICATION_RULES)
    assert all(pair in medication_rules for pair in table)
    # Every rule id in the product is one rule's, the table's included.
    pair_ids = [r.rule_id for r in registry.MEDICATION_RULES if isinstance(r, Interaction)]
    assert len(pair_ids) == len(set(pair_ids))


def test_the_raas_potassium_pair_speaks_for_a_start_as_the_catalog_defines_one() -> None:
    (raas,) = [p for p in interaction_table() if p.rule_id == "rule.raas-potassium"]
    assert raas.new_within_days == NEW_START_DAYS


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"rule_id": "vka-nsaid"}, "rule_id is rule."),
        ({"rule_id": None}, "needs rule_id"),
        ({"severity": "severe"}, "severity is one of"),
        ({"left": ["not-a-class"]}, "unknown classes ['not-a-class']"),
        ({"right_unless": ["nsaids"]}, "unknown classes ['nsaids']"),
        ({"left": [], "left_named": []}, "each side names a class or an ingredient"),
        ({"right_named": ["warfarine"]}, "other than their reviewed names: ['warfarine']"),
        ({"right_named": ["Warfarin"]}, "other than their reviewed names: ['Warfarin']"),
        ({"right_named": "warfarin"}, "right_named is a list of names"),
        ({"evidence": []}, "evidence is a non-empty list"),
        ({"evidence": [{"kb": "kb.warfarin-nsaid-bleeding"}]}, "exactly when and kb"),
        ({"evidence": [{"when": "*", "kb": "warfarin"}]}, "evidence names a kb id"),
        ({"new_within_days": 0}, "new_within_days is a whole number"),
        ({"new_within_days": True}, "new_within_days is a whole number"),
        ({"right_systemic_only": "yes"}, "right_systemic_only is true or false"),
        ({"colour": "red"}, "unknown keys ['colour']"),
    ],
)
def test_a_malformed_pair_is_refused_with_its_problem_named(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InteractionTableError, match=r"interaction_pairs\.json") as caught:
        parse_interaction_table(with_pair(**changes))
    assert problem in str(caught.value)
    assert isinstance(caught.value, PluginError)


def test_a_repeated_rule_id_and_a_table_without_a_version_are_refused() -> None:
    table = raw_table()
    table["pairs"].append(copy.deepcopy(table["pairs"][0]))
    with pytest.raises(InteractionTableError, match="rule ids repeated"):
        parse_interaction_table(table)
    with pytest.raises(InteractionTableError, match="needs a version"):
        parse_interaction_table({"pairs": []})
    with pytest.raises(InteractionTableError, match="a pair is an object"):
        parse_interaction_table({"version": "1", "pairs": ["rule.vka-nsaid"]})


def _pair(rule_id: str) -> Interaction:
    (found,) = [p for p in interaction_table() if p.rule_id == rule_id]
    return found


def _fires(rule_id: str, *resources: dict[str, Any], drafts: tuple[dict[str, Any], ...] = ()) -> bool:
    facts = RuleFacts.of(Chart(age=50, resources=resources, drafts=drafts).build().context)
    return any(f.rule_id == rule_id for f in _pair(rule_id)(facts))


def test_a_named_mineral_counts_in_every_salt_and_not_on_the_skin() -> None:
    rule = "rule.integrase-inhibitor-cation"
    assert _fires(rule, med("dolutegravir"), med("calcium-carbonate"))
    assert not _fires(rule, med("dolutegravir"), med("famotidine"))
    zinc_paste = {
        **med("famotidine", resource_id="zinc-paste"),
        "medicationCodeableConcept": {"text": "zinc oxide 40 % Topical Paste"},
    }
    zinc_capsule = {**zinc_paste, "medicationCodeableConcept": {"text": "zinc oxide 220 MG Oral Capsule"}}
    assert not _fires(rule, med("dolutegravir"), zinc_paste)
    assert _fires(rule, med("dolutegravir"), zinc_capsule)


def test_a_named_side_and_a_class_side_meet_in_a_draft() -> None:
    # theophylline has no class: it is on its side by name; ciprofloxacin by its class
    assert _fires("rule.theophylline-cyp1a2-inhibitor", med("theophylline"), drafts=(draft("ciprofloxacin"),))
    assert not _fires("rule.theophylline-cyp1a2-inhibitor", med("theophylline"), med("amoxicillin"))


def test_narrowing_the_left_side_keeps_a_short_macrolide_quiet_beside_an_inhaled_steroid() -> None:
    rule = "rule.cyp3a4-inhibitor-corticosteroid"
    assert _fires(rule, med("ritonavir"), med("fluticasone-nasal"))
    assert not _fires(rule, med("clarithromycin"), med("fluticasone-nasal"))


def test_a_stopped_inducer_is_not_an_interaction() -> None:
    stopped = med("rifampin", status="stopped")
    assert not _fires("rule.calcineurin-inducer", med("tacrolimus"), stopped)
    assert _fires("rule.calcineurin-inducer", med("tacrolimus"), med("st-johns-wort"))

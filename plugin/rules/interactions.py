"""Drug–drug interaction pairs: the `Interaction` rule, and the table of them in knowledge/interaction_pairs.json.

A pair is a left side and a right side, each the drugs of some classes plus some named ingredients, and a card
when a drug of each is taken or proposed together. The table is versioned data (each pair cites its knowledge
entries); pairs that other rules wrap with a lab order or a named exception are still built in code with
`pair`. InteractionTableError (a PluginError) names the first problem in the file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from plugin import terminology
from plugin.errors import PluginError
from plugin.ids import KB_ID, RULE_ID
from plugin.packaged import read_knowledge_json
from plugin.rules.dosing import LOCAL_ROUTE, SKIN_EYE_EAR
from plugin.rules.model import SEVERITY_RANK, Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = [
    "Interaction",
    "InteractionTableError",
    "interaction_table",
    "pair",
    "pair_sides",
    "parse_interaction_table",
]

_DATA: Final = "knowledge/interaction_pairs.json"


class InteractionTableError(PluginError):
    """knowledge/interaction_pairs.json is malformed or names a class, drug or severity the code does not know."""


def named(exposure: Exposure, names: Iterable[str]) -> bool:
    """Whether an ingredient is one of `names` or a salt of one ("calcium carbonate" for "calcium")."""
    return any(i == n or i.startswith(n + " ") for i in exposure.ingredients for n in names)


@dataclass(frozen=True, slots=True)
class Interaction:
    rule_id: str
    left: frozenset[str]
    right: frozenset[str]
    severity: Severity
    # (class or ingredient the pair must include, or "*"; knowledge-base id)
    evidence: tuple[tuple[str, str], ...]
    risk: str  # "raises bleeding risk"
    option: str  # "consider an alternative analgesic or gastroprotection"
    why: str  # one plain sentence of mechanism
    left_ingredients: frozenset[str] = frozenset()  # narrows the left side to these drugs
    right_unless: frozenset[str] = frozenset()  # right-side drugs with these classes belong to another rule
    right_unless_ingredients: frozenset[str] = frozenset()
    right_systemic_only: bool = False  # skin, eye and ear products of the right-side drug do not count
    # The pair speaks only while one of its drugs is new (proposed, or ordered within this many days): an
    # established pair's monitoring is another rule's (a recheck when the lab is stale, a threshold when high).
    new_within_days: int | None = None
    # The card's option already carried out: with one of these ingredients taken (a PPI for "consider
    # gastroprotection"), the pair is quiet while every right-side drug is of a class in `option_covers`.
    option_taken: frozenset[str] = frozenset()
    option_covers: frozenset[str] = frozenset()
    # Ingredients that put a drug on a side whatever its classes (theophylline, St John's wort), or a mineral
    # whose salts all count ("calcium"): a side is its classes' drugs and these.
    left_named: frozenset[str] = frozenset()
    right_named: frozenset[str] = frozenset()
    order: LabOrder | None = None  # the lab that watches the pair (INR, digoxin level), offered on the card
    left_systemic_only: bool = False  # as right_systemic_only, for the left side (tacrolimus ointment)
    # Right-side classes whose one drug beside the left side is routine combined therapy whose start carries its
    # own monitoring (an MRA added to an ACE inhibitor in heart failure or resistant hypertension): the pair
    # speaks for such a drug only beside a second right-side drug (a potassium supplement, trimethoprim).
    right_routine_alone: frozenset[str] = frozenset()
    # A state of the chart in which the pair has nothing to add because another card already asks for the same
    # action: the Beers CNS-active burden card for an opioid with a gabapentinoid at 75, or a myasthenia or
    # fluoroquinolone-allergy card that already asks for another antibiotic than the one a steroid sits beside.
    quiet_when: Callable[[RuleFacts], bool] | None = None

    def _left(self, facts: RuleFacts) -> tuple[Exposure, ...]:
        left = facts.with_class(*self.left)
        if self.left_ingredients:
            left = tuple(e for e in left if not self.left_ingredients.isdisjoint(e.ingredients))
        if self.left_named:
            chosen = set(left)  # `in` a tuple per exposure was quadratic with thousands of drafts
            left = (*left, *(e for e in facts.exposures if e not in chosen and named(e, self.left_named)))
        if self.left_systemic_only:
            left = tuple(e for e in left if not SKIN_EYE_EAR.search(e.label))
        return left

    def _right(self, facts: RuleFacts) -> tuple[Exposure, ...]:
        right = tuple(
            e
            for e in facts.with_class(*self.right)
            if not e.has(*self.right_unless)
            and self.right_unless_ingredients.isdisjoint(e.ingredients)
            and not (self.right_systemic_only and SKIN_EYE_EAR.search(e.label))
        )
        if not self.right_named:
            return right
        chosen = set(right)
        return (
            *right,
            *(
                e
                for e in facts.exposures
                if e not in chosen
                and named(e, self.right_named)
                and self.right_unless_ingredients.isdisjoint(e.ingredients)
                # A mineral on the skin never meets the tablet it would bind ("zinc oxide 40% paste").
                and not (self.right_systemic_only and LOCAL_ROUTE.search(e.label))
            ),
        )

    def sides(self, facts: RuleFacts) -> tuple[list[Exposure], list[Exposure]]:
        """The exposures on each side that pair with one on the other (both empty when none do)."""
        return pair_sides(self._left(facts), self._right(facts))

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        # A side none of whose classes and named ingredients the chart carries has no drug: nothing to pair.
        classes, heads = facts.drug_classes, facts.ingredient_heads
        if (classes.isdisjoint(self.left) and heads.isdisjoint(self.left_named)) or (
            classes.isdisjoint(self.right) and heads.isdisjoint(self.right_named)
        ):
            return
        lefts, rights = self.sides(facts)
        if not lefts:
            return
        if self.quiet_when is not None and self.quiet_when(facts):
            return
        if self.right_routine_alone and len(rights) == 1 and rights[0].has(*self.right_routine_alone):
            return
        if self.new_within_days is not None and not any(
            e.new(self.new_within_days) for e in (*lefts, *rights)
        ):
            return
        if (
            self.option_taken
            and any(not self.option_taken.isdisjoint(e.ingredients) for e in facts.exposures)
            and all(e.has(*self.option_covers) for e in rights)
        ):
            return
        summary = _short(f"{_names(lefts).capitalize()} with {_names(rights)} {self.risk}: {self.option}")
        involved = frozenset().union(*(e.classes | frozenset(e.ingredients) for e in (*lefts, *rights)))
        evidence = tuple(dict.fromkeys(kb for cls, kb in self.evidence if cls == "*" or cls in involved))
        yield Finding(
            rule_id=self.rule_id,
            severity=self.severity,
            summary=summary,
            explanation=self.why,
            evidence=evidence,
            inputs=_handles(lefts, rights),
            proposed=_proposed(lefts, rights),
            order_lab=self.order,
        )


def pair_sides(left: Iterable[Exposure], right: Iterable[Exposure]) -> tuple[list[Exposure], list[Exposure]]:
    """The drugs in the pairs (a from `left`, b from `right`, a != b, each unordered pair once however the
    drugs' classes place them on both sides), side by side, each drug once, in the order the pairs are met
    going through `left` and, for each, through `right`.

    Linear in the drugs: the pairs (left x right of them with thousands of draft orders) are never listed.
    Going through the pairs in that order, a later left drug's pairs were all met already when its handle
    was met before; and a right drug b is a new partner of a left drug a unless b is a itself, or both are
    on both sides and b came first on the left (then the pair was met as (b, a)).
    """
    lefts_once = _first_of_each_handle(left)
    rights_once = _first_of_each_handle(right)
    on_right = {e.handle for e in rights_once}
    lefts: list[Exposure] = []
    rights: list[Exposure] = []
    pending = rights_once  # right drugs in no pair yet, in order
    both_sides_met: set[str] = set()  # left drugs met so far that are also on the right
    for a in lefts_once:
        both = a.handle in on_right
        partners = len(rights_once) - (1 + len(both_sides_met) if both else 0)
        if partners > 0:
            lefts.append(a)
            waiting: list[Exposure] = []
            for b in pending:
                if b.handle == a.handle or (both and b.handle in both_sides_met):
                    waiting.append(b)
                else:
                    rights.append(b)
            pending = waiting
        if both:
            both_sides_met.add(a.handle)
    return lefts, rights


def _first_of_each_handle(exposures: Iterable[Exposure]) -> list[Exposure]:
    first: dict[str, Exposure] = {}
    for e in exposures:
        first.setdefault(e.handle, e)
    return list(first.values())


def pair(
    rule_id: str,
    left: Iterable[str],
    right: Iterable[str],
    severity: Severity,
    evidence: Iterable[str | tuple[str, str]],
    risk: str,
    option: str,
    why: str,
    *,
    left_ingredients: Iterable[str] = (),
    right_unless: Iterable[str] = (),
    right_unless_ingredients: Iterable[str] = (),
    right_systemic_only: bool = False,
    new_within_days: int | None = None,
    option_taken: Iterable[str] = (),
    option_covers: Iterable[str] = (),
    quiet_when: Callable[[RuleFacts], bool] | None = None,
) -> Interaction:
    cited = tuple(("*", e) if isinstance(e, str) else e for e in evidence)
    return Interaction(
        rule_id,
        frozenset(left),
        frozenset(right),
        severity,
        cited,
        risk,
        option,
        why,
        frozenset(left_ingredients),
        frozenset(right_unless),
        frozenset(right_unless_ingredients),
        right_systemic_only,
        new_within_days,
        frozenset(option_taken),
        frozenset(option_covers),
        quiet_when=quiet_when,
    )


# Keys of one pair in the file: the Interaction's fields, by the same names, and a free "comment" (why).
_LISTS: Final = (
    "left",
    "left_named",
    "left_ingredients",
    "right",
    "right_named",
    "right_unless",
    "right_unless_ingredients",
    "option_taken",
    "option_covers",
    "right_routine_alone",
)
_TEXTS: Final = ("rule_id", "severity", "risk", "option", "why")
_FLAGS: Final = ("left_systemic_only", "right_systemic_only")
_KEYS: Final = frozenset({*_LISTS, *_TEXTS, *_FLAGS, "evidence", "new_within_days", "comment"})
_CLASS_LISTS: Final = ("left", "right", "right_unless", "option_covers", "right_routine_alone")


def _fail(problem: str) -> InteractionTableError:
    return InteractionTableError(f"{_DATA}: {problem}")


def _names_list(raw: dict[str, object], key: str, where: str) -> frozenset[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(f"{where}: {key} is a list of names")
    names = frozenset(value)
    if key in _CLASS_LISTS:
        unknown = sorted(names - terminology.CLASS_KEYS)
        if unknown:
            raise _fail(f"{where}: {key} names unknown classes {unknown}")
    else:
        # A name is a reviewed ingredient, or a mineral whose salts are ("calcium" for "calcium carbonate").
        known = terminology.known_ingredients()
        unknown = sorted(n for n in names if not (n in known or any(k.startswith(n + " ") for k in known)))
        if unknown:
            raise _fail(f"{where}: {key} names ingredients by other than their reviewed names: {unknown}")
    return names


def _parse_pair(raw: object, index: int) -> Interaction:
    where = f"pairs[{index}]"
    if not isinstance(raw, dict):
        raise _fail(f"{where}: a pair is an object")
    extra = sorted(set(raw) - _KEYS)
    if extra:
        raise _fail(f"{where}: unknown keys {extra}")
    texts = {k: raw.get(k) for k in _TEXTS}
    if not all(isinstance(v, str) and v for v in texts.values()):
        raise _fail(f"{where}: needs {', '.join(_TEXTS)} as text")
    rule_id, severity = str(texts["rule_id"]), str(texts["severity"])
    where = f"{where} ({rule_id})"
    if not RULE_ID.match(rule_id):
        raise _fail(f"{where}: rule_id is rule.<words-with-hyphens>")
    if severity not in SEVERITY_RANK:
        raise _fail(f"{where}: severity is one of {sorted(SEVERITY_RANK)}")
    lists = {k: _names_list(raw, k, where) for k in _LISTS}
    if not (lists["left"] or lists["left_named"]) or not (lists["right"] or lists["right_named"]):
        raise _fail(f"{where}: each side names a class or an ingredient")
    evidence = raw.get("evidence")
    if not isinstance(evidence, list) or not evidence:
        raise _fail(f"{where}: evidence is a non-empty list")
    cited: list[tuple[str, str]] = []
    for item in evidence:
        if not isinstance(item, dict) or set(item) != {"when", "kb"}:
            raise _fail(f"{where}: each evidence item has exactly when and kb")
        when, kb = item["when"], item["kb"]
        if not isinstance(kb, str) or not KB_ID.match(kb) or not isinstance(when, str) or not when:
            raise _fail(f"{where}: evidence names a kb id, and when (a class, an ingredient or *) it applies")
        cited.append((when, kb))
    flags = {flag: raw.get(flag, False) for flag in _FLAGS}
    days = raw.get("new_within_days")
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise _fail(f"{where}: {flag} is true or false")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365):
        raise _fail(f"{where}: new_within_days is a whole number of days from 1 to 365")
    return Interaction(
        rule_id,
        lists["left"],
        lists["right"],
        severity,  # checked against SEVERITY_RANK above
        tuple(cited),
        str(texts["risk"]),
        str(texts["option"]),
        str(texts["why"]),
        lists["left_ingredients"],
        lists["right_unless"],
        lists["right_unless_ingredients"],
        bool(flags["right_systemic_only"]),
        days,
        lists["option_taken"],
        lists["option_covers"],
        lists["left_named"],
        lists["right_named"],
        left_systemic_only=bool(flags["left_systemic_only"]),
        right_routine_alone=lists["right_routine_alone"],
    )


def parse_interaction_table(raw: object) -> tuple[Interaction, ...]:
    """The pairs in interaction_pairs.json's content, in file order; rule ids are unique."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("version"), str)
        or not isinstance(raw.get("pairs"), list)
    ):
        raise _fail("needs a version and a list of pairs")
    pairs = tuple(_parse_pair(item, i) for i, item in enumerate(raw["pairs"]))
    ids = [p.rule_id for p in pairs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise _fail(f"rule ids repeated: {repeated}")
    return pairs


@functools.cache
def interaction_table() -> tuple[Interaction, ...]:
    """The packaged table, read and checked once per process."""
    return parse_interaction_table(read_knowledge_json("interaction_pairs.json", InteractionTableError))

"""The per-suggestion checks of governance: each takes a suggestion and returns a pass or a reason."""

# Exact rules (DESIGN §5), in the order `govern` runs them:
#
# grounding       every cited patient handle is a fact of this context; every cited knowledge id is in the
#                 knowledge base (else unknown-knowledge-id) and in the retrieved set (else
#                 knowledge-not-retrieved); a link in a text field (summary, rationale, code display; text.py
#                 says what counts as one) is url-in-output unless it is, compared by `text.link_key`, the
#                 source URL of a knowledge entry the suggestion cites. The later steps read the text with
#                 its links blanked out (`text.without_urls`): what is left of one is an allowed source link.
# untrusted-text  the text repeats no instruction phrase and no run of `injection_run_words` (3) normalised
#                 tokens, digits included, shared with a chart note, runs of stop words only excepted
#                 (injection-echo; `text.copied_run`), and holds no identifier (identifier-echo; text.py
#                 lists the forms).
# language        the set's declared language is the policy's language (the request's card language), and
#                 so is the language of summary + rationale, at any length: the detector's answer where it
#                 gives one (another script decides at any length), else the function words'
#                 (`text.function_word_language`): more evidence of another language than of the expected
#                 one is wrong-language, naming that language or "und" when it cannot tell which. With no
#                 evidence either way ("Consider INR") the expected language stands.
# phrasing        summary no longer than `max_summary`; it does not open with a directive (DIRECTIVES) and
#                 nowhere says "must", "do not", "don't" or "immediately": options, not orders.
# intent          the action's intent fits the chart: a change-dose keeps the target's ingredients and a
#                 substitute changes them (intent-mismatch); and every medication change the summary or
#                 rationale recommends is one the action declares, on the drug it names (undeclared-action;
#                 intents.py says how text is read): "consider stopping warfarin" as counsel is refused here,
#                 so that no stop escapes the regimen check.
# support         the key terms of summary + rationale + action display share at least `min_shared_terms`
#                 with the evidence (cited passages' title, statement and applies_to; cited facts' codes,
#                 displays, ingredients and lab labels; never note text, which is untrusted), and the action's
#                 code, ingredient or class appears in that evidence. Numbers: claims are cut into sentences
#                 (at ".", ";", "!" or "?" before a space or the end); a number followed by a measurement
#                 unit (MEASUREMENT_UNITS), or in a sentence naming a lab (analyte key or label) and not
#                 followed by a dose, count or time unit (OTHER_UNITS), is tied to the nearest lab name
#                 before it in its sentence, else the nearest after it, wherever that stands ("eGFR has
#                 fallen to about 25" is eGFR's). It must equal a value of a cited measurement (of that
#                 lab, when one is named) within ±`number_tolerance` relative, or within half a unit of its
#                 last written digit (so "1.3" matches 1.25); a number written in a cited passage's
#                 statement (a threshold such as "below 30") passes too. Anything else is number-mismatch.
# safety          a create or update of a MedicationRequest runs `check_proposal`; any finding vetoes. For an
#                 update the target is taken out of the chart first: it is being replaced, not duplicated. A
#                 proposed drug the terminology cannot resolve to known ingredients is a safety-veto too
#                 (rule.medication-unresolved, always part of check_proposal): no finding there means "not
#                 checked", never "no interaction", so it fails closed with its own detail.
#                 Every create, update and delete of a MedicationRequest is then checked as the regimen it
#                 would produce (issue 18): the "after" chart drops the target and adds the new product (create,
#                 update), and the proposal rules (every medication rule) run before and after; the veto and
#                 an undosed proposal's "after" share one run. A protected therapy (protected.py) present
#                 before and absent after, while one of its conditions is charted, is protected-therapy-removed
#                 (checked first: it names the harm of the removal); a warning or critical finding after that
#                 was not there before is a safety-veto. A finding is old when one before had its rule, its
#                 severity and all its inputs, the updated target read as the new product (`new_findings`).
#                 A structured dose puts the proposal in the "after" chart as a draft order with that dose,
#                 so the dose-range table and the dose-aware renal and label rules read it: a new finding of
#                 theirs is dose-out-of-range. A dose none of them can read (no table row for any of its
#                 ingredients, or a unit with no strength to convert) is dose-unchecked: fail closed.
# actions         action and resource types are allow-listed; an update or delete targets an M or D handle of
#                 this context of the same resource type; the resource a create or update would make is built
#                 and validated with fhir.resources (R4B).

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from plugin import allergens, terminology
from plugin.context.codes import ANALYTES
from plugin.context.model import ClinicalContext, Code, Dosage, DraftOrder, Measurement
from plugin.governance import intents, text
from plugin.governance.model import GovernancePolicy, Reason
from plugin.governance.protected import ProtectedTherapy, protected_therapies
from plugin.knowledge import Assertion, KnowledgeBase, KnowledgeEntry
from plugin.rules.dose_range import daily_frequency, dose_table, ingredient_strength_mg, single_dose_mg
from plugin.rules.dosing import is_parenteral
from plugin.rules.engine import PROPOSAL_HANDLE, PROPOSAL_RULES, merge_findings, run_rules
from plugin.rules.kidney import renal_function
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.registry import CARE_GAP_RULES
from plugin.rules.resolution import RULE_ID as UNRESOLVED_RULE
from plugin.suggestions import AiSuggestion, Dose, ProposedAction

__all__ = [
    "DIRECTIVES",
    "MEASUREMENT_UNITS",
    "OTHER_UNITS",
    "SYSTEM_URIS",
    "Chart",
    "RegimenChange",
    "Verdict",
    "build_resource",
    "check_actions",
    "check_basis",
    "check_grounding",
    "check_intent",
    "check_language",
    "check_phrasing",
    "check_safety",
    "check_support",
    "check_untrusted",
    "cited_assertions",
    "new_findings",
]

# Rules that judge a dose: a finding of theirs on a dosed proposal is dose-out-of-range (dose-unchecked for
# a child with no current weight).
WEIGHT_UNKNOWN_RULE: Final = "rule.dose-weight-unknown"
DOSE_RULES: Final = frozenset(
    {
        "rule.dose-above-maximum",
        "rule.dose-weight-unknown",
        "rule.renal-dose-crcl",
        "rule.simvastatin-dose-limit",
        "rule.simvastatin-daily-dose",
        "rule.atorvastatin-dose-limit",
        "rule.citalopram-qt-dose",
        "rule.paediatric-dose-band",
    }
)
_PERIOD_NAMES: Final = {"h": "h", "d": "d", "wk": "wk"}

SYSTEM_URIS: Final[dict[str, str]] = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "cvx": "http://hl7.org/fhir/sid/cvx",
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
}
# Openers that make a summary an order; options start "Consider", "Review", "Discuss", "Check whether"...
DIRECTIVES: Final = frozenset(
    {
        "stop",
        "start",
        "give",
        "discontinue",
        "prescribe",
        "order",
        "increase",
        "decrease",
        "administer",
        "must",
        "hold",
        "withhold",
        "cease",
        "begin",
        "initiate",
        "commence",
        "switch",
        "reduce",
        "titrate",
        "add",
        "remove",
        "avoid",
        "never",
        "always",
        "immediately",
        "urgently",
        "you",
        "do not",
        "don't",
        "dont",
    }
)
_DIRECTIVE_ANYWHERE: Final = re.compile(r"\b(?:must|do not|don't|immediately)\b", re.IGNORECASE)
MEASUREMENT_UNITS: Final = (
    r"%|mmol/l|mmol/mol|µmol/l|umol/l|mg/dl|g/dl|g/l|meq/l|ml/min(?:/1\.73\s?m(?:2|²))?|mmhg|bpm|"
    r"kg/m2|kg/m²|iu/l|u/l|ng/ml|pg/ml|x10\^9/l|10\^9/l|mosm/kg"
)
_NUMBER: Final = re.compile(
    r"(?<![\w.\-/])(?P<number>[0-9]+(?:\.[0-9]+)?)(?![\w\-]|\.[0-9])(?P<unit>\s*(?:"
    + MEASUREMENT_UNITS
    + r")(?!\w))?",
    re.IGNORECASE,
)
# What follows a number that is a dose, a count or a time, never a lab value ("500 mg", "2 weeks").
OTHER_UNITS: Final = (
    r"mg|mcg|µg|ug|g|kg|ml|l|units?|iu|doses?|tablets?|tabs?|capsules?|puffs?|drops?|times?|x|"
    r"minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|months?|years?|yrs?|y|readings?|samples?"
)
_OTHER_UNIT: Final = re.compile(r"\s*(?:" + OTHER_UNITS + r")(?!\w)", re.IGNORECASE)
_SENTENCE_END: Final = re.compile(r"[.;!?](?=\s|$)")
_LAB_NAMES: Final[dict[str, str]] = {
    **{key.lower(): key for key in ANALYTES},
    **{analyte.label.lower(): key for key, analyte in ANALYTES.items()},
}
_LAB_NAME: Final = re.compile(
    r"\b(?:" + "|".join(re.escape(name) for name in sorted(_LAB_NAMES, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's answer: reason None is a pass; detail is short and quotes no more than a fragment."""

    reason: Reason | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.reason is None


def _ok(detail: str) -> Verdict:
    return Verdict(None, detail)


def new_findings(
    before: tuple[Finding, ...], after: tuple[Finding, ...], rename: dict[str, str]
) -> tuple[Finding, ...]:
    """Warning and critical findings of `after` that `before` did not have. A finding is old when a finding
    before had the same rule and severity and every input of it: taking a drug out only narrows an old
    finding. Before-inputs are read through `rename` (an updated target reads as its replacement)."""
    seen: dict[tuple[str, str], list[frozenset[str]]] = {}
    for finding in before:
        inputs = frozenset(rename.get(h, h) for h in finding.inputs)
        seen.setdefault((finding.rule_id, finding.severity), []).append(inputs)
    return tuple(
        f
        for f in after
        if f.severity != "info"
        and not any(inputs >= set(f.inputs) for inputs in seen.get((f.rule_id, f.severity), ()))
    )


@dataclass(frozen=True, slots=True)
class RegimenChange:
    """What an action does to the regimen: findings it adds, protected therapies it leaves without cover."""

    added: tuple[Finding, ...]
    removed: tuple[ProtectedTherapy, ...]
    # Findings of the dose rules on a dosed proposal, at any severity: the renal table's "reduce dose" is
    # info for a chart, but a proposed dose past it is one governance must not pass.
    dosing: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class _ProposalRun:
    """The chart with one code proposed: its rule facts, every proposal rule's findings, and those that
    involve the proposal (the veto)."""

    facts: RuleFacts
    findings: tuple[Finding, ...]
    veto: tuple[Finding, ...]


@dataclass(slots=True)
class Chart:
    """One context digested once per `govern` call: handles, evidence terms, and memoised rule checks."""

    context: ClinicalContext
    knowledge: KnowledgeBase
    retrieved: frozenset[str]
    facts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # handle → evidence texts
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # handle → codes it carries
    measurements: dict[str, Measurement] = field(default_factory=dict)
    order_types: dict[str, str] = field(default_factory=dict)  # M/D handle → resource type
    note_tokens: tuple[list[str], ...] = ()
    # A proposed code (and the order it replaces) → the chart's rule facts and findings with it added. The
    # veto and an undosed proposal's regimen read the same run.
    _proposals: dict[tuple[str, str, str, str | None], _ProposalRun] = field(default_factory=dict)
    _regimens: dict[tuple[str, str, str, str, str | None, Dose | None], RegimenChange] = field(
        default_factory=dict
    )
    _facts: RuleFacts | None = None
    _before: tuple[RuleFacts, tuple[Finding, ...]] | None = None
    # Support, safety and basis all read a suggestion's cited assertions: worked out once per suggestion (held
    # beside its result, so an id is never reused for another object while the chart lives).
    _asserted: dict[int, tuple[AiSuggestion, CitedAssertions]] = field(default_factory=dict)

    @classmethod
    def of(cls, context: ClinicalContext, knowledge: KnowledgeBase, retrieved: frozenset[str]) -> Chart:
        chart = cls(context, knowledge, retrieved)
        for problem in context.problems:
            chart._add(problem.handle, problem.code, ())
        for med in context.medications:
            chart._add(med.handle, med.code, med.ingredients)
            chart.order_types[med.handle] = "MedicationRequest"
        for allergy in context.allergies:
            chart._add(allergy.handle, allergy.substance, ())
        for series in context.labs:
            loincs = tuple(sorted(ANALYTES[series.analyte].loinc)) if series.analyte in ANALYTES else ()
            for measurement in series.measurements:
                texts = (series.label, series.analyte, measurement.unit, *loincs)
                chart.facts[measurement.handle] = chart.facts.get(measurement.handle, ()) + texts
                chart.codes[measurement.handle] = chart.codes.get(measurement.handle, ()) + loincs
                chart.measurements.setdefault(measurement.handle, measurement)
        for encounter in context.encounters:
            chart.facts[encounter.handle] = (encounter.kind, encounter.reason or "")
        for immunization in context.immunizations:
            chart._add(immunization.handle, immunization.vaccine, ())
        for procedure in context.procedures:
            chart._add(procedure.handle, procedure.code, ())
        for draft in context.draft_orders:
            chart._add(draft.handle, draft.code, draft.ingredients)
            chart.order_types[draft.handle] = draft.resource_type
        for handle in context.pregnancy.evidence:
            chart.facts.setdefault(handle, ("pregnancy",))
        for note in context.notes:
            chart.facts[note.handle] = ()  # citable, but untrusted text is never evidence
        chart.note_tokens = tuple(text.run_tokens(note.text) for note in context.notes)
        return chart

    def _add(self, handle: str, code: Code, ingredients: tuple[str, ...]) -> None:
        self.facts[handle] = (code.display, code.code, *ingredients)
        self.codes[handle] = (code.code,)

    def _without(self, target: str | None) -> ClinicalContext:
        if target is None:
            return self.context
        return dataclasses.replace(
            self.context,
            medications=tuple(m for m in self.context.medications if m.handle != target),
            draft_orders=tuple(d for d in self.context.draft_orders if d.handle != target),
        )

    def rule_facts(self) -> RuleFacts:
        """The chart's rule facts (exposures with classes, charted value sets), digested once."""
        if self._facts is None:
            self._facts = RuleFacts.of(self.context)
        return self._facts

    def before(self) -> tuple[RuleFacts, tuple[Finding, ...]]:
        """The chart's rule facts and the findings of every medication rule as it stands, computed once."""
        if self._before is None:
            self._before = (self.rule_facts(), run_rules(self.rule_facts(), PROPOSAL_RULES))
        return self._before

    def findings(self) -> tuple[Finding, ...]:
        """Every rule's findings on the chart as it stands (what `evaluate` returns), reusing `before`."""
        facts, medication = self.before()
        return merge_findings(medication, run_rules(facts, CARE_GAP_RULES))

    def drugs_of(self, handle: str | None) -> tuple[tuple[str, ...], frozenset[str]]:
        """Ingredients, and ingredients with classes, of a medication or draft order of this chart (its rule
        exposure); empty for any other handle."""
        for exposure in self.rule_facts().exposures:
            if handle is not None and exposure.handle == handle:
                return exposure.ingredients, frozenset(exposure.ingredients) | exposure.classes
        return (), frozenset()

    def _with_proposal(self, code: Code, target: str | None) -> _ProposalRun:
        """The chart with `code` proposed in place of `target`, run through the proposal rules; memoised per
        code and target."""
        key = (code.system, code.code, code.display, target)
        if key not in self._proposals:
            facts = RuleFacts.of(self._without(target), proposed=((PROPOSAL_HANDLE, code),))
            findings = run_rules(facts, PROPOSAL_RULES)
            veto = tuple(f for f in findings if PROPOSAL_HANDLE in f.proposed)
            self._proposals[key] = _ProposalRun(facts, findings, veto)
        return self._proposals[key]

    def veto(self, action: ProposedAction) -> tuple[Finding, ...]:
        """Rule findings the proposed medication would cause (what `check_proposal` returns)."""
        assert action.code is not None  # guaranteed by the caller: only create/update reach here
        code = Code(action.code.system, action.code.code, action.code.display)
        return self._with_proposal(code, action.target).veto

    def regimen(self, action: ProposedAction) -> RegimenChange:
        """The regimen before and after the action, compared; memoised per action type, code, target and
        dose. A dosed proposal enters the "after" chart as a draft order with that dose."""
        coded = action.code
        key = (
            action.type,
            *((coded.system, coded.code, coded.display) if coded is not None else ("", "", "")),
            action.target,
            action.dose,
        )
        if key not in self._regimens:
            before_facts, before = self.before()
            code = None if coded is None else Code(coded.system, coded.code, coded.display)
            rename = (
                {action.target: PROPOSAL_HANDLE} if code is not None and action.target is not None else {}
            )
            if code is not None and action.dose is None:
                proposal = self._with_proposal(code, action.target)
                after_facts, after = proposal.facts, proposal.findings
            else:
                after_context = self._without(action.target)
                if code is not None and action.dose is not None:  # a dosed proposal: a draft with that dose
                    after_context = dataclasses.replace(
                        after_context,
                        draft_orders=(*after_context.draft_orders, _dosed_draft(code, action.dose)),
                    )
                after_facts = RuleFacts.of(after_context)
                after = run_rules(after_facts, PROPOSAL_RULES)
            added = new_findings(before, after, rename)
            removed = tuple(
                therapy
                for therapy in protected_therapies().therapies
                if any(before_facts.has_condition(name) for name in therapy.conditions)
                and any(therapy.covers(e) for e in before_facts.exposures)
                and not any(therapy.covers(e) for e in after_facts.exposures)
            )
            dosing = (
                tuple(f for f in after if f.rule_id in DOSE_RULES and PROPOSAL_HANDLE in f.proposed)
                if action.dose is not None
                else ()
            )
            self._regimens[key] = RegimenChange(added, removed, dosing)
        return self._regimens[key]


def dose_text(dose: Dose) -> tuple[str, str]:
    """The dose and frequency as a chart writes them ("500 mg", "2 per 1 d")."""
    return f"{dose.amount:g} {dose.unit}", f"{dose.frequency} per 1 {_PERIOD_NAMES[dose.period]}"


def _dosed_draft(code: Code, dose: Dose) -> DraftOrder:
    amount, frequency = dose_text(dose)
    rxnorm = code.code if code.system == "rxnorm" else None
    return DraftOrder(
        handle=PROPOSAL_HANDLE,
        resource_type="MedicationRequest",
        code=code,
        ingredients=terminology.ingredients_of(rxnorm, code.display),
        strength=None,
        dosage=Dosage(dose=amount, route=dose.route, frequency=frequency),
        status="draft",
        intent="proposal",
    )


def dose_checkable(action: ProposedAction) -> bool:
    """Whether the dose-range table can judge the action's dose: a row with an adult limit for one of its
    ingredients (warfarin's row says it is dosed by INR: no limit, so not checkable), and a dose that
    converts to milligrams (a mass, or a count of a product whose strength the display gives)."""
    if action.dose is None or action.code is None:
        return False
    rxnorm = action.code.code if action.code.system == "rxnorm" else None
    amount, frequency = dose_text(action.dose)
    dosage = Dosage(dose=amount, route=action.dose.route, frequency=frequency)
    # An injected proposal is held to the ingredient's parenteral row where there is one, as a draft order is.
    injected = is_parenteral(f"{action.code.display} {action.dose.route or ''}")
    table = dose_table()
    return any(
        (row := table.row(name, injected)) is not None
        and (row.max_single_mg is not None or row.max_daily_mg is not None)
        and single_dose_mg(dosage, ingredient_strength_mg(action.code.display, name)) is not None
        for name in terminology.ingredients_of(rxnorm, action.code.display)
    )


def _texts(suggestion: AiSuggestion) -> tuple[str, ...]:
    code = suggestion.action.code
    return (suggestion.summary, suggestion.rationale, *((code.display,) if code is not None else ()))


def check_grounding(suggestion: AiSuggestion, chart: Chart, policy: GovernancePolicy) -> Verdict:
    unknown = [h for h in suggestion.citations.patient if h not in chart.facts]
    if unknown:
        return Verdict(Reason.UNKNOWN_PATIENT_HANDLE, f"not in this context: {', '.join(unknown)}")
    missing = [k for k in suggestion.citations.knowledge if k not in chart.knowledge]
    if missing:
        return Verdict(Reason.UNKNOWN_KNOWLEDGE_ID, f"not in the knowledge base: {', '.join(missing)}")
    unretrieved = [k for k in suggestion.citations.knowledge if k not in chart.retrieved]
    if unretrieved:
        return Verdict(
            Reason.KNOWLEDGE_NOT_RETRIEVED, f"not among the passages given: {', '.join(unretrieved)}"
        )
    sources = {
        text.link_key(entry.source.url)
        for k in suggestion.citations.knowledge
        if (entry := chart.knowledge.get(k)) is not None
    }
    for value in _texts(suggestion):
        for found in text.find_urls(value):
            if text.link_key(found) not in sources:
                return Verdict(Reason.URL_IN_OUTPUT, f"URL-like text {found[:40]!r}")
    return _ok(
        f"{len(suggestion.citations.patient)} patient and {len(suggestion.citations.knowledge)} knowledge citations"
    )


def check_untrusted(suggestion: AiSuggestion, chart: Chart, policy: GovernancePolicy) -> Verdict:
    joined = text.without_urls(" ".join(_texts(suggestion)))
    if text.find_injection_phrase(joined):
        return Verdict(Reason.INJECTION_ECHO, "instruction-like phrase in the output")
    output_tokens = text.run_tokens(joined)
    for note, note_tokens in zip(chart.context.notes, chart.note_tokens, strict=True):
        if text.copied_run(output_tokens, note_tokens, policy.injection_run_words):
            return Verdict(Reason.INJECTION_ECHO, f"repeats a run of untrusted note {note.handle}")
    allowed = frozenset(code for h in suggestion.citations.patient for code in chart.codes.get(h, ()))
    if suggestion.action.code is not None:
        allowed |= {suggestion.action.code.code}
    kind = text.find_identifier(joined, allowed)
    if kind is not None:
        return Verdict(Reason.IDENTIFIER_ECHO, f"looks like an identifier: {kind}")
    return _ok("no echoed instruction or identifier")


def check_language(suggestion: AiSuggestion, declared: str, policy: GovernancePolicy) -> Verdict:
    primary = declared.split("-")[0].lower()
    if primary != policy.language:
        return Verdict(Reason.WRONG_LANGUAGE, f"declared {declared}, configured {policy.language}")
    written = text.without_urls(f"{suggestion.summary} {suggestion.rationale}")
    detected = text.detect_language(written)
    if detected is not None and detected != policy.language:
        return Verdict(Reason.WRONG_LANGUAGE, f"detected {detected}, configured {policy.language}")
    if detected is None:
        other = text.function_word_language(written, policy.language)
        if other is not None:
            return Verdict(Reason.WRONG_LANGUAGE, f"function words of {other}, configured {policy.language}")
    return _ok(f"declared {declared}, detected {detected or 'undetermined'}")


def check_phrasing(suggestion: AiSuggestion, policy: GovernancePolicy) -> Verdict:
    summary = suggestion.summary.strip()
    if len(summary) > policy.max_summary:
        return Verdict(Reason.SUMMARY_TOO_LONG, f"{len(summary)} characters, limit {policy.max_summary}")
    opening = text.words(summary)[:2]
    first_two = " ".join(opening)
    if (opening and opening[0] in DIRECTIVES) or first_two in DIRECTIVES:
        return Verdict(Reason.DIRECTIVE_PHRASING, f"opens with the directive {first_two!r}")
    anywhere = _DIRECTIVE_ANYWHERE.search(summary)
    if anywhere is not None:
        return Verdict(Reason.DIRECTIVE_PHRASING, f"says {anywhere.group(0).lower()!r}")
    return _ok("phrased as an option")


def _proposed_drug(action: ProposedAction) -> tuple[tuple[str, ...], frozenset[str]]:
    """Ingredients, and ingredients with classes, of the drug an action orders; empty for anything else."""
    coded = action.code
    if coded is None or action.resource_type != "MedicationRequest":
        return (), frozenset()
    names = terminology.ingredients_of(coded.code if coded.system == "rxnorm" else None, coded.display)
    return names, intents.drug_keys(names)


def check_intent(suggestion: AiSuggestion, chart: Chart) -> Verdict:
    action = suggestion.action
    target_names, target = chart.drugs_of(action.target)
    proposed_names, proposed = _proposed_drug(action)
    if target_names and action.intent in ("change-dose", "substitute"):
        kept = frozenset(proposed_names) == frozenset(target_names)
        if action.intent == "change-dose" and not kept:
            return Verdict(Reason.INTENT_MISMATCH, f"a change-dose of {action.target} names another drug")
        if action.intent == "substitute" and kept:
            return Verdict(Reason.INTENT_MISMATCH, f"a substitute for {action.target} names the same drug")
    stopped = target if action.intent in ("stop", "substitute") else frozenset()
    started = proposed | (target if action.intent == "change-dose" else frozenset())
    # Summary and rationale are read apart: a summary has no closing full stop to end its last sentence.
    found = next(
        (
            f
            for written in (suggestion.summary, suggestion.rationale)
            if (f := intents.undeclared(text.without_urls(written), action.intent, stopped, started))
            is not None
        ),
        None,
    )
    if found is not None:
        named = ", ".join(sorted(found.drugs)[:3]) or "a drug"
        return Verdict(
            Reason.UNDECLARED_ACTION,
            f"the text recommends {found.kind} ({found.cue!r}) of {named}; the action declares {action.intent}",
        )
    return _ok(f"{action.intent}: the text recommends nothing the action does not declare")


def _entry_texts(entry: KnowledgeEntry) -> tuple[str, ...]:
    applies = entry.applies_to
    return (
        entry.title,
        entry.statement,
        *applies.ingredients,
        *applies.classes,
        *applies.snomed,
        *applies.icd10,
        *applies.loinc,
        *applies.value_sets,
    )


def _matches(written: str, value: float, tolerance: float) -> bool:
    number = float(written)
    decimals = len(written.split(".")[1]) if "." in written else 0
    half_digit: float = 0.5 / 10**decimals
    return abs(number - value) <= max(abs(value) * tolerance, half_digit)


def _sentences(claim: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(claim) if part.strip()]


def _lab_of(sentence: str, start: int, end: int) -> str | None:
    """The analyte of the lab name nearest before [start, end) in the sentence, else nearest after it."""
    names = list(_LAB_NAME.finditer(sentence))
    before = [m for m in names if m.end() <= start]
    if before:
        return _LAB_NAMES[before[-1].group(0).lower()]
    after = [m for m in names if m.start() >= end]
    return _LAB_NAMES[after[0].group(0).lower()] if after else None


def _check_numbers(
    suggestion: AiSuggestion, chart: Chart, entries: list[KnowledgeEntry], policy: GovernancePolicy
) -> Verdict | None:
    cited = [chart.measurements[h] for h in suggestion.citations.patient if h in chart.measurements]
    passage_numbers = {m.group("number") for e in entries for m in _NUMBER.finditer(e.statement)}
    for claim in (suggestion.summary, suggestion.rationale):
        for sentence in _sentences(claim):
            for match in _NUMBER.finditer(sentence):
                analyte = _lab_of(sentence, match.start(), match.end())
                if match.group("unit") is None and (
                    analyte is None or _OTHER_UNIT.match(sentence, match.end()) is not None
                ):
                    continue
                written = match.group("number")
                pool = cited if analyte is None else [m for m in cited if m.analyte == analyte]
                if any(_matches(written, m.value, policy.number_tolerance) for m in pool):
                    continue
                if written in passage_numbers:
                    continue
                return Verdict(
                    Reason.NUMBER_MISMATCH, f"{written} matches no cited measurement or passage figure"
                )
    return None


@dataclass(frozen=True, slots=True)
class CitedAssertions:
    """The cited passages' assertions about the suggestion's own intent and target, whose conditions hold."""

    supporting: tuple[tuple[str, Assertion], ...] = ()
    opposing: tuple[tuple[str, Assertion], ...] = ()


# The intents whose support must be a cited assertion (issue 18, item 3): what changes a regimen or orders a
# test. Referral, counselling and "no change" change nothing a rule can judge; the word screen stays for them.
ASSERTED_SUGGESTION_INTENTS: Final = frozenset({"start", "stop", "substitute", "change-dose", "order-test"})


def _acted_on(action: ProposedAction, chart: Chart) -> dict[str, frozenset[str]]:
    """Per asserted intent, the drug keys (LOINC codes for order-test) the action acts on. A substitute is a
    stop of its target and a start of the new drug; a change-dose acts on its target (or, with none, on the
    drug it names)."""
    target = chart.drugs_of(action.target)[1]
    proposed = _proposed_drug(action)[1]
    if action.intent == "start":
        return {"start": proposed}
    if action.intent == "stop":
        return {"stop": target}
    if action.intent == "substitute":
        return {"stop": target, "start": proposed}
    if action.intent == "change-dose":
        return {"change-dose": target or proposed}
    if action.intent == "order-test" and action.code is not None and action.code.system == "loinc":
        return {"order-test": frozenset({action.code.code})}
    return {}


def _daily_mg(dosage: Dosage, display: str, ingredient: str) -> float | None:
    per_day = daily_frequency(dosage)
    one = single_dose_mg(dosage, ingredient_strength_mg(display, ingredient))
    return None if per_day is None or one is None else one * per_day


def dose_direction(action: ProposedAction, chart: Chart) -> str | None:
    """ "reduce" or "increase" when the proposed and the current daily milligrams of the target can both be
    read and differ; None otherwise (the way a dose moves is then unknown, never assumed)."""
    if action.dose is None or action.code is None or action.target is None:
        return None
    current = next((m for m in chart.context.medications if m.handle == action.target), None)
    if current is None:
        return None
    amount, frequency = dose_text(action.dose)
    proposed = Dosage(dose=amount, route=action.dose.route, frequency=frequency)
    for name in current.ingredients:
        before = _daily_mg(current.dosage, current.code.display, name)
        after = _daily_mg(proposed, action.code.display, name)
        if before is not None and after is not None and before != after:
            return "reduce" if after < before else "increase"
    return None


def _lab_value(facts: RuleFacts, analyte: str) -> tuple[float | None, tuple[str, ...]]:
    """The current value and the handles it rests on; eGFR may be CKD-EPI from a current creatinine."""
    if analyte == "egfr":
        kidney = renal_function(facts)
        return kidney.egfr, kidney.egfr_inputs
    current = facts.current(analyte)
    return (current.value, (current.handle,)) if current is not None else (None, ())


def _labs_hold(assertion: Assertion, facts: RuleFacts, cited: frozenset[str] | None) -> bool:
    """Every lab condition holds. To support (`cited` given), on a current value the suggestion cites; to
    oppose (`cited` None), on the chart's current value, and an unknown value holds (fail closed)."""
    for analyte, bound, limit in assertion.labs:
        value, handles = _lab_value(facts, analyte)
        if value is None:
            if cited is not None:
                return False
            continue
        if cited is not None and cited.isdisjoint(handles):
            return False
        if (value < limit) != (bound == "below"):
            return False
    return True


def _allergy_holds(assertion: Assertion, chart: Chart, cited: frozenset[str] | None) -> bool:
    """An allergy record (the context keeps active ones only) resolving to one of the assertion's classes:
    among the cited facts to support (`cited` given), anywhere on the chart to oppose."""
    if not assertion.allergies:
        return True
    return any(
        (cited is None or allergy.handle in cited)
        and not allergens.resolve(allergy.substance).classes.isdisjoint(assertion.allergies)
        for allergy in chart.context.allergies
    )


def cited_assertions(suggestion: AiSuggestion, chart: Chart) -> CitedAssertions:
    """Assertions of the cited entries on the suggestion's own intent and target: start and stop of the
    drugs it starts and stops, change-dose of the drug whose dose it changes (and which way), order-test of
    the test it orders. Fail closed, both ways: an opposing assertion holds when the chart meets its
    conditions (leaving a fact uncited never dodges it, and an unknown dose direction meets any direction); a
    supporting one only when the facts the suggestion cites (and its target) meet them, every `when` value
    set among the cited problems and a `with` drug (or an order-test's drug) among the cited medications."""
    memo = chart._asserted.get(id(suggestion))
    if memo is not None and memo[0] is suggestion:
        return memo[1]
    found = _cited_assertions(suggestion, chart)
    chart._asserted[id(suggestion)] = (suggestion, found)
    return found


def _cited_assertions(suggestion: AiSuggestion, chart: Chart) -> CitedAssertions:
    action = suggestion.action
    acted = _acted_on(action, chart)
    if not any(acted.values()):
        return CitedAssertions()
    facts = chart.rule_facts()
    cited = frozenset(suggestion.citations.patient) | ({action.target} if action.target else set())
    taken = frozenset(k for e in facts.exposures for k in (*e.ingredients, *e.classes))
    taken_cited = frozenset(
        k for e in facts.exposures if e.handle in cited for k in (*e.ingredients, *e.classes)
    )
    direction = dose_direction(action, chart) if "change-dose" in acted else None
    supporting: list[tuple[str, Assertion]] = []
    opposing: list[tuple[str, Assertion]] = []
    for entry_id in suggestion.citations.knowledge:
        entry = chart.knowledge.get(entry_id)
        for assertion in entry.assertions if entry is not None else ():
            named = acted.get(assertion.intent, frozenset())
            subjects = assertion.tests if assertion.intent == "order-test" else assertion.drugs
            if named.isdisjoint(subjects):
                continue
            opposes = assertion.stance == "opposes"
            if not _labs_hold(assertion, facts, None if opposes else cited):
                continue
            if not _allergy_holds(assertion, chart, None if opposes else cited):
                continue
            if (
                assertion.direction != "any"
                and direction != assertion.direction
                and not (opposes and direction is None)
            ):
                continue
            # An order-test's drugs say whose monitoring the test is: one of them must be taken (cited, to
            # support), like a `with` drug.
            needs = tuple(assertion.with_drugs) + (
                assertion.drugs if assertion.intent == "order-test" else ()
            )
            if opposes:
                charted = all(facts.has_condition(v) for v in assertion.when)
                if charted and (not needs or not taken.isdisjoint(needs)):
                    opposing.append((entry_id, assertion))
                continue
            shown = all(cited & set(facts.value_sets.get(v, ())) for v in assertion.when)
            with_ok = not assertion.with_drugs or not taken_cited.isdisjoint(assertion.with_drugs)
            for_ok = (
                assertion.intent != "order-test"
                or not assertion.drugs
                or not taken_cited.isdisjoint(assertion.drugs)
            )
            if shown and with_ok and for_ok:
                supporting.append((entry_id, assertion))
    return CitedAssertions(tuple(supporting), tuple(opposing))


def check_support(suggestion: AiSuggestion, chart: Chart, policy: GovernancePolicy) -> Verdict:
    asserted = cited_assertions(suggestion, chart)
    if asserted.opposing:
        entry_id, assertion = asserted.opposing[0]
        return Verdict(Reason.CONTRADICTED_BY_CITATION, f"{entry_id} {assertion.describe()}")
    entries = [e for k in suggestion.citations.knowledge if (e := chart.knowledge.get(k)) is not None]
    evidence_texts = [t for e in entries for t in _entry_texts(e)]
    evidence_texts += [t for h in suggestion.citations.patient for t in chart.facts.get(h, ())]
    evidence = text.key_terms(evidence_texts)
    claim = text.key_terms(_texts(suggestion))
    shared = claim & evidence
    if len(shared) < policy.min_shared_terms:
        return Verdict(
            Reason.UNSUPPORTED_CLAIM,
            f"shares {len(shared)} key term(s) with its citations, needs {policy.min_shared_terms}",
        )
    basis = ""
    if asserted.supporting:
        entry_id, assertion = asserted.supporting[0]
        basis = f"{entry_id} {assertion.describe()}"
    numbers = _check_numbers(suggestion, chart, entries, policy)
    if numbers is not None:
        return numbers
    terms = f"{len(shared)} shared key terms: {', '.join(sorted(shared)[:6])}"
    return _ok(f"{basis}; {terms}" if basis else terms)


def check_basis(suggestion: AiSuggestion, chart: Chart) -> Verdict:
    """Support as structured evidence (issue 18): a suggestion that changes the regimen or orders a test is
    supported only by a cited passage asserting this very intent for this target under conditions the cited
    facts meet. Run after safety, so that a harmful proposal is named by what it would harm, not by its
    missing citation; word overlap (the support step) is only a secondary screen."""
    action = suggestion.action
    if action.intent not in ASSERTED_SUGGESTION_INTENTS:
        return _ok(f"{action.intent} changes no order: no asserted basis needed")
    asserted = cited_assertions(suggestion, chart)
    if not asserted.supporting:
        what = action.target or (action.code.display[:40] if action.code is not None else "its target")
        return Verdict(
            Reason.UNSUPPORTED_CLAIM,
            f"no cited passage asserts {action.intent} of {what!r} under the cited facts",
        )
    entry_id, assertion = asserted.supporting[0]
    return _ok(f"{entry_id} {assertion.describe()}")


def check_safety(suggestion: AiSuggestion, chart: Chart, policy: GovernancePolicy) -> Verdict:
    action = suggestion.action
    if action.type == "none" or action.resource_type != "MedicationRequest":
        return _ok(f"no medication changed ({action.type})")
    findings: tuple[Finding, ...] = ()
    if action.code is not None:  # a stop or a withdrawal proposes no drug of its own
        findings = chart.veto(action)
        if action.dose is not None:
            # The code-only veto reads no dose ("gabapentin at CrCl 22"): a dosed proposal is judged by the
            # regimen run below, which sees the dose; only an unresolved drug is decided here.
            findings = tuple(f for f in findings if f.rule_id == UNRESOLVED_RULE)
    if any(f.rule_id == UNRESOLVED_RULE for f in findings):
        display = action.code.display if action.code is not None else ""
        return Verdict(
            Reason.SAFETY_VETO,
            f"{UNRESOLVED_RULE}: {display[:40]!r} matches no known ingredient, so its interactions cannot be checked",
        )
    if action.dose is not None and not dose_checkable(action):
        display = action.code.display if action.code is not None else ""
        return Verdict(
            Reason.DOSE_UNCHECKED,
            f"no dose range can judge {action.dose.amount:g} {action.dose.unit} of {display[:40]!r}",
        )
    change = chart.regimen(action)
    removed = change.removed
    if removed:
        # A cited passage that supports stopping this drug under conditions the chart meets lets a
        # protected therapy go (the stop is the guideline's own advice, e.g. after a major bleed).
        supported = {a for _, a in cited_assertions(suggestion, chart).supporting if a.intent == "stop"}
        if supported:
            removed = ()
    if removed:
        lost = "; ".join(f"{t.label} ({t.knowledge})" for t in removed)
        return Verdict(Reason.PROTECTED_THERAPY_REMOVED, f"{action.type} of {action.target} leaves no {lost}")
    if findings:
        rules = ", ".join(dict.fromkeys(f.rule_id for f in findings))
        return Verdict(Reason.SAFETY_VETO, f"conflicts with {rules}")
    if change.dosing:
        rules = ", ".join(dict.fromkeys(f.rule_id for f in change.dosing))
        if all(f.rule_id == WEIGHT_UNKNOWN_RULE for f in change.dosing):
            return Verdict(Reason.DOSE_UNCHECKED, f"{rules}: a child's dose needs a current weight")
        return Verdict(Reason.DOSE_OUT_OF_RANGE, f"the proposed dose is outside {rules}")
    if change.added:
        rules = ", ".join(dict.fromkeys(f.rule_id for f in change.added))
        return Verdict(Reason.SAFETY_VETO, f"the regimen after the {action.type} adds {rules}")
    return _ok(f"no rule finding and no protected therapy lost by the {action.type}")


def build_resource(action: ProposedAction, patient_reference: str | None) -> dict[str, Any] | None:
    """The draft FHIR resource a create or update would put before the clinician; None otherwise."""
    if action.type not in ("create", "update") or action.code is None or action.resource_type is None:
        return None
    concept = {
        "coding": [
            {
                "system": SYSTEM_URIS[action.code.system],
                "code": action.code.code,
                "display": action.code.display,
            }
        ],
        "text": action.code.display,
    }
    # Without a reference the subject is a display-only placeholder: the card layer binds the patient.
    subject = {"reference": patient_reference} if patient_reference is not None else {"display": "Patient"}
    resource: dict[str, Any] = {
        "resourceType": action.resource_type,
        "status": "draft",
        "intent": "proposal",
        "subject": subject,
    }
    if action.resource_type == "MedicationRequest":
        resource["medicationCodeableConcept"] = concept
        if action.dose is not None:
            resource["dosageInstruction"] = [_dosage_instruction(action.dose)]
    else:
        resource["code"] = concept
    return resource


_UCUM_UNITS: Final = {"mg": "mg", "mcg": "ug", "g": "g", "mL": "mL"}
_ROUTES: Final = {  # SNOMED CT route of administration concepts
    "oral": ("26643006", "Oral route"),
    "sublingual": ("37839007", "Sublingual route"),
    "intravenous": ("47625008", "Intravenous route"),
    "intramuscular": ("78421000", "Intramuscular route"),
    "subcutaneous": ("34206005", "Subcutaneous route"),
    "inhaled": ("447694001", "Respiratory tract route"),
    "nasal": ("46713006", "Nasal route"),
    "topical": ("6064005", "Topical route"),
    "transdermal": ("45890007", "Transdermal route"),
    "rectal": ("37161004", "Rectal route"),
    "vaginal": ("16857009", "Vaginal route"),
    "ophthalmic": ("54485002", "Ophthalmic route"),
}


def _dosage_instruction(dose: Dose) -> dict[str, Any]:
    amount, frequency = dose_text(dose)
    quantity: dict[str, Any] = {"value": dose.amount, "unit": dose.unit}
    if dose.unit in _UCUM_UNITS:
        quantity |= {"system": "http://unitsofmeasure.org", "code": _UCUM_UNITS[dose.unit]}
    route_code, route_display = _ROUTES[dose.route]
    return {
        "text": f"{amount} {dose.route}, {frequency.replace(' per 1 ', ' per ')}",
        "timing": {"repeat": {"frequency": dose.frequency, "period": 1, "periodUnit": dose.period}},
        "route": {
            "coding": [{"system": SYSTEM_URIS["snomed"], "code": route_code, "display": route_display}]
        },
        "doseAndRate": [{"doseQuantity": quantity}],
    }


def _validator(resource_type: str) -> Callable[[dict[str, Any]], object]:
    # Imported on first use: fhir.resources' model modules are large and only this step needs them.
    if resource_type == "MedicationRequest":
        from fhir.resources.R4B.medicationrequest import MedicationRequest

        return MedicationRequest.model_validate
    from fhir.resources.R4B.servicerequest import ServiceRequest

    return ServiceRequest.model_validate


def check_actions(
    suggestion: AiSuggestion, chart: Chart, policy: GovernancePolicy, patient_reference: str | None
) -> tuple[Verdict, dict[str, Any] | None]:
    action = suggestion.action
    if action.type not in policy.allowed_action_types:
        return Verdict(Reason.ACTION_NOT_ALLOWED, f"action type {action.type} is not allowed"), None
    if action.resource_type is None:
        return _ok("advice without an order"), None
    if action.resource_type not in policy.allowed_resource_types:
        return Verdict(
            Reason.ACTION_NOT_ALLOWED, f"resource type {action.resource_type} is not allowed"
        ), None
    if action.target is not None:
        kind = chart.order_types.get(action.target)
        if kind is None:
            return Verdict(
                Reason.ACTION_NOT_ALLOWED, f"target {action.target} is not an order of this context"
            ), None
        if kind != action.resource_type:
            return Verdict(
                Reason.ACTION_NOT_ALLOWED, f"target {action.target} is a {kind}, not a {action.resource_type}"
            ), None
    resource = build_resource(action, patient_reference)
    if resource is None:
        return _ok(f"{action.type} of {action.target}"), None
    try:
        _validator(action.resource_type)(resource)
    except ValidationError as exc:
        return Verdict(
            Reason.INVALID_RESOURCE, f"{action.resource_type}: {exc.error_count()} validation error(s)"
        ), None
    return _ok(f"valid draft {action.resource_type}"), resource

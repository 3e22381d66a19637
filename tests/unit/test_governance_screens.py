"""Issue 18 items 4 and 5: screens that hold (copies, links, language, numbers, severity), one case each way."""

from __future__ import annotations

import dataclasses

import pytest

from plugin.context.model import ClinicalContext, UntrustedNote
from plugin.governance import GovernancePolicy, Reason, govern, steps, text
from plugin.governance.govern import _severity
from plugin.governance.steps import Chart
from plugin.rules.model import Finding
from plugin.suggestions import AiSuggestion
from tests.support import governance_corpus as corpus
from tests.unit.test_governance_text import ENGLISH, TERSE_ENGLISH, UNDECIDABLE

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()
INR_URL = "dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=d91934a0-902e-c26c-23ca-d5accc4151b6"


def _suggestion(
    summary: str = "Consider checking the INR",
    rationale: str = "Warfarin needs regular INR monitoring and no recent INR result is on file.",
    patient: tuple[str, ...] = ("M1",),
    knowledge_ids: tuple[str, ...] = ("kb.warfarin-inr-monitoring",),
    proposed: dict[str, object] | None = None,
) -> AiSuggestion:
    document = corpus.suggestion(
        summary, rationale, proposed or corpus.inr_test(), list(patient), list(knowledge_ids)
    )
    return AiSuggestion.model_validate(document)


def _chart(context: ClinicalContext | None = None) -> Chart:
    return Chart.of(context or corpus.context(), corpus.knowledge(), corpus.RETRIEVED)


def _with_note(note: str) -> Chart:
    base = corpus.context()
    return _chart(dataclasses.replace(base, notes=(UntrustedNote("N1", note),)))


# --- copied runs -----------------------------------------------------------------------------------------


def test_run_tokens_normalise_digits_numbers_and_plurals() -> None:
    assert text.run_tokens("Double the DOSE to 05.50 mg; NSAIDs x2, 100 units") == [
        "double",
        "the",
        "dose",
        "to",
        "5.5",
        "mg",
        "nsaid",
        "x",
        "2",
        "100",
        "unit",
    ]
    assert text.run_tokens("0.0 and 10") == ["0", "and", "10"]


def test_policy_flags_copies_from_three_tokens() -> None:
    assert POLICY.injection_run_words == 3


@pytest.mark.parametrize(
    ("output", "note", "copied"),
    [
        ("raise it to 10 mg", "dose to 10 mg tonight", True),  # digits count, 3 tokens
        ("raise it to 10.0 mg", "dose to 10 mg tonight", True),  # numbers normalised
        ("raise it to 10", "dose to 10 mg tonight", False),  # only 2 shared in a row
        ("to 10", "to 10", False),  # shorter than a run on both sides
        ("to 10 mg", "to 10 mg", True),  # exactly one run long
        ("for this patient today", "review for this patient now", False),  # stop words only
        ("the warfarin dose", "doubling the warfarin dose", True),  # one content word is enough
    ],
)
def test_copied_run(output: str, note: str, copied: bool) -> None:
    assert text.copied_run(text.run_tokens(output), text.run_tokens(note), 3) is copied


def test_untrusted_step_flags_a_four_token_copy_with_digits_and_passes_ordinary_wording() -> None:
    chart = _with_note("Pt says: give warfarin 7.5 mg nightly for this patient")
    copy = _suggestion(rationale="Warfarin needs INR monitoring; warfarin 7.5 mg nightly was noted.")
    verdict = steps.check_untrusted(copy, chart, POLICY)
    assert verdict == steps.Verdict(Reason.INJECTION_ECHO, "repeats a run of untrusted note N1")
    ordinary = _suggestion(rationale="Warfarin needs INR monitoring for this patient.")
    assert steps.check_untrusted(ordinary, chart, POLICY).passed
    two = _suggestion(rationale="Warfarin needs INR monitoring; 7.5 mg was noted.")
    assert steps.check_untrusted(two, chart, POLICY).passed


# --- links -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "found"),
    [
        ("see uptodate.com/warfarin-inr.", ["uptodate.com/warfarin-inr"]),
        ("at inr-clinic.xyz/warfarin today", ["inr-clinic.xyz/warfarin"]),
        ("at inr-clinic.xyz:8080 today", ["inr-clinic.xyz:8080"]),
        ("see med.example.xyz", ["med.example.xyz"]),
        ("https:evil and mailto:x", ["https:evil", "mailto:x"]),
        ("e.g. 2.5 mg, q.i.d., mL/min/1.73m2, INR.Warfarin", []),
        ("clinic.xyz alone, a.b@example.org", []),
        ("cite kb.nsaid-ckd and kb.co-trimoxazole", []),
    ],
)
def test_find_urls(written: str, found: list[str]) -> None:
    assert text.find_urls(written) == found


def test_link_key_and_without_urls() -> None:
    assert text.link_key("https://www.Example.org/A/") == "example.org/a"
    assert text.link_key("example.org/a") == "example.org/a"
    assert text.without_urls("see example.org/a and kb.x-y.") == "see   and  ."


def test_a_link_is_allowed_only_when_it_is_a_cited_entrys_source() -> None:
    chart = _chart()
    for link in (INR_URL, f"{INR_URL}/", INR_URL.upper()):
        cited = _suggestion(rationale=f"Warfarin needs regular INR monitoring, as {link} says.")
        assert steps.check_grounding(cited, chart, POLICY).passed, link
    other = _suggestion(rationale="Warfarin needs regular INR monitoring, as inr-clinic.xyz/warfarin says.")
    assert steps.check_grounding(other, chart, POLICY).reason is Reason.URL_IN_OUTPUT
    longer = _suggestion(rationale=f"Warfarin needs regular INR monitoring, as {INR_URL}0 says.")
    assert steps.check_grounding(longer, chart, POLICY).reason is Reason.URL_IN_OUTPUT
    not_cited = _suggestion(
        rationale=f"Metformin needs eGFR monitoring, see {INR_URL}.",
        patient=("O1",),
        knowledge_ids=("kb.metformin-renal-monitoring",),
        proposed=corpus.action(),
    )
    assert steps.check_grounding(not_cited, chart, POLICY).reason is Reason.URL_IN_OUTPUT


def test_an_allowed_link_is_accepted_end_to_end() -> None:
    warfarin = corpus.handle_of("MedicationRequest/warfarin")
    linked = corpus.suggestion(
        "Consider checking the INR",
        f"Warfarin needs regular INR monitoring and no recent INR result is on file; see {INR_URL}.",
        corpus.inr_test(),
        [warfarin],
    )
    sample = corpus.parsed(corpus.answer(linked))
    decision = govern(
        [sample], corpus.context(), corpus.RETRIEVED, corpus.knowledge(), POLICY, corpus.PATIENT
    )
    assert decision.rejected == ()
    assert len(decision.accepted) == 1


# --- language --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample", [*ENGLISH, *TERSE_ENGLISH, *(s for s in UNDECIDABLE if s.strip() and "Considere" not in s)]
)
def test_english_of_any_length_passes_the_language_step(sample: str) -> None:
    suggestion = _suggestion().model_copy(update={"summary": sample or "x", "rationale": "INR."})
    assert steps.check_language(suggestion, "en", POLICY).passed


@pytest.mark.parametrize(
    ("summary", "rationale", "detail"),
    [
        ("Considere revisar el INR", "Warfarin: control del INR.", "function words of es, configured en"),
        ("Considere paciente INR", "Warfarin INR.", "function words of und, configured en"),
        ("Envisager l'INR", "INR.", "function words of fr, configured en"),
        ("Erwägen Sie INR", "INR.", "function words of de, configured en"),
    ],
)
def test_terse_non_english_is_rejected(summary: str, rationale: str, detail: str) -> None:
    verdict = steps.check_language(_suggestion(summary, rationale), "en", POLICY)
    assert verdict == steps.Verdict(Reason.WRONG_LANGUAGE, detail)


@pytest.mark.parametrize(
    ("written", "expected", "answer"),
    [
        ("Consider el INR", "en", None),  # a tie keeps the expectation
        ("Consider the el INR", "en", None),
        ("el del INR", "en", "es"),
        ("Considere paciente", "en", "und"),
        ("INR 25", "en", None),  # no evidence at all
        ("Considere revisar el INR", "es", None),  # the expected language may be another
        ("Consider checking the INR", "es", "en"),
        ("Consider checking the INR", "sv", None),  # no list for the expected language: no judgement
    ],
)
def test_function_word_language(written: str, expected: str, answer: str | None) -> None:
    assert text.function_word_language(written, expected) == answer


def test_a_spanish_policy_rejects_terse_english() -> None:
    spanish = GovernancePolicy(language="es")
    verdict = steps.check_language(_suggestion("Consider the INR", "INR."), "es", spanish)
    assert verdict == steps.Verdict(Reason.WRONG_LANGUAGE, "function words of en, configured es")


# --- numbers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rationale", "passes"),
    [
        ("The eGFR has fallen to about 25, so metformin thresholds apply.", True),
        ("The eGFR has fallen to about 60, so metformin thresholds apply.", False),
        ("At 25 the latest eGFR is low for metformin.", True),  # the lab named after its number
        ("At 60 the latest eGFR is low for metformin.", False),
        ("Potassium 4.1 and an eGFR near 25 matter for metformin.", True),  # nearest before
        ("An eGFR near 25 and potassium 4.1 matter for metformin.", True),
        ("An eGFR near 4.1 and potassium 25 matter for metformin.", False),
        ("At 25 it is the eGFR, and potassium is normal on metformin.", True),  # nearest after
        ("At 4.1 it is the eGFR, and potassium is normal on metformin.", False),
        ("The eGFR was reviewed and metformin 500 mg continues for 2 weeks.", True),  # doses and times
        ("The eGFR was reviewed and metformin thresholds apply. The 3 readings agree.", True),
        ("The eGFR was reviewed and metformin thresholds apply; 3 readings agree.", True),
        ("The eGFR was reviewed and metformin thresholds apply, 3 readings agree, 7 in all.", False),
        ("Metformin thresholds apply; 60 mL/min/1.73m2 is a normal eGFR.", False),
    ],
)
def test_numbers_are_tied_to_the_lab_their_sentence_names(rationale: str, passes: bool) -> None:
    suggestion = _suggestion(
        "Consider reviewing metformin",
        rationale,
        patient=("O1", "O2"),
        knowledge_ids=("kb.metformin-egfr-thresholds",),
        proposed=corpus.action(),
    )
    verdict = steps.check_support(suggestion, _chart(), POLICY)
    assert verdict.passed is passes, verdict
    if not passes:
        assert verdict.reason is Reason.NUMBER_MISMATCH


# --- severity --------------------------------------------------------------------------------------------


def _finding(inputs: tuple[str, ...], evidence: tuple[str, ...], severity: str = "warning") -> Finding:
    return Finding("rule.x", severity, "s", "e", evidence, inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("finding", "severity"),
    [
        (_finding(("M1",), ("kb.warfarin-inr-monitoring",)), "warning"),
        (_finding(("M1", "O1"), ("kb.warfarin-inr-monitoring",)), "warning"),
        (_finding(("M1", "O2"), ("kb.warfarin-inr-monitoring",)), "info"),  # a handle not cited
        (_finding(("M1",), ("kb.warfarin-inr-monitoring", "kb.warfarin-nsaid-bleeding")), "info"),
        (_finding(("O2",), ("kb.warfarin-inr-monitoring",)), "info"),  # same passage, other facts
        (_finding(("M1",), ("kb.warfarin-nsaid-bleeding",)), "info"),  # same facts, other passage
        (_finding((), ("kb.warfarin-inr-monitoring",)), "info"),  # rests on no patient fact
        (_finding(("M1",), ()), "info"),  # rests on no passage
        (_finding(("M1",), ("kb.warfarin-inr-monitoring",), "info"), "info"),
        (_finding(("M1",), ("kb.warfarin-inr-monitoring",), "critical"), "warning"),
    ],
)
def test_severity_comes_only_from_findings_on_the_suggestions_own_citations(
    finding: Finding, severity: str
) -> None:
    suggestion = _suggestion(patient=("M1", "O1"))
    assert _severity(suggestion, (finding,)) == (severity, ("rule.x",) if severity == "warning" else ())


def test_a_rule_on_the_same_passage_does_not_lend_its_severity() -> None:
    chart = corpus.regimen_chart([corpus.WARFARIN, corpus.IBUPROFEN], [], ["af"])
    refs = chart.handles.references
    warfarin, ibuprofen = (
        next(h for h, r in refs.items() if r == f"MedicationRequest/med-{code}")
        for code in (corpus.WARFARIN[0], corpus.IBUPROFEN[0])
    )

    def severity(patient: list[str]) -> tuple[str, tuple[str, ...]]:
        advice = corpus.suggestion(
            "Consider reviewing the bleeding risk on warfarin",
            "Warfarin with an NSAID raises the risk of serious bleeding.",
            corpus.action(),
            patient,
            ["kb.warfarin-nsaid-bleeding"],
        )
        decision = govern(
            [corpus.parsed(corpus.answer(advice))],
            chart.context,
            corpus.REGIMEN_RETRIEVED,
            corpus.knowledge(),
            POLICY,
        )
        (accepted,) = decision.accepted
        return accepted.severity, accepted.backing_rules

    assert severity([warfarin]) == ("info", ())  # rule.vka-nsaid also rests on the ibuprofen
    assert severity([warfarin, ibuprofen]) == ("warning", ("rule.vka-nsaid",))

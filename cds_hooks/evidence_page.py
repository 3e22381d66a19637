"""The evidence page of one AI review: what the model saw, what it said, what governance kept and dropped.

A clinician (or an incident reviewer) opens it from an AI card's "Evidence and governance review" link, or
from the "AI review in progress" card. It answers, for each card, the questions FDA CDS criterion 4 and a
governance committee ask: which patient data (with the caller's original FHIR references and the values
the model was shown), which evidence (linked to its publisher), the rationale, the confidence (agreement
across independent samples), which model and prompt, and what governance dropped and why.

Plain server-rendered HTML with one inline stylesheet and no script: it works in an EHR's embedded
browser. While the review is pending the page asks the browser to reload it (meta refresh), so it moves to
the result by itself. Nothing here is PHI beyond what the caller already holds: values come from the
de-identified context (relative days, no names), references are the caller's own.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Final

from plugin.ai_cards import card_uuid
from plugin.ai_review import Evidence
from plugin.governance import GovernedSuggestion
from plugin.governance.model import Decision, Reason
from plugin.knowledge import KnowledgeBase
from plugin.model_port import ModelIdentity
from plugin.review import ReviewOutcome
from plugin.rules.cards import describe

__all__ = [
    "ABSTAIN_TEXT",
    "DETAIL_LABELS",
    "REASON_PHRASES",
    "REASON_TEXT",
    "REFRESH_S",
    "SCRIPTED_NOTICE",
    "abstention_line",
    "render_evidence",
    "render_message",
]

REFRESH_S: Final = 5
ABOUT_PATH: Final = "/about"
ICON_PATH: Final = "/favicon.ico"
SCRIPTED_NOTICE: Final = "Scripted demonstration output, not a model"

# Why a review shows no suggestion (Decision.abstain_reason), for a reader who has not read plugin/governance.
ABSTAIN_TEXT: Final[Mapping[str, str]] = {
    "empty-retrieval": "No knowledge-base passage applies to this chart, so nothing the model said could be "
    "backed by evidence.",
    "no-valid-output": "None of the model's answers was readable in the required format.",
    "model-abstained": "The model's answers offered no suggestion for this chart.",
    "nothing-passed": "The model made suggestions, but governance dropped every one of them.",
}

# What the model's identity details are called on the page (keys from inference/: sglang, openai_compat,
# llamacpp, scripted); a key not listed here is shown with its underscores as spaces.
DETAIL_LABELS: Final[Mapping[str, str]] = {
    "clinical_use": "Clinical use",
    "model_path": "Model weights",
    "script_version": "Script version",
    "is_generation": "Generative model",
    "weight_version": "Weight version",
    "model_type": "Model type",
    "architectures": "Architectures",
    "server_info": "Server information",
    "sglang_version": "SGLang version",
    "served_model_name": "Served model name",
    "tp_size": "Tensor-parallel size",
    "dp_size": "Data-parallel size",
    "context_length": "Context length (tokens)",
    "max_model_len": "Context length (tokens)",
    "reasoning_parser": "Reasoning parser",
    "quantization": "Quantization",
    "dtype": "Weight data type",
    "kv_cache_dtype": "KV cache data type",
    "grammar_backend": "Grammar backend",
    "speculative_algorithm": "Speculative decoding",
    "enable_cache_report": "Cache report enabled",
    "owned_by": "Owned by",
    "root": "Base model",
}
_BACKENDS: Final[Mapping[str, str]] = {
    "sglang": "on SGLang",
    "openai": "on an OpenAI-compatible server",
    "llamacpp": "on llama.cpp",
    "scripted": "scripted demonstration, not a model",
    "recorded": "replayed from recorded samples",
}
# A server's file system path: absolute, home-relative, Windows, file: URL, or explicitly relative.
_PATH: Final = re.compile(r"^(?:/|~|\\|[A-Za-z]:[\\/]|file:|\.{1,2}[\\/])")
_WEIGHTS_FILE: Final = re.compile(r"\.(?:gguf|ggml|bin|safetensors|pt|pth|onnx)$", re.IGNORECASE)

# What each governance reason means, for a reader who has not read plugin/governance.
REASON_TEXT: Final[Mapping[str, str]] = {
    Reason.NOT_OK_OUTPUT: "The sample was not a readable answer in the required format.",
    Reason.EMPTY_RETRIEVAL: "No knowledge-base passage applied to this chart, so nothing could be cited.",
    Reason.UNKNOWN_PATIENT_HANDLE: "It cited patient data that is not in this chart.",
    Reason.UNKNOWN_KNOWLEDGE_ID: "It cited a knowledge-base entry that does not exist.",
    Reason.KNOWLEDGE_NOT_RETRIEVED: "It cited a knowledge-base entry the model was not shown.",
    Reason.URL_IN_OUTPUT: (
        "It contained a web address that is not the source of a passage it cites; links come only from the "
        "knowledge base."
    ),
    Reason.INJECTION_ECHO: (
        "It repeated three or more words or numbers from a chart note, a sign of instructions hidden in notes."
    ),
    Reason.IDENTIFIER_ECHO: "It contained something shaped like a patient identifier.",
    Reason.WRONG_LANGUAGE: "It was not written in the card language.",
    Reason.SUMMARY_TOO_LONG: "Its summary was longer than a card allows.",
    Reason.DIRECTIVE_PHRASING: "It was phrased as an order rather than an option to consider.",
    Reason.UNSUPPORTED_CLAIM: "Its claim was not supported by the cited passages and patient data.",
    Reason.NUMBER_MISMATCH: "It quoted a measurement that differs from the chart.",
    Reason.SAFETY_VETO: "It proposed something a deterministic safety rule forbids for this patient.",
    Reason.PROTECTED_THERAPY_REMOVED: (
        "It would stop a therapy this patient's condition needs, with nothing of the same kind in its place."
    ),
    Reason.CONTRADICTED_BY_CITATION: (
        "A passage it cites says the opposite of what it proposed for this patient (for example, stopping "
        "an anticoagulant in atrial fibrillation)."
    ),
    Reason.UNDECLARED_ACTION: (
        "Its text recommended a medication change (a stop, start, dose change or switch) that its declared "
        "action does not carry out, so that change was never checked against the regimen."
    ),
    Reason.INTENT_MISMATCH: (
        "Its declared intent does not fit its order: a dose change naming another drug, or a substitution "
        "naming the same one."
    ),
    Reason.DOSE_OUT_OF_RANGE: (
        "The dose it proposed is outside the dose-range table or the renal or label limits for this patient."
    ),
    Reason.DOSE_UNCHECKED: (
        "It proposed a dose that no dose-range limit in the knowledge base can check, so it was not shown."
    ),
    Reason.ACTION_NOT_ALLOWED: "It proposed a kind of order this service does not allow.",
    Reason.INVALID_RESOURCE: "The order it proposed is not a valid FHIR resource.",
    Reason.BELOW_AGREEMENT: "Too few of the independent samples proposed it.",
}

# The same reasons as a count's predicate ("2 conflicted with safety rules"), for the one plain line that says
# why nothing was shown: built from reason codes only, so it never holds patient data or model text.
REASON_PHRASES: Final[Mapping[str, str]] = {
    Reason.NOT_OK_OUTPUT: "could not be read in the required format",
    Reason.EMPTY_RETRIEVAL: "had no knowledge-base passage to rest on",
    Reason.UNKNOWN_PATIENT_HANDLE: "cited patient data that is not in this chart",
    Reason.UNKNOWN_KNOWLEDGE_ID: "cited a source that does not exist",
    Reason.KNOWLEDGE_NOT_RETRIEVED: "cited a source that was not retrieved",
    Reason.URL_IN_OUTPUT: "held a web link that is not a cited source",
    Reason.INJECTION_ECHO: "repeated text from a chart note",
    Reason.IDENTIFIER_ECHO: "held something shaped like a patient identifier",
    Reason.WRONG_LANGUAGE: "did not use the card language",
    Reason.SUMMARY_TOO_LONG: "had a summary too long for a card",
    Reason.DIRECTIVE_PHRASING: "read as orders rather than options",
    Reason.UNSUPPORTED_CLAIM: "made a claim its sources do not support",
    Reason.NUMBER_MISMATCH: "quoted a measurement that differs from the chart",
    Reason.SAFETY_VETO: "conflicted with safety rules",
    Reason.PROTECTED_THERAPY_REMOVED: "would stop a therapy the patient's condition needs",
    Reason.CONTRADICTED_BY_CITATION: "proposed what a passage it cites advises against",
    Reason.UNDECLARED_ACTION: "recommended a medication change its action does not declare",
    Reason.INTENT_MISMATCH: "declared an intent its order does not match",
    Reason.DOSE_OUT_OF_RANGE: "proposed a dose outside the limits for this patient",
    Reason.DOSE_UNCHECKED: "proposed a dose no known limit can check",
    Reason.ACTION_NOT_ALLOWED: "proposed a kind of order this service does not allow",
    Reason.INVALID_RESOURCE: "proposed an order that is not valid FHIR",
    Reason.BELOW_AGREEMENT: "had too little agreement across the samples",
}

_STYLE: Final = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.45;max-width:64rem;"
    "margin:1.5rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}"
    "h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}"
    "h3{font-size:1.05rem;margin:1rem 0 .3rem}"
    "table{border-collapse:collapse;width:100%;margin:.5rem 0}"
    "th,td{border:1px solid #bbb;padding:.35rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}code{font-size:.85rem;word-break:break-all}"
    ".card{border:1px solid #bbb;border-left-width:6px;border-radius:.25rem;padding:.3rem 1rem 1rem;"
    "margin:1rem 0}.card.info{border-left-color:#1d4ed8}.card.warning{border-left-color:#b45309}"
    ".badge{display:inline-block;padding:.05rem .4rem;border-radius:.25rem;font-size:.8rem;font-weight:600;"
    "border:1px solid;margin-right:.4rem;text-transform:uppercase}"
    ".badge.info{color:#1e3a8a;background:#eff6ff}.badge.warning{color:#7c2d12;background:#fff7ed}"
    ".state{padding:.6rem .8rem;border-left:4px solid;margin:1rem 0}"
    ".state.pending{border-color:#1d4ed8;background:#eff6ff}.state.ready{border-color:#15803d;"
    "background:#f0fdf4}.state.failed{border-color:#b91c1c;background:#fef2f2}"
    ".state.nothing{border-color:#6b7280;background:#f3f4f6}.state p,.state ul{margin:.4rem 0 0}"
    ".notice{border:2px solid #b45309;background:#fffbeb;padding:.6rem .8rem;margin:1rem 0;font-size:1.05rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}"
    "ol.evidence li{margin-bottom:.4rem}.muted{color:#555;font-size:.9rem}"
)
HEADERS: Final = {
    "Cache-Control": "no-store",  # the page changes when the review lands; never serve a stale pending
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: evidence links must not carry it away
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'"
    ),
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _document(title: str, body: str, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f'<title>{_e(title)} - R1 CDS</title><link rel="icon" href="{ICON_PATH}" type="image/svg+xml">'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{body}"
        f'<p class="muted">About the model, its intended use and its limits: <a href="{ABOUT_PATH}">model card'
        "</a>. This page is reachable only through its link and expires with the review.</p></body></html>"
    )


def render_message(title: str, text: str) -> str:
    """A page that only says something (not found, store unavailable)."""
    return _document(title, f"<p>{_e(text)}</p>")


def render_evidence(evidence: Evidence, knowledge: KnowledgeBase) -> str:
    """The whole page for one call's review, in its current state."""
    status = evidence.status
    service = _e(evidence.link.service_id)
    if status.state in ("pending", "busy"):
        body = (
            f'<div class="state pending" id="review-state" data-state="pending"><strong>The AI review '
            f"({service}) is running.</strong> The rule cards are already complete. This page reloads every "
            f"{REFRESH_S} seconds and shows the result when it lands.</div>"
        )
        return _document("AI review in progress", body, refresh=True)
    outcome = status.outcome
    if outcome is None or outcome.failed or outcome.decision is None:
        error = f" ({_e(outcome.error)})" if outcome is not None and outcome.error else ""
        body = _model_notice(outcome.model if outcome is not None else None) + (
            '<div class="state failed" id="review-state" data-state="failed"><strong>The AI review could not '
            f"be completed{error}.</strong> No AI suggestion is shown rather than an unchecked one; the rule "
            "cards are unaffected.</div>"
        )
        if outcome is not None:
            body += _provenance(outcome, knowledge)
        return _document("AI review unavailable", body)
    decision = outcome.decision
    body = _model_notice(outcome.model) + _summary(decision) + _cards(evidence, outcome, decision, knowledge)
    body += _dropped(decision) + _provenance(outcome, knowledge)
    return _document("AI review evidence" if decision.accepted else "AI review: no suggestion", body)


def _model_notice(model: ModelIdentity | None) -> str:
    """Says at the top when what answered is not a real model (scripted) or is a demonstration model."""
    if model is None:
        return ""
    if model.backend == "scripted":
        return (
            f'<p class="notice" id="model-notice" data-backend="scripted"><strong>{SCRIPTED_NOTICE}.</strong> '
            "The answers were written in advance for the demonstration patients and went through governance "
            "like a model's would; no language model was called.</p>"
        )
    clinical_use = model.details.get("clinical_use")
    if clinical_use:
        return (
            f'<p class="notice" id="model-notice" data-backend="{_e(model.backend)}"><strong>Demonstration '
            f"model ({_e(_public(model.model))}): {_e(clinical_use)}.</strong> It shows how the service works, "
            "not what a clinical model would suggest.</p>"
        )
    return ""


def _summary(decision: Decision) -> str:
    # Machine-readable too (the evaluation harness and integration testers read the decision from here).
    counts = f'data-accepted="{len(decision.accepted)}" data-rejected="{len(decision.rejected)}"'
    if decision.abstained:
        counts += f' data-abstain-reason="{_e(decision.abstain_reason)}"'
    if decision.accepted:
        text = (
            f"{len(decision.accepted)} suggestion(s) passed governance and are shown as cards; "
            f"{len(decision.rejected)} sample or suggestion finding(s) were dropped (listed below)."
        )
        return (
            f'<div class="state ready" id="review-state" data-state="ready" {counts}>'
            f"<strong>Review complete.</strong> {text}</div>"
        )
    # Finished, but with nothing to show: neutral, not the green of a result, and says why.
    reason = decision.abstain_reason or ""
    why = ABSTAIN_TEXT.get(reason, f"The review gave no reason ({reason})." if reason else "")
    dropped = Counter(r.reason for r in decision.rejected)
    if dropped:
        items = "".join(
            f"<li>{count} × {_e(REASON_TEXT.get(r, r))}</li>" for r, count in dropped.most_common()
        )
        what = f"<p>What governance dropped (each one is listed below):</p><ul>{items}</ul>"
    else:
        what = "<p>Governance dropped nothing: there was no suggestion to check.</p>"
    return (
        f'<div class="state nothing" id="review-state" data-state="ready" {counts}>'
        "<strong>The AI review found nothing it could stand behind.</strong> No AI suggestion is shown; "
        f'the rule cards are unaffected.<p id="abstain-line">{_e(abstention_line(decision))}</p>'
        f'<p id="abstain-why">Why: {_e(why)}</p>{what}</div>'
    )


def abstention_line(decision: Decision) -> str:
    """Why nothing from the AI is shown, in one plain sentence built from the rejections' reason codes."""
    answers = sum(1 for record in decision.log if record.step == "schema")
    if answers == 0:
        return "No model answer came back to check, so none could be shown."
    checked = f"{answers} model answer{' was' if answers == 1 else 's were'} checked; none could be shown"
    dropped = Counter(r.reason for r in decision.rejected)
    if not dropped:
        return f"{checked}: the model offered no suggestion."
    parts = ", ".join(
        f"{count} {REASON_PHRASES.get(reason, f'failed the check {reason}')}"
        for reason, count in dropped.most_common()
    )
    return f"{checked}: {parts}."


def _cards(evidence: Evidence, outcome: ReviewOutcome, decision: Decision, knowledge: KnowledgeBase) -> str:
    if not decision.accepted:
        return ""
    described = describe(evidence.context) if evidence.context is not None else {}
    n = len(outcome.samples) or None
    parts = ["<h2>Cards</h2>"]
    for governed in decision.accepted:
        parts.append(_card(evidence, governed, knowledge, described, n))
    return "".join(parts)


def _card(
    evidence: Evidence,
    governed: GovernedSuggestion,
    knowledge: KnowledgeBase,
    described: Mapping[str, str],
    samples: int | None,
) -> str:
    suggestion = governed.suggestion
    identifier = card_uuid(evidence.link.service_id, governed, evidence.link.fingerprint)
    severity = "warning" if governed.severity == "warning" else "info"
    action = suggestion.action
    if action.type == "none":
        proposed = "Advice only; no order is proposed."
    else:
        code = f"{action.code.display} ({action.code.system} {action.code.code})" if action.code else ""
        target = f", on {_reference(action.target, evidence.link.references)}" if action.target else ""
        dose = ""
        if action.dose is not None:
            d = action.dose
            dose = f" at {d.amount:g} {d.unit} {d.route}, {d.frequency} per {d.period}"
        proposed = f"{action.intent}: {action.type} a {action.resource_type} {code}{dose}{target}".strip()
    rows = "".join(
        f'<tr data-handle="{_e(h)}"><td><code>{_e(h)}</code></td>'
        f"<td><code>{_e(evidence.link.references.get(h, 'not in this call'))}</code></td>"
        f"<td>{_e(described.get(h, 'value not available (the review facts have expired)'))}</td></tr>"
        for h in governed.patient_handles
    )
    inputs = (
        '<table class="inputs"><tr><th>Handle shown to the model</th><th>Original reference</th>'
        f"<th>Value the model was shown</th></tr>{rows}</table>"
        if rows
        else "<p>No patient data was cited.</p>"
    )
    k, n = governed.agreement
    # The structured assertion a cited passage makes about this very change, when there is one.
    matched = (
        '<p class="assertion">Matched assertion: ' + "; ".join(_e(text) for text in governed.support) + "</p>"
        if governed.support
        else ""
    )
    backing = (
        f"<p>Also found by the deterministic rules: {_e(', '.join(governed.backing_rules))}.</p>"
        if governed.backing_rules
        else ""
    )
    return (
        f'<section class="card {severity}" id="card-{_e(identifier)}" data-card-uuid="{_e(identifier)}">'
        f'<h3><span class="badge {severity}">{severity}</span>{_e(suggestion.summary)}</h3>'
        f"<dl><dt>Proposed</dt><dd>{_e(proposed)}</dd><dt>Card</dt><dd><code>{_e(identifier)}</code></dd></dl>"
        f"<h3>Patient data used</h3>{inputs}"
        f"<h3>Evidence</h3>{_evidence_list(governed.knowledge_ids, knowledge)}{matched}"
        f"<h3>Rationale</h3><p>{_e(suggestion.rationale)}</p>"
        f'<h3>Confidence</h3><p class="confidence">{k} of {n} independent samples proposed this'
        f"{f' ({samples} drawn)' if samples and samples != n else ''}; the model rated its own confidence "
        f"{_e(suggestion.confidence)}.</p>{backing}</section>"
    )


def _reference(handle: str, references: Mapping[str, str]) -> str:
    found = references.get(handle)
    return f"{handle} ({found})" if found else handle


def _evidence_list(ids: Iterable[str], knowledge: KnowledgeBase) -> str:
    items = []
    for knowledge_id in ids:
        entry = knowledge.get(knowledge_id)
        if entry is None:
            items.append(f"<li><code>{_e(knowledge_id)}</code>: not in this knowledge base version</li>")
            continue
        source = entry.source
        items.append(
            f'<li data-knowledge-id="{_e(entry.id)}"><a class="evidence-link" href="{_e(source.url)}" '
            f'rel="noopener noreferrer" target="_blank">{_e(entry.title)}</a> — {_e(source.organisation)}, '
            f"{_e(source.document)} ({_e(source.version)}). {_e(entry.statement)} "
            f'<span class="muted">[{_e(entry.id)}]</span></li>'
        )
    return f'<ol class="evidence">{"".join(items)}</ol>' if items else "<p>No evidence cited.</p>"


def _dropped(decision: Decision) -> str:
    if not decision.rejected:
        return '<h2>What governance dropped</h2><p id="dropped-none">Nothing was dropped.</p>'
    rows = "".join(
        f'<tr class="rejection" data-reason="{_e(r.reason)}"><td>{r.sample + 1}</td>'
        f"<td>{'' if r.suggestion is None else r.suggestion + 1}</td><td><code>{_e(r.reason)}</code></td>"
        f"<td>{_e(REASON_TEXT.get(r.reason, ''))}</td><td>{_e(r.detail)}</td></tr>"
        for r in decision.rejected
    )
    steps = Counter((record.step, record.passed) for record in decision.log)
    names = sorted({step for step, _ in steps})
    step_rows = "".join(
        f"<tr><td>{_e(s)}</td><td>{steps[(s, True)]}</td><td>{steps[(s, False)]}</td></tr>" for s in names
    )
    return (
        '<h2>What governance dropped</h2><table id="dropped"><tr><th>Sample</th><th>Suggestion</th>'
        f"<th>Reason</th><th>Meaning</th><th>Detail</th></tr>{rows}</table>"
        "<h3>Checks run</h3><table><tr><th>Check</th><th>Passed</th><th>Failed</th></tr>"
        f"{step_rows}</table>"
    )


def _public(value: str) -> str:
    """A value fit to show: a file system path on the model server becomes its file name."""
    if _PATH.match(value) or _WEIGHTS_FILE.search(value):
        windows = "\\" in value
        return (PureWindowsPath(value) if windows else PurePosixPath(value)).name or value
    return value


def _label(key: str) -> str:
    return DETAIL_LABELS.get(key) or key.replace("_", " ").capitalize()


def _model_name(model: ModelIdentity) -> str:
    backend = _BACKENDS.get(model.backend, f"on {model.backend}")
    return f"{_public(model.model)} ({backend})"


def _provenance(outcome: ReviewOutcome, knowledge: KnowledgeBase) -> str:
    model = outcome.model
    rows = [
        ("Model", _model_name(model) if model else "no answer from the model"),
        *(
            (_label(key), _public(value))
            for key, value in sorted((model.details if model else {}).items(), key=lambda kv: _label(kv[0]))
        ),
    ]
    prompt = outcome.prompt
    if prompt is not None:
        rows += [
            ("Prompt template", f"{prompt.template_name} version {prompt.template_version}"),
            ("Prompt template hash", prompt.template_hash),
        ]
    rows += [
        ("Knowledge base", f"{knowledge.name} {knowledge.version}"),
        ("Passages shown to the model", ", ".join(outcome.retrieval.ids) or "none"),
        (
            "Samples",
            ", ".join(f"#{s.index + 1}: {s.outcome} ({s.finish_reason})" for s in outcome.samples) or "none",
        ),
    ]
    if outcome.usage is not None:
        usage = outcome.usage
        rows.append(
            (
                "Tokens",
                f"prompt {usage.prompt_tokens}, completion {usage.completion_tokens}, reasoning "
                f"{'not reported' if usage.reasoning_tokens is None else usage.reasoning_tokens}, cached "
                f"{'not reported' if usage.cached_tokens is None else usage.cached_tokens}",
            )
        )
    rows.append(
        (
            "Steps",
            ", ".join(
                f"{s.name} {s.seconds * 1000:.0f} ms{'' if s.ok else ' (failed)'}" for s in outcome.steps
            ),
        )
    )
    if outcome.recorded:
        rows.append(("Note", "replayed from recorded samples; the model was not called"))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<h2>Model and prompt</h2><dl id="provenance">{items}</dl>'

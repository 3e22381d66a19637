"""The published model card: `GET /about` (HTML) and `GET /about.json`, the same card in two forms.

Every card's `source.url` and the discovery document point here, so the page must work wherever a clinician
opens it, an EHR's embedded browser included: server-rendered HTML with one small inline stylesheet, no
scripts, images, fonts or other external assets (links to the sources cited are ordinary anchors), every
text escaped. `/about` answers JSON too when the caller asks for `application/json` and prefers it to HTML.

What the card says is `plugin.model_card`'s (data in plugin/model_card.json). This edge only supplies the
deployment's facts, through `model_card_for(app.state)`:

- `app.state.model_card_inputs`: a `plugin.model_card.ModelCardInputs` that the composition root may set
  (model backend and id, prompt template versions, review samples and threshold, card language, free-text
  setting, contact). It is the only way the card can name the model, because the model settings live in an
  edge this module may not import.
- Otherwise a default derived from `app.state.settings`: the attributes it has (`context_include_free_text`
  on the API's settings; `model_backend`, `model_name`, ... where a settings object carries them), the model
  reported as not named to the card where it has none.

The card is built once per set of inputs and kept, with its HTML and JSON renderings, on `app.state`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response

from plugin.model_card import (
    UNREPORTED,
    AttributeGroup,
    ModelCard,
    ModelCardInputs,
    Reference,
    SourceAttribute,
    build_model_card,
)

__all__ = ["ABOUT_JSON_PATH", "ABOUT_PATH", "default_inputs", "model_card_for", "render_html", "router"]

ABOUT_PATH: Final = "/about"
ABOUT_JSON_PATH: Final = "/about.json"
HTML_TYPE: Final = "text/html; charset=utf-8"
JSON_TYPE: Final = "application/json"
_CACHE_ATTR: Final = "model_card_published"
_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Nothing to load but the inline stylesheet and the icon; links still work. No frame-ancestors: EHRs embed it.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'"
    ),
}
_STATUS_LABELS: Final = {
    "provided": "Provided",
    "not-disclosed-by-developer": "Not disclosed by developer",
    "not-applicable": "Not applicable",
    "not-yet-measured": "Not yet measured",
}
_STYLE: Final = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.45;max-width:64rem;"
    "margin:1.5rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}"
    "h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}"
    "h3{font-size:1.05rem;margin-top:1.5rem}"
    "table{border-collapse:collapse;width:100%;margin:.5rem 0}"
    "th,td{border:1px solid #bbb;padding:.4rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}td.cite{white-space:nowrap;font-size:.85rem;color:#444}"
    ".status{display:inline-block;padding:.1rem .4rem;border-radius:.25rem;font-size:.85rem;"
    "font-weight:600;white-space:nowrap;border:1px solid}"
    ".provided{background:#e6f4ea;border-color:#1e7e34;color:#14532d}"
    ".not-disclosed-by-developer{background:#fff4e5;border-color:#b45309;color:#7c2d12}"
    ".not-yet-measured{background:#eef2ff;border-color:#4338ca;color:#312e81}"
    ".not-applicable{background:#f3f4f6;border-color:#6b7280;color:#374151}"
    ".alert{border:2px solid #b91c1c;background:#fef2f2;color:#7f1d1d;padding:.6rem .8rem;font-weight:600}"
    ".note{border-left:4px solid #b45309;background:#fffbeb;padding:.5rem .8rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}"
    "ul.refs{margin:.3rem 0 0;padding-left:1.1rem;font-size:.85rem}"
)


@dataclass(frozen=True, slots=True)
class _Published:
    inputs: ModelCardInputs
    card: ModelCard
    html: bytes
    json: bytes


def default_inputs(settings: Any) -> ModelCardInputs:
    """Card inputs from a settings object, reading only the attributes it has (duck-typed, any edge's)."""

    def attr(name: str) -> Any:
        return getattr(settings, name, None)

    backend, model = attr("model_backend"), attr("model_name")
    samples, agreement, language = attr("review_samples"), attr("review_min_agreement"), attr("card_language")
    enabled = attr("ai_enabled")
    return ModelCardInputs(
        backend=str(backend) if backend is not None else UNREPORTED,
        model=str(model) if model is not None else UNREPORTED,
        ai_enabled=enabled if isinstance(enabled, bool) else True,
        samples=samples if isinstance(samples, int) else None,
        min_agreement=float(agreement) if isinstance(agreement, int | float) else None,
        card_language=language if isinstance(language, str) else None,
        free_text=attr("context_include_free_text") is True,
    )


def _published(app_state: Any) -> _Published:
    inputs = getattr(app_state, "model_card_inputs", None)
    if not isinstance(inputs, ModelCardInputs):
        inputs = default_inputs(getattr(app_state, "settings", None))
    cached = getattr(app_state, _CACHE_ATTR, None)
    if isinstance(cached, _Published) and cached.inputs == inputs:
        return cached
    card = build_model_card(inputs)
    published = _Published(inputs, card, render_html(card).encode("utf-8"), orjson.dumps(card.as_dict()))
    setattr(app_state, _CACHE_ATTR, published)
    return published


def model_card_for(app_state: Any) -> ModelCard:
    """The model card of the app whose `state` this is (see the module docstring for its inputs)."""
    return _published(app_state).card


# ------------------------------------------------------------------------------------------------- routes

router = APIRouter()


@router.get(ABOUT_PATH, response_class=Response, include_in_schema=False)
async def about(request: Request) -> Response:
    published = _published(request.app.state)
    headers = {**_HEADERS, "Vary": "Accept"}
    if _prefers_json(request.headers.get("accept", "")):
        return Response(published.json, media_type=JSON_TYPE, headers=headers)
    return Response(published.html, media_type=HTML_TYPE, headers=headers)


@router.get(ABOUT_JSON_PATH, response_class=Response, include_in_schema=False)
async def about_json(request: Request) -> Response:
    return Response(_published(request.app.state).json, media_type=JSON_TYPE, headers=_HEADERS)


def _prefers_json(accept: str) -> bool:
    """True when the Accept header names application/json with a higher weight than any HTML type."""
    json_q = html_q = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == JSON_TYPE:
            json_q = max(json_q, q)
        elif media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
    return json_q > 0 and json_q > html_q


# ------------------------------------------------------------------------------------------------ rendering


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _links(refs: tuple[Reference, ...]) -> str:
    if not refs:
        return ""
    items = "".join(
        f'<li><a href="{_e(r.url)}" rel="noopener noreferrer">{_e(r.label)}</a></li>' for r in refs
    )
    return f'<ul class="refs">{items}</ul>'


def _status(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(_STATUS_LABELS.get(status, status))}</span>'


def _attribute_row(attribute: SourceAttribute) -> str:
    return (
        f'<tr id="attr-{_e(attribute.id)}">'
        f'<td class="cite">{_e(attribute.citation)}</td>'
        f'<th scope="row">{_e(attribute.name)}</th>'
        f"<td>{_status(attribute.status)}</td>"
        f"<td>{_e(attribute.value)}{_links(attribute.references)}</td></tr>"
    )


def _group(group: AttributeGroup) -> str:
    rows = "".join(_attribute_row(a) for a in group.attributes)
    return (
        f'<section id="hti1-{_e(group.id)}"><h3>{_e(group.title)} <small>({_e(group.citation)})</small></h3>'
        '<table><thead><tr><th scope="col">Paragraph</th><th scope="col">Attribute</th>'
        '<th scope="col">Status</th><th scope="col">Value</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _list(items: tuple[str, ...]) -> str:
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def render_html(card: ModelCard) -> str:
    """The whole page: plain HTML, inline style, every text escaped, links only to cited sources."""
    model = card.model
    alerts = []
    if not model.clinically_meaningful:
        alerts.append(
            f"Demo model in use ({model.backend}: {model.model}). Its AI suggestions are not clinically "
            "meaningful: do not use them for patient care."
        )
    if not card.ai_enabled:
        alerts.append(
            "The AI review is disabled in this deployment: only the deterministic safety rules (not predictive) "
            "answer. The attributes below describe the AI review for when it is enabled."
        )
    alert_html = "".join(f'<p class="alert" role="alert">{_e(text)}</p>' for text in alerts)
    prompts = (
        "; ".join(f"{service}: {version}" for service, version in card.prompt_versions.items())
        or "not reported to this card"
    )
    facts = (
        f"<dt>Product</dt><dd>{_e(card.product)} {_e(card.version)}</dd>"
        f"<dt>Knowledge base</dt><dd>{_e(card.knowledge_base)} {_e(card.knowledge_base_version)}</dd>"
        f"<dt>Model</dt><dd>{_e(model.label)} (backend {_e(model.backend)}, id {_e(model.model)})</dd>"
        f"<dt>Prompt templates</dt><dd>{_e(prompts)}</dd>"
        f"<dt>AI review</dt><dd>{'enabled' if card.ai_enabled else 'disabled: rule cards only'}</dd>"
    )
    risks = "".join(f"<tr><td>{_e(r.risk)}</td><td>{_e(r.mitigation)}</td></tr>" for r in card.known_risks)
    legend = "".join(
        f"<dt>{_status(status)}</dt><dd>{_e(text)}</dd>" for status, text in card.statuses.items()
    )
    groups = "".join(_group(g) for g in card.groups)
    title = f"{card.product} model card"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title><link rel="icon" href="/favicon.ico" type="image/svg+xml">'
        f"<style>{_STYLE}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>{alert_html}"
        f'<p class="note"><strong>Validation status:</strong> {_e(card.validation_summary)}</p>'
        f'<dl>{facts}</dl><p><a href="about.json">This card as JSON</a></p></header>'
        f'<main><section id="model"><h2>Model</h2><p>{_e(model.summary)}</p>{_links(model.references)}</section>'
        f'<section id="intended-use"><h2>Intended use</h2>{_list(card.intended_use)}</section>'
        f'<section id="out-of-scope-uses"><h2>Out-of-scope uses</h2>{_list(card.out_of_scope)}</section>'
        '<section id="known-risks"><h2>Known risks and their mitigation</h2><table><thead><tr>'
        f'<th scope="col">Risk</th><th scope="col">Mitigation</th></tr></thead><tbody>{risks}</tbody></table>'
        "</section>"
        f'<section id="validation"><h2>Validation status</h2><p>{_e(card.validation_summary)}</p>'
        f"{_list(card.validation)}</section>"
        '<section id="source-attributes"><h2>Source attributes (ONC HTI-1)</h2>'
        f"<p>The {len(card.attributes)} source attributes for predictive decision support interventions, in "
        f'the order of <a href="{_e(card.regulation.url)}" rel="noopener noreferrer">{_e(card.regulation.label)}'
        "</a>. Attribute names are paraphrased. Every value says what is known; a status other than "
        "“Provided” says why not.</p>"
        f"<dl>{legend}</dl>{groups}</section></main></body></html>"
    )

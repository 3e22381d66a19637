"""The preview page and its small JSON API: everything except the hook calls, which go to the real endpoints.

The page (GET /preview) is rendered here with the demo patients, hooks and composer options; its script
and stylesheet are package files served beside it, so the Content-Security-Policy allows no inline script
at all (card detail is untrusted Markdown: defence in depth behind the script's DOM-only renderer).

The API the script uses, all POST with JSON and the `X-R1CDS-Preview: 1` header (a cross-site form cannot
set it, and a cross-origin script would need a CORS preflight we never grant):

    /preview/api/prepare   hook + patient source (+ draft orders) -> the hook request to send, the service
                           endpoint's path, and an Authorization header signed with the preview key
    /preview/api/token     a fresh Authorization header for a service endpoint or its /feedback
    /preview/api/draft     composer choices -> a draft MedicationRequest
    /preview/api/bundle    an uploaded Bundle file (raw body) -> its patients, or a 4xx saying what is wrong

The page then sends the hook and feedback calls itself, so authentication, prefetch, rules, the AI review
and the feedback store all run exactly as they do for an EHR.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cds_hooks.errors import MalformedRequest
from cds_hooks.handlers import read_body
from cds_hooks.preview import calls, demo
from cds_hooks.preview.key import PreviewKey
from cds_hooks.settings import Settings
from plugin.ai_review import REVIEW_SYSTEM
from plugin.services import ServiceRegistry

Model = TypeVar("Model", bound=BaseModel)

HTML_TYPE: Final = "text/html; charset=utf-8"
JSON_TYPE: Final = "application/json"
CSRF_HEADER: Final = "x-r1cds-preview"
ASSETS: Final = {"preview.js": "text/javascript; charset=utf-8", "preview.css": "text/css; charset=utf-8"}
_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# No frame-ancestors: EHR-style shells embed pages like this one in an iframe.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)
_HOOK_LABELS: Final = {
    "patient-view": "patient-view: the chart is opened",
    "order-select": "order-select: orders are selected",
    "order-sign": "order-sign: orders are about to be signed",
    "encounter-start": "encounter-start: an encounter begins",
    "encounter-discharge": "encounter-discharge: the patient is discharged",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("cds_hooks.preview").joinpath("static").joinpath(name).read_bytes()


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON_TYPE, headers=_HEADERS)


class PreviewHandler:
    """Serves the page and its API; built once per app, when the preview is enabled."""

    def __init__(self, settings: Settings, registry: ServiceRegistry, key: PreviewKey) -> None:
        self._settings = settings
        self._registry = registry
        self._key = key
        self._base = settings.public_base
        self._limit = settings.max_body_bytes
        self._page = self._render_page()

    # ------------------------------------------------------------------------------------------- page

    def _hooks(self) -> list[dict[str, str]]:
        hooks: list[dict[str, str]] = []
        for service in self._registry:
            for hook in service.declaration.hooks:
                if hook in _HOOK_LABELS and all(h["hook"] != hook for h in hooks):
                    hooks.append(
                        {"hook": hook, "label": _HOOK_LABELS[hook], "service": service.declaration.id}
                    )
        order = list(_HOOK_LABELS)
        return sorted(hooks, key=lambda h: order.index(h["hook"]))

    def _render_page(self) -> bytes:
        options = {
            "demos": [p.as_json() for p in demo.DEMO_PATIENTS],
            "hooks": self._hooks(),
            "composer": demo.composer_options(),
            "reviewSystem": REVIEW_SYSTEM,
            "authDisabled": self._settings.auth_disabled,
        }
        demos = "\n".join(
            f'<label class="demo"><input type="radio" name="demo" value="{html.escape(p.id)}"'
            f"{' checked' if i == 0 else ''}><span><b>{html.escape(p.title)}</b>"
            f"<small>{html.escape(p.summary)}</small></span></label>"
            for i, p in enumerate(demo.DEMO_PATIENTS)
        )
        hooks = "\n".join(
            f'<option value="{html.escape(h["hook"])}">{html.escape(h["label"])}</option>'
            for h in self._hooks()
        )
        products = "\n".join(
            f'<option value="{html.escape(p.code)}">{html.escape(p.display)} (RxNorm {html.escape(p.code)})</option>'
            for p in demo.PRODUCTS
        )
        frequencies = "\n".join(
            f'<option value="{html.escape(code)}">{html.escape(f[0])}</option>'
            for code, f in demo.FREQUENCIES.items()
        )
        # JSON inside a non-executable script block: "</" must not close it.
        data = orjson.dumps(options).decode().replace("</", "<\\/")
        auth = (
            "EHR authentication is off (R1CDS_AUTH_DISABLED): calls are still signed with the preview key."
            if self._settings.auth_disabled
            else "Calls are signed with this process's preview key and verified like any EHR's."
        )
        template = Template(_asset("preview.html").decode())
        page = template.substitute(
            demos=demos,
            hooks=hooks,
            products=products,
            frequencies=frequencies,
            options=data,
            auth=html.escape(auth),
            base=html.escape(self._base),
        )
        return page.encode()

    def page(self) -> Response:
        return Response(
            self._page, media_type=HTML_TYPE, headers={**_HEADERS, "Content-Security-Policy": _CSP}
        )

    def asset(self, name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            return Response(b"", status_code=404, headers=_HEADERS)
        return Response(_asset(name), media_type=media, headers={**_HEADERS, "Cache-Control": "no-cache"})

    # -------------------------------------------------------------------------------------------- API

    async def prepare(self, request: Request) -> Response:
        # The uploaded Bundle travels as a JSON string inside the body: room for its escaping.
        body = await self._admit(request, calls.PrepareRequest, 2 * self._limit + 64 * 1024)
        prepared = await calls.prepare(self._registry, body, self._settings)
        path = f"/cds-services/{prepared.service_id}"
        return _json(
            {
                "serviceId": prepared.service_id,
                "hook": prepared.hook,
                "patientId": prepared.patient_id,
                "path": path,
                "url": f"{self._base}{path}",
                "authorization": self._key.authorization(f"{self._base}{path}"),
                "request": prepared.request,
            }
        )

    async def token(self, request: Request) -> Response:
        body = await self._admit(request, calls.TokenRequest, 16 * 1024)
        self._registry.get(body.service_id)  # unknown service: 404 through the plugin error mapping
        path = f"/cds-services/{body.service_id}{'/feedback' if body.feedback else ''}"
        return _json(
            {
                "path": path,
                "url": f"{self._base}{path}",
                "authorization": self._key.authorization(f"{self._base}{path}"),
            }
        )

    async def draft(self, request: Request) -> Response:
        body = await self._admit(request, calls.DraftRequest, 16 * 1024)
        resource = demo.draft_medication_request(
            body.patient_id, body.code, body.dose_mg, body.frequency, body.encounter_id
        )
        return _json(resource)

    async def bundle(self, request: Request) -> Response:
        _require_header(request)
        raw = await read_body(request, self._limit)
        bundle = calls.parse_bundle(raw, self._limit)
        patients = calls.patients_of(bundle)
        return _json({"patients": patients, "entries": len(bundle.get("entry") or ())})

    async def _admit(self, request: Request, model: type[Model], limit: int) -> Model:
        _require_header(request)
        raw = await read_body(request, limit)
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            # Locations and messages only: the input may be a patient's data.
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]
            ]
            raise MalformedRequest("invalid preview request: " + "; ".join(problems)) from None


def _require_header(request: Request) -> None:
    if request.headers.get(CSRF_HEADER) != "1":
        raise MalformedRequest("preview API calls need the X-R1CDS-Preview: 1 header")

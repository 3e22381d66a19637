"""Prefetch: render a service's templates against the hook context and resolve each key by 2.0 rules.

For each key the service declares:
- present with a resource: use it; a Bundle with a `next` link is completed by fetching its pages;
- present as `null`: the EHR had nothing to send; no data, and no fetch;
- present as an OperationOutcome: the EHR's prefetch failed; recorded, and fetched back if required;
- absent: fetched back from `fhirServer` with the `fhirAuthorization` bearer token.
Paging is followed to the end (within `fhir_max_pages`), except for templates that ask for both `_sort`
and `_count`: those mean "the newest N", so their first page is the whole answer.
A required key that ends without data fails the call with 412. Access tokens live only in the
request headers of this call: never stored, logged or handed to the core.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from cds_hooks.errors import PrefetchUnobtainable
from cds_hooks.fhir_guard import ForbiddenAddress, UnsafeUrl, parse_server_url, refusal, within
from cds_hooks.protocol import HookRequest
from cds_hooks.settings import Settings, TenantSettings
from plugin.services import PrefetchIssue, ServiceDeclaration

TOKEN = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}")
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
FHIR_ACCEPT = "application/fhir+json, application/json;q=0.9"
# Issues about an OperationOutcome the EHR sent as prefetch start so; its text is kept for the audit
# record but never put in a response body.
EHR_PREFETCH_FAILED = "EHR prefetch failed"


class TemplateUnrenderable(ValueError):
    """A token names context the hook call did not carry; the key cannot be fetched."""


def _context_value(context: Mapping[str, Any], path: list[str]) -> str:
    value: Any = context.get(path[0])
    rest = path[1:]
    if isinstance(value, dict) and value.get("resourceType") == "Bundle" and len(rest) == 2:
        # {{context.draftOrders.MedicationRequest.id}}: that field of every resource of that type.
        resource_type, field = rest
        found = [
            str(entry["resource"][field])
            for entry in value.get("entry") or ()
            if isinstance(entry, dict)
            and isinstance(entry.get("resource"), dict)
            and entry["resource"].get("resourceType") == resource_type
            and field in entry["resource"]
        ]
        if not found:
            raise TemplateUnrenderable(".".join(path))
        return ",".join(found)
    if rest:
        raise TemplateUnrenderable(".".join(path))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise TemplateUnrenderable(".".join(path))


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Fill `{{context.*}}` and the four user tokens; raise TemplateUnrenderable if one is missing."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token in USER_TOKENS:
            user = context.get("userId")
            prefix = USER_TOKENS[token] + "/"
            if not isinstance(user, str) or not user.startswith(prefix):
                raise TemplateUnrenderable(token)
            return quote(user[len(prefix) :], safe="")
        parts = token.split(".")
        if parts[0] != "context" or len(parts) < 2:
            raise TemplateUnrenderable(token)
        return quote(_context_value(context, parts[1:]), safe=",")

    return TOKEN.sub(substitute, template)


def is_operation_outcome(value: Mapping[str, Any] | None) -> bool:
    return value is not None and value.get("resourceType") == "OperationOutcome"


def _items(resource: Mapping[str, Any], member: str) -> list[dict[str, Any]]:
    """The objects of a list member; anything else is ignored. Prefetch JSON is client input."""
    value = resource.get(member)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _outcome_text(outcome: Mapping[str, Any]) -> str:
    for issue in _items(outcome, "issue"):
        details = issue.get("details")
        for text in (
            issue.get("diagnostics"),
            details.get("text") if isinstance(details, dict) else None,
            issue.get("code"),
        ):
            if isinstance(text, str):
                return text[:200]
    return "OperationOutcome without diagnostics"


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in _items(bundle, "link"):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def is_top_n(query: str) -> bool:
    """A sorted query with a page size asks for the first N results, not for every page."""
    params = {part.split("=", 1)[0] for part in query.partition("?")[2].split("&")}
    return "_sort" in params and "_count" in params


@dataclass(frozen=True, slots=True)
class ResolvedPrefetch:
    values: dict[str, dict[str, Any] | None]
    issues: tuple[PrefetchIssue, ...]


class _FetchFailed(Exception):
    def __init__(self, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.code = code
        self.diagnostics = diagnostics


class FhirFetcher:
    """Reads from one EHR's FHIR server for one hook call, within the size, page and time bounds."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, base_url: str, token: str | None) -> None:
        self._http = http
        self._settings = settings
        self._base = base_url.rstrip("/")
        self._target = parse_server_url(self._base)  # the resolver checked it: refusal() is None
        self._headers = {"Accept": FHIR_ACCEPT}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _same_server(self, url: str) -> bool:
        # Paging links are followed only on the EHR's own server: the bearer token must never be
        # sent anywhere else, whatever a Bundle's `next` link says. Compared by component, not prefix.
        try:
            return within(parse_server_url(url), self._target)
        except UnsafeUrl:
            return False

    async def get_json(self, url: str) -> dict[str, Any]:
        limit = self._settings.fhir_max_response_bytes
        if not self._same_server(url):
            raise _FetchFailed("security", "request URL leaves the FHIR server; not sent")
        try:
            async with self._http.stream(
                "GET", url, headers=self._headers, timeout=self._settings.fhir_timeout_s
            ) as response:
                declared = response.headers.get("content-length")
                if (
                    declared is not None
                    and declared.isascii()
                    and declared.isdigit()
                    and int(declared) > limit
                ):
                    raise _FetchFailed("too-costly", "FHIR response larger than the configured limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _FetchFailed("too-costly", "FHIR response larger than the configured limit")
                    chunks.append(chunk)
                status = response.status_code
        except ForbiddenAddress:
            raise _FetchFailed("security", "FHIR server host resolves to a non-public address") from None
        except httpx.TimeoutException:
            raise _FetchFailed("timeout", "FHIR server did not answer in time") from None
        except httpx.HTTPError:
            raise _FetchFailed("transient", "FHIR server unreachable") from None
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise _FetchFailed(
                "structure", f"FHIR server answered {status} with a body that is not JSON"
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise _FetchFailed("structure", f"FHIR server answered {status} without a FHIR resource")
        if status >= 400 or is_operation_outcome(body):
            # The server's own text (OperationOutcome diagnostics, reason phrase) is never repeated.
            what = "an OperationOutcome" if is_operation_outcome(body) else "an error"
            raise _FetchFailed("processing", f"FHIR server answered {status} with {what}")
        return body

    async def complete_pages(self, bundle: dict[str, Any]) -> tuple[dict[str, Any], PrefetchIssue | None]:
        """Append the entries of every following page, up to the page limit."""
        pages = 1
        next_url = _next_link(bundle)
        entries = _items(bundle, "entry")
        issue = None
        while next_url is not None:
            if pages >= self._settings.fhir_max_pages:
                issue = ("too-costly", f"stopped after {pages} pages")
                break
            if not self._same_server(next_url):
                issue = ("security", "next link points outside the FHIR server; not followed")
                break
            page = await self.get_json(next_url)
            entries.extend(_items(page, "entry"))
            pages += 1
            next_url = _next_link(page)
        completed = {
            **bundle,
            "entry": entries,
            "link": [link for link in _items(bundle, "link") if link.get("relation") != "next"],
        }
        if issue is None:
            return completed, None
        return completed, PrefetchIssue(key="", code=issue[0], diagnostics=issue[1], severity="warning")

    async def fetch(self, relative_url: str) -> tuple[dict[str, Any], PrefetchIssue | None]:
        body = await self.get_json(f"{self._base}/{relative_url.lstrip('/')}")
        if body.get("resourceType") == "Bundle" and _next_link(body) and not is_top_n(relative_url):
            return await self.complete_pages(body)
        return body, None


class PrefetchResolver:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._limit = asyncio.Semaphore(settings.fhir_max_concurrency)

    def _server_refusal(self, url: str, tenant: TenantSettings | None) -> str | None:
        return refusal(
            url,
            allow_http=self._settings.fhir_allow_http,
            allow_private=self._settings.fhir_allow_private_networks,
            allowlist=(
                *self._settings.fhir_server_allowlist,
                *(tenant.fhir_server_allowlist if tenant else ()),
            ),
        )

    async def resolve(
        self, declaration: ServiceDeclaration, request: HookRequest, tenant: TenantSettings | None = None
    ) -> ResolvedPrefetch:
        provided = request.prefetch or {}
        fetcher: FhirFetcher | None = None
        server_problem = "the hook call names no fhirServer"
        if request.fhir_server is not None:
            refused = self._server_refusal(request.fhir_server, tenant)
            if refused is None:
                token = (
                    request.fhir_authorization.access_token.get_secret_value()
                    if request.fhir_authorization
                    else None
                )
                fetcher = FhirFetcher(self._http, self._settings, request.fhir_server, token)
            else:
                server_problem = refused

        values: dict[str, dict[str, Any] | None] = {}
        issues: list[PrefetchIssue] = []
        pending: dict[str, asyncio.Task[tuple[dict[str, Any], PrefetchIssue | None]]] = {}

        async def fetch(url: str) -> tuple[dict[str, Any], PrefetchIssue | None]:
            assert fetcher is not None
            async with self._limit:
                return await fetcher.fetch(url)

        async def complete(bundle: dict[str, Any]) -> tuple[dict[str, Any], PrefetchIssue | None]:
            assert fetcher is not None
            async with self._limit:
                return await fetcher.complete_pages(bundle)

        for key, template in declaration.prefetch.items():
            required = key in declaration.required_prefetch
            value = provided.get(key, _ABSENT)
            if value is None:
                values[key] = None
                continue
            if value is not _ABSENT and not is_operation_outcome(value):
                if value.get("resourceType") == "Bundle" and _next_link(value) and not is_top_n(template):
                    if fetcher is None:
                        issues.append(
                            PrefetchIssue(
                                key, "incomplete", f"paged prefetch not completed: {server_problem}"
                            )
                        )
                        values[key] = value
                    else:
                        pending[key] = asyncio.ensure_future(complete(value))
                else:
                    values[key] = value
                continue
            if value is not _ABSENT:
                issues.append(
                    PrefetchIssue(key, "processing", f"{EHR_PREFETCH_FAILED}: {_outcome_text(value)}")
                )
                if not required:
                    values[key] = None
                    continue
            try:
                rendered = render_template(template, request.context)
            except TemplateUnrenderable as exc:
                issues.append(
                    PrefetchIssue(key, "incomplete", f"template needs {exc.args[0]}, absent from context")
                )
                values[key] = None
                continue
            if fetcher is None:
                issues.append(PrefetchIssue(key, "incomplete", f"not prefetched and {server_problem}"))
                values[key] = None
                continue
            pending[key] = asyncio.ensure_future(fetch(rendered))

        if pending:
            results = await asyncio.gather(*pending.values(), return_exceptions=True)
            for key, result in zip(pending, results, strict=True):
                if isinstance(result, _FetchFailed):
                    issues.append(PrefetchIssue(key, result.code, result.diagnostics))
                    values[key] = None
                elif isinstance(result, BaseException):
                    raise result
                else:
                    resource, issue = result
                    values[key] = resource
                    if issue is not None:
                        issues.append(PrefetchIssue(key, issue.code, issue.diagnostics, issue.severity))

        missing = sorted(
            k
            for k in declaration.required_prefetch
            if values.get(k) is None or is_operation_outcome(values.get(k))
        )
        if missing:
            reasons = "; ".join(f"{i.key}: {_public(i.diagnostics)}" for i in issues if i.key in missing)
            raise PrefetchUnobtainable(
                f"required prefetch unobtainable ({', '.join(missing)}): {reasons or 'no data'}"
            )
        return ResolvedPrefetch(values=values, issues=tuple(issues))


def _public(diagnostics: str) -> str:
    """An issue's text as a response body may carry it: the EHR's own OperationOutcome text is not."""
    if diagnostics.startswith(EHR_PREFETCH_FAILED):
        return f"{EHR_PREFETCH_FAILED} (its OperationOutcome is not repeated)"
    return diagnostics


class _Absent:
    pass


_ABSENT: Any = _Absent()

"""HTTP errors of the edge and the one place that turns any error into a response.

    CdsHooksError                 status, FHIR issue code, client-safe diagnostics
    ├── MalformedRequest          400  body is not a valid CDS Hooks request / feedback
    ├── UnsupportedHookForService 400  the service exists but does not answer the hook
    ├── AuthenticationFailed      401  any JWT problem; answered with an empty body
    ├── ServiceNotFound           404  no service with that id
    ├── PrefetchUnobtainable      412  required prefetch could be neither read nor fetched back
    ├── WrongPatient              412  prefetch, fetched-back data or draft orders of another patient
    ├── PayloadTooLarge           413
    ├── UnsupportedMediaType      415
    └── DependencyUnavailable     503  a store we must write to (feedback) is down; safe to retry

Bodies are FHIR OperationOutcome JSON. Diagnostics are written by us, never exception text from a
library, so nothing internal (or a token inside a URL) leaks to the client. They name the field at fault
and never repeat a value the client (or a FHIR server) sent: no prefetch key, hook name, service id, URL
or remote OperationOutcome text, which could be PHI, a token, or markup aimed at whoever reads the error.
"""

from __future__ import annotations

import logging
import traceback
from typing import Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from plugin.errors import PluginError, UnknownService, UnsupportedHook

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
IssueCode = Literal[
    "invalid", "security", "not-found", "not-supported", "too-long", "incomplete", "transient", "exception"
]


class CdsHooksError(Exception):
    status_code: int = 400
    issue_code: IssueCode = "invalid"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


class MalformedRequest(CdsHooksError):
    status_code = 400
    issue_code = "invalid"


class UnsupportedHookForService(CdsHooksError):
    status_code = 400
    issue_code = "not-supported"


class AuthenticationFailed(CdsHooksError):
    """The reason is for our logs only; the client always sees a bare 401."""

    status_code = 401
    issue_code = "security"


class ServiceNotFound(CdsHooksError):
    status_code = 404
    issue_code = "not-found"


class PrefetchUnobtainable(CdsHooksError):
    status_code = 412
    issue_code = "incomplete"


class WrongPatient(CdsHooksError):
    """Prefetch, fetched-back data or draft orders that belong to a patient other than context.patientId."""

    status_code = 412
    issue_code = "invalid"


class PayloadTooLarge(CdsHooksError):
    status_code = 413
    issue_code = "too-long"


class UnsupportedMediaType(CdsHooksError):
    status_code = 415
    issue_code = "not-supported"


class DependencyUnavailable(CdsHooksError):
    status_code = 503
    issue_code = "transient"


def operation_outcome(diagnostics: str, code: IssueCode, severity: str = "error") -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
        }
    )


def error_response(exc: CdsHooksError) -> Response:
    if isinstance(exc, AuthenticationFailed):
        return Response(status_code=401)
    return Response(
        operation_outcome(exc.diagnostics, exc.issue_code), status_code=exc.status_code, media_type=FHIR_JSON
    )


def from_plugin_error(exc: PluginError) -> CdsHooksError:
    # The service id (a path segment) and the hook are client strings: named, never repeated.
    if isinstance(exc, UnknownService):
        return ServiceNotFound("no CDS service has the id in the path")
    if isinstance(exc, UnsupportedHook):
        return UnsupportedHookForService("the service does not answer the request's hook")
    return CdsHooksError("the request could not be processed")


_STATUS_TEXT = {404: ("not found", "not-found"), 405: ("method not allowed", "not-supported")}


def install_error_handlers(app: FastAPI) -> None:
    async def on_cds_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CdsHooksError)
        if isinstance(exc, AuthenticationFailed):
            log.info("authentication refused: %s", exc.diagnostics)
        return error_response(exc)

    async def on_plugin_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PluginError)
        return error_response(from_plugin_error(exc))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        return error_response(MalformedRequest("request does not match the CDS Hooks 2.0 schema"))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        text, code = _STATUS_TEXT.get(exc.status_code, ("request refused", "invalid"))
        body = operation_outcome(text, code)  # type: ignore[arg-type]
        return Response(body, status_code=exc.status_code, media_type=FHIR_JSON, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Reaching here is our bug. Log the type and the frames, not the message: exception text can
        # quote the request body, which may hold PHI.
        where = "".join(traceback.format_tb(exc.__traceback__)[-3:])
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.url.path, where)
        return Response(
            operation_outcome("internal error", "exception"), status_code=500, media_type=FHIR_JSON
        )

    app.add_exception_handler(CdsHooksError, on_cds_error)
    app.add_exception_handler(PluginError, on_plugin_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

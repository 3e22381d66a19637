"""JSON process logs: one object per line; an exception gives its type and frames, never its message."""

from __future__ import annotations

import json
import logging

import pytest

from cds_hooks.app import create_app
from cds_hooks.logs import JsonFormatter
from cds_hooks.settings import load_settings

pytestmark = pytest.mark.unit


def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("cds_hooks.test", logging.WARNING, __file__, 1, msg, (), exc_info)


def test_a_line_is_one_json_object_with_the_usual_fields() -> None:
    line = json.loads(JsonFormatter().format(record("review queue %s is full")))
    assert line["level"] == "WARNING" and line["logger"] == "cds_hooks.test"
    assert line["msg"] == "review queue %s is full"
    assert line["ts"].endswith("+00:00") and isinstance(line["pid"], int)


def test_an_exception_keeps_its_type_and_frames_but_not_its_message() -> None:
    try:
        raise ValueError("input should be a valid date: Jane Doe 1962-03-14")
    except ValueError as exc:
        text = JsonFormatter().format(record("parse failed", exc))
    line = json.loads(text)
    assert line["exc_type"] == "ValueError"
    assert any("test_logs.py" in frame for frame in line["frames"])
    assert "Jane" not in text and "1962" not in text


def test_request_urls_are_not_logged_even_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """A FHIR fetch-back URL names the patient; httpx would log it at INFO (the app quiets it at start)."""
    create_app(load_settings(auth_disabled=True))
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").info("HTTP Request: GET http://fhir.invalid/Condition?patient=p-1")
    logging.getLogger("cds_hooks.test").info("an ordinary line")
    assert "patient=p-1" not in caplog.text and "an ordinary line" in caplog.text
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING

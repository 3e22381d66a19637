"""Process logging for `r1cds serve|worker|up`: one JSON object per line, and nothing a record could leak.

Every line has `ts` (UTC, ISO 8601), `level`, `logger`, `msg` and `pid`. An exception adds `exc_type`
and `frames` (file:line in function, innermost last) but never the exception's message or locals: a
message can quote input (a pydantic error echoes the value it refused), and input is where PHI lives. Our
own log calls pass ids, counts and class names only (see the module that logs); the format is the second
line of defence. `text` keeps the classic one-line format for a developer's terminal.

A fault repeats its warning once per request or task (a full queue, an unreachable model, an audit write
that fails, a store that is down): `RepeatFilter` on the process's handler lets the first of a kind
through, then at most one per window, which says how many like it were held back. A kind is the logger
and the message template, never its arguments, so the count says nothing about what the lines carried.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
DEFAULT_REPEAT_S: Final = 60.0  # at most one warning of a kind per minute once it repeats
MAX_KINDS: Final = 1024  # kinds tracked at once; beyond (a message built per call), warnings pass as they are


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": os.getpid(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            line["exc_type"] = exc_type.__name__
            line["frames"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(tb)
            ]
        return orjson.dumps(line).decode()

    def formatException(self, ei: object) -> str:
        return ""  # never the message: `format` above writes the type and frames instead


class RepeatFilter(logging.Filter):
    """Warnings of one kind (logger and message template): the first passes, then one per `window_s` at most,
    carrying the count of those held back since the last one that passed. Other levels always pass;
    window_s 0 lets everything through."""

    def __init__(
        self, window_s: float = DEFAULT_REPEAT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        if window_s < 0:
            raise ValueError("window_s must not be negative")
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}  # kind: (when one last passed, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or self.window_s == 0 or not isinstance(record.msg, str):
            return True
        kind = (record.name, _template(record))
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.window_s:
                self._kinds[kind] = (seen[0], seen[1] + 1)
                return False
            if seen is None and len(self._kinds) >= MAX_KINDS:
                self._forget(now)
                if len(self._kinds) >= MAX_KINDS:
                    return True
            self._kinds[kind] = (now, 0)
        if seen is not None and seen[1]:
            # Appended to the template, not the arguments: no % in it, so it formats with any arguments.
            record.msg = f"{record.msg} [{seen[1]} more like this in the last {now - seen[0]:.0f} s]"
        return True

    def _forget(self, now: float) -> None:
        """Drop kinds whose window has passed (the next of them passes anyway, its count unsaid)."""
        for kind, (passed, _) in list(self._kinds.items()):
            if now - passed >= self.window_s:
                del self._kinds[kind]


def _template(record: logging.LogRecord) -> str:
    """What makes a warning's kind: its template; for a bare placeholder ("%s", as Python's warnings
    arrive), which says nothing of its own, its text (kept in memory only, never written)."""
    if record.msg != "%s":
        return str(record.msg)
    try:
        return record.getMessage()
    except Exception:  # arguments that do not format: the handler reports that itself when it writes
        return str(record.msg)


# httpx logs every request line at INFO, and a FHIR fetch-back URL names the patient
# (`Condition?patient=<id>`): those loggers say warnings and errors only, whatever the root level.
URL_LOGGERS = ("httpx", "httpcore")


def quiet_url_loggers() -> None:
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(level: str, fmt: LogFormat, repeat_s: float = DEFAULT_REPEAT_S) -> None:
    """Root handler on stderr for this process; uvicorn and Celery log through it. A warning that repeats
    is written once per repeat_s at most (RepeatFilter)."""
    quiet_url_loggers()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RepeatFilter(repeat_s))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

"""Process logging for `r1cds serve|worker|up`: one JSON object per line, and nothing a record could leak.

Every line has `ts` (UTC, ISO 8601), `level`, `logger`, `msg` and `pid`. An exception adds `exc_type`
and `frames` (file:line in function, innermost last) but never the exception's message or locals: a
message can quote input (a pydantic error echoes the value it refused), and input is where PHI lives. Our
own log calls pass ids, counts and class names only (see the module that logs); the format is the second
line of defence. `text` keeps the classic one-line format for a developer's terminal.
"""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from typing import Literal

import orjson

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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


# httpx logs every request line at INFO, and a FHIR fetch-back URL names the patient
# (`Condition?patient=<id>`): those loggers say warnings and errors only, whatever the root level.
URL_LOGGERS = ("httpx", "httpcore")


def quiet_url_loggers() -> None:
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Root handler on stderr for this process; uvicorn and Celery log through it."""
    quiet_url_loggers()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

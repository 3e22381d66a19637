"""Repeated warnings: the first of a kind is written, then one per window with the count held back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from cds_hooks import logs
from cds_hooks.logs import RepeatFilter, configure_logging

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warning(
    msg: str, *args: object, name: str = "workers.broker", level: int = logging.WARNING
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def passed(limiter: RepeatFilter, record: logging.LogRecord) -> str | None:
    """The line as written, or None when the filter held it back."""
    return record.getMessage() if limiter.filter(record) else None


def test_the_first_passes_then_one_per_window_with_the_count_held_back() -> None:
    clock = FakeClock()
    limiter = RepeatFilter(60, clock)
    template = "review queue %s is full; not enqueueing"
    assert (
        passed(limiter, warning(template, "r1cds.patient-view"))
        == "review queue r1cds.patient-view is full; not enqueueing"
    )
    written = []
    for _ in range(99):
        clock.now += 0.5  # 99 more within 49.5 s
        written.append(passed(limiter, warning(template, "r1cds.order-sign")))
    assert written == [None] * 99, "same template, other arguments: the same kind"
    clock.now += 10.5  # 60 s after the first passed
    assert passed(limiter, warning(template, "r1cds.encounter")) == (
        "review queue r1cds.encounter is full; not enqueueing [99 more like this in the last 60 s]"
    )
    clock.now += 1
    assert passed(limiter, warning(template, "r1cds.encounter")) is None
    clock.now += 59
    # One held back since the last that passed, counted afresh.
    assert (
        passed(limiter, warning(template, "x"))
        == "review queue x is full; not enqueueing [1 more like this in the last 60 s]"
    )
    clock.now += 600
    assert passed(limiter, warning(template, "y")) == "review queue y is full; not enqueueing", (
        "nothing held back"
    )


def test_kinds_are_counted_apart_and_other_levels_always_pass() -> None:
    clock = FakeClock()
    limiter = RepeatFilter(30, clock)
    assert limiter.filter(warning("review failed (%s), retry %d", "ModelTimeout", 1, name="workers.runtime"))
    assert limiter.filter(
        warning("could not renew a model slot lease (%s)", "ConnectionError", name="workers.semaphore")
    )
    assert limiter.filter(warning("review failed (%s), retry %d", "ModelTimeout", 1, name="workers.other"))
    assert not limiter.filter(
        warning("review failed (%s), retry %d", "ModelUnavailable", 2, name="workers.runtime")
    )
    for level in (logging.DEBUG, logging.INFO, logging.ERROR, logging.CRITICAL):
        assert all(
            limiter.filter(
                warning("review failed (%s), retry %d", "X", 1, name="workers.runtime", level=level)
            )
            for _ in range(3)
        )


def test_a_zero_window_writes_every_warning_and_a_negative_one_is_refused() -> None:
    limiter = RepeatFilter(0, FakeClock())
    assert all(limiter.filter(warning("feedback store unavailable: %s", "ConnectionError")) for _ in range(5))
    with pytest.raises(ValueError, match="negative"):
        RepeatFilter(-1)


def test_kinds_beyond_the_cap_pass_untracked_and_old_ones_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "MAX_KINDS", 3)
    clock = FakeClock()
    limiter = RepeatFilter(10, clock)
    for n in range(3):
        assert limiter.filter(warning(f"built per call {n}"))
    assert limiter.filter(warning("built per call 3")), "the cap reached: passes, not tracked"
    assert limiter.filter(warning("built per call 3"))
    assert not limiter.filter(warning("built per call 0")), "tracked kinds still held back"
    clock.now += 10
    assert limiter.filter(warning("built per call 4")), "the old kinds' windows passed: forgotten"
    assert not limiter.filter(warning("built per call 4"))


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_burst_under_a_fault_writes_one_line_per_kind(
    root_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", "json")
    queue = logging.getLogger("workers.broker")
    runtime = logging.getLogger("workers.runtime")
    for attempt in range(200):
        queue.warning("review queue %s is full; not enqueueing", "r1cds.patient-view")
        runtime.warning("review failed (%s), retry %d", "ModelTimeout", attempt % 3 + 1)
        runtime.warning("review stored, but its audit record was not written (%s)", "OperationalError")
        logging.getLogger("workers.tasks").error("review task failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    warnings = [line["msg"] for line in lines if line["level"] == "WARNING"]
    assert warnings == [
        "review queue r1cds.patient-view is full; not enqueueing",
        "review failed (ModelTimeout), retry 1",
        "review stored, but its audit record was not written (OperationalError)",
    ]
    assert sum(1 for line in lines if line["level"] == "ERROR") == 200, "errors are never held back"


def test_a_bare_placeholder_template_is_told_apart_by_its_text() -> None:
    """`log.warning("%s", text)` (Python's warnings through logging): each text its own kind."""
    limiter = RepeatFilter(60, FakeClock())
    assert limiter.filter(warning("%s", "DeprecationWarning: one", name="py.warnings"))
    assert limiter.filter(warning("%s", "ResourceWarning: another", name="py.warnings"))
    assert not limiter.filter(warning("%s", "DeprecationWarning: one", name="py.warnings"))

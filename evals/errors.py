"""The evaluation harness's one exception base, and the few kinds of failure a run reports."""

from __future__ import annotations


class EvalError(Exception):
    """A run cannot go on (bad data folder, unknown dataset, unreachable backend); the message says why."""


class DataError(EvalError):
    """An evaluation data file is missing or not in the shape SOURCES.md describes."""


class PipelineError(EvalError):
    """The CDS pipeline under evaluation did not answer as a CDS Hooks service must."""

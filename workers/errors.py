"""Exceptions of the Celery edge.

WorkerError
├── SlotTimeout        no model slot came free in time (transient: the task is retried later)
└── ContextMissing     the stored context expired before a worker took the task (the review is dropped)
"""


class WorkerError(Exception):
    """Base of every error the workers package raises on purpose."""


class SlotTimeout(WorkerError):
    pass


class ContextMissing(WorkerError):
    pass

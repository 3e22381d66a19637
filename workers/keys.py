"""The Redis key layout shared by the API (enqueue, wait, read) and the workers (run, store, notify)."""

# All keys carry a layout version, so a deployment that changes the layout never reads the old one:
#
#   r1cds:v1:context:<fingerprint>   de-identified context (plugin.codec), written once per enqueue, TTL
#   r1cds:v1:result:<fingerprint>    hash {outcome, context: plugin.codec bytes; review_id}, TTL (short if failed)
#   r1cds:v1:lock:<fingerprint>      single-flight lock; its value is the review id; SET NX with a TTL
#   r1cds:v1:review:<review id>      fingerprint behind a review id, TTL
#   r1cds:v1:evidence:<token>        one call's evidence link (JSON: review id, service, handle → reference), TTL
#   r1cds:v1:model-slots             sorted set of slot holders scored by lease expiry (semaphore)
#   r1cds:v1:model-stalled           set with a slot lease's expiry after a model timeout: a silent model
#                                    server reads busy, not down, while it lives (workers.semaphore)
#   r1cds:v1:admitting:<queue>       sorted set of enqueues admitted past the depth cap, not yet in the queue,
#                                    scored by expiry (workers.broker)
#   r1cds:v1:ready                   pub/sub channel; each message is the fingerprint of a stored result
#   r1cds:v1:audit                   stream of audit records on their way to the chain (workers.audit_relay)
#
# Queue names are the Celery queues (Redis lists of the same name) the API checks for depth.

from __future__ import annotations

from typing import Final

from plugin.ai_review import Urgency

PREFIX: Final = "r1cds:v1"
READY_CHANNEL: Final = f"{PREFIX}:ready"
MODEL_SLOTS: Final = f"{PREFIX}:model-slots"
AUDIT_STREAM: Final = f"{PREFIX}:audit"
# Most urgent first: a worker consumes its queues in this order (kombu's "priority" queue order).
QUEUES: Final[tuple[tuple[Urgency, str], ...]] = (
    ("order-sign", "r1cds.order-sign"),
    ("order-select", "r1cds.order-select"),
    ("encounter", "r1cds.encounter"),
    ("patient-view", "r1cds.patient-view"),
)
QUEUE_OF: Final[dict[Urgency, str]] = dict(QUEUES)
REVIEW_TASK: Final = "r1cds.review"


def context_key(fingerprint: str) -> str:
    return f"{PREFIX}:context:{fingerprint}"


def result_key(fingerprint: str) -> str:
    return f"{PREFIX}:result:{fingerprint}"


def lock_key(fingerprint: str) -> str:
    return f"{PREFIX}:lock:{fingerprint}"


def review_key(review_id: str) -> str:
    return f"{PREFIX}:review:{review_id}"


def evidence_key(token: str) -> str:
    return f"{PREFIX}:evidence:{token}"


def admitting_key(queue: str) -> str:
    """Reviews admitted to `queue` by the depth cap whose task is still being sent (workers.broker)."""
    return f"{PREFIX}:admitting:{queue}"


def notice_key(review_id: str) -> str:
    """Set once the "found nothing" card of this review was shown (plugin.ai_review: once per review)."""
    return f"{PREFIX}:notice:{review_id}"

"""Settings of the AI review path (queue, result store, model backend, worker), read from R1CDS_* variables.

The API process and the worker processes read the same class, so both agree on the model id (part of
every review fingerprint), the Redis keys and the queue limits. `R1CDS_REDIS_URL` is shared with the
API's own settings (cds_hooks.settings), which use it for JWT replay protection and feedback.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# scripted: hand-written demonstration answers for the demo patients (inference.scripted), not a model.
Backend = Literal["sglang", "openai", "llamacpp", "scripted"]
# standard: the review as DESIGN §5 describes it (R1CDS_REVIEW_SAMPLES samples, the generic output schema).
# compact: sized for a small model on CPU (llama.cpp): one sample, fewer passages and a shorter summary, at
# most 2 suggestions with rationales of at most 400 characters, held to the schema grounded in this review
# (plugin.suggestions.grounded_json_schema), within 768 completion tokens (1024 on a truncation retry).
# auto: compact for the llamacpp backend, standard otherwise.
ReviewProfile = Literal["auto", "standard", "compact"]
RETRY_BACKOFF_MAX_S: Final = 30  # the longest wait between two attempts of a review task (workers.runtime)
# Added to the model timeout for a model slot's lease, and to the longest a task can run for the broker's
# visibility timeout: the time a worker needs between a request timing out and letting go.
LEASE_MARGIN_S: Final = 30


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="R1CDS_", extra="ignore", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(default=0.25, gt=0)
    ai_enabled: bool = True  # off: rule cards only, no queue, no model

    # The whole hook answer, rules and AI wait together, within this many seconds (DESIGN §2.6).
    sync_budget_s: float = Field(default=2.5, gt=0, le=30)
    result_ttl_s: int = Field(default=24 * 3600, ge=60)
    queue_max_depth: int = Field(default=200, ge=1)  # beyond it, hooks get the busy card, no new task

    model_backend: Backend = "llamacpp"
    model_url: str | None = None  # server root, e.g. http://sglang:30000; llamacpp: started by us when unset
    model_name: str = "default"  # the served model id; for llamacpp the GGUF path ("" = the packaged demo)
    model_api_key: str | None = Field(default=None, repr=False)
    model_slots: int = Field(default=4, ge=1)  # in-flight model requests across all workers
    model_timeout_s: float = Field(default=600.0, gt=0)
    review_samples: int = Field(default=5, ge=1, le=16)
    review_min_agreement: float = Field(default=0.6, gt=0, le=1)
    review_profile: ReviewProfile = "auto"
    card_language: str = "en"

    worker_concurrency: int = Field(default=4, ge=1)
    task_soft_limit_s: int = Field(default=900, ge=1)
    task_hard_limit_s: int = Field(default=960, ge=2)
    task_max_retries: int = Field(default=3, ge=0)
    # Redis broker: a task a dead worker had taken is handed out again after this long. Unset, it is derived
    # (visibility_s): the longer of the model timeout and the task hard limit, plus LEASE_MARGIN_S. Set it
    # above the hard limit, or a slow task is handed to a second worker while the first still runs it.
    visibility_timeout_s: int | None = Field(default=None, ge=1)
    # The audit chain (workers.audit_store): sqlite:///path or postgresql://...; unset, a SQLite file in
    # the user's data directory ($XDG_DATA_HOME/r1cds/audit.sqlite3).
    audit_database_url: str | None = Field(default=None, repr=False)
    # Prometheus multiprocess directory shared by the API and the workers (cds_hooks.metrics, workers.metrics,
    # set up by cds_hooks.stack.use_metrics_dir); unset: PROMETHEUS_MULTIPROC_DIR, else a private one
    # per `r1cds up` / `r1cds serve`, and no metrics in a worker started on its own.
    metrics_dir: str | None = None
    # The audit chain's external anchor (workers.audit_store.AnchorLog): signed checkpoints of the chain
    # head appended to this JSONL file, which must not live with the audit database (another disk or host,
    # its own permissions), so that deleting the newest records is caught. Unset: no checkpoints, and
    # `r1cds audit verify` says truncation was not checked. Set, it needs R1CDS_AUDIT_ANCHOR_KEY (the
    # HMAC-SHA256 key, 32 bytes or more: a shorter one stops the start). A process checkpoints after every
    # R1CDS_AUDIT_ANCHOR_EVERY records it wrote, R1CDS_AUDIT_ANCHOR_INTERVAL_S after its first unanchored
    # one, and at a clean shutdown.
    audit_anchor_path: str | None = None
    audit_anchor_key: SecretStr | None = None
    audit_anchor_every: int = Field(default=1000, ge=1)
    audit_anchor_interval_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _coherent(self) -> ReviewSettings:
        if self.task_hard_limit_s <= self.task_soft_limit_s:
            raise ValueError("R1CDS_TASK_HARD_LIMIT_S must exceed R1CDS_TASK_SOFT_LIMIT_S")
        if self.model_backend in ("sglang", "openai") and not self.model_url:
            raise ValueError(f"R1CDS_MODEL_BACKEND={self.model_backend} needs R1CDS_MODEL_URL")
        return self

    @property
    def compact_review(self) -> bool:
        """Whether reviews run the compact profile (see ReviewProfile)."""
        if self.review_profile == "auto":
            return self.model_backend == "llamacpp"
        return self.review_profile == "compact"

    @property
    def visibility_s(self) -> int:
        """The broker's visibility timeout: R1CDS_VISIBILITY_TIMEOUT_S, else derived from the model timeout.

        A running task ends by the hard limit (a model request by the model timeout, whichever is longer
        when they disagree); LEASE_MARGIN_S later the task of a lost worker is handed out again, and
        retried or stored as failed like any other, so a chart shows "in progress" for a review no worker
        runs at most this long plus one sweep (workers.app: unacked_restore_interval).
        """
        if self.visibility_timeout_s is not None:
            return self.visibility_timeout_s
        return max(self.task_hard_limit_s, math.ceil(self.model_timeout_s)) + LEASE_MARGIN_S

    @property
    def model_lease_s(self) -> float:
        """A model slot's lease (workers.semaphore): one request's timeout plus LEASE_MARGIN_S. A live
        holder renews it while its review runs; a hung or dead holder's slot frees itself this long after."""
        return self.model_timeout_s + LEASE_MARGIN_S

    @property
    def lock_ttl_s(self) -> int:
        """How long one fingerprint's single-flight lock lives: every attempt at its hard limit, the longest
        backoff before each retry, plus slack."""
        retries = self.task_max_retries
        return self.task_hard_limit_s * (retries + 1) + RETRY_BACKOFF_MAX_S * retries + 60


def model_label(settings: ReviewSettings) -> str:
    """How cards name the configured model before its review lands (the pending card)."""
    name = settings.model_name
    if settings.model_backend == "scripted":
        return "the scripted demonstration backend (scripted demonstration output, not a model)"
    if settings.model_backend == "llamacpp" and name in ("", "default"):
        return "the packaged Gemma 3 270m demo model on llama.cpp (not clinically meaningful)"
    if settings.model_backend == "llamacpp":
        return f"{PurePath(name).name} on llama.cpp"  # a GGUF path: its file name, never the server's path
    server = "SGLang" if settings.model_backend == "sglang" else "an OpenAI-compatible server"
    return f"the model served by {server}" if name in ("", "default") else f"{name} on {server}"


def load_review_settings(**overrides: Any) -> ReviewSettings:
    return ReviewSettings(**overrides)

"""ReviewSettings (R1CDS_* for the review path) and the Celery configuration built from it."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from workers import keys
from workers.app import create_celery
from workers.runtime import _backoff
from workers.settings import LEASE_MARGIN_S, ReviewSettings, load_review_settings
from workers.transport import Transport as SharedClientTransport

pytestmark = pytest.mark.unit

SGLANG = {"model_backend": "sglang", "model_url": "http://sglang.test.invalid:30000"}


@pytest.fixture(autouse=True)
def no_caller_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's own R1CDS_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("R1CDS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("soft", "hard"), [(900, 900), (900, 899), (10, 2)])
def test_hard_limit_must_exceed_the_soft_limit(soft: int, hard: int) -> None:
    with pytest.raises(ValidationError, match="R1CDS_TASK_HARD_LIMIT_S must exceed R1CDS_TASK_SOFT_LIMIT_S"):
        ReviewSettings(task_soft_limit_s=soft, task_hard_limit_s=hard)


def test_hard_limit_just_above_the_soft_limit_is_accepted() -> None:
    settings = ReviewSettings(task_soft_limit_s=10, task_hard_limit_s=11)
    assert (settings.task_soft_limit_s, settings.task_hard_limit_s) == (10, 11)


@pytest.mark.parametrize("backend", ["sglang", "openai"])
@pytest.mark.parametrize("url", [None, ""])
def test_remote_backends_need_a_model_url(backend: str, url: str | None) -> None:
    with pytest.raises(ValidationError, match=f"R1CDS_MODEL_BACKEND={backend} needs R1CDS_MODEL_URL"):
        ReviewSettings(model_backend=backend, model_url=url)  # type: ignore[arg-type]


def test_remote_backend_with_a_url_and_llamacpp_without_one_are_accepted() -> None:
    assert ReviewSettings(**SGLANG).model_url == SGLANG["model_url"]  # type: ignore[arg-type]
    local = ReviewSettings()
    assert (local.model_backend, local.model_url) == ("llamacpp", None)


def test_settings_come_from_r1cds_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "R1CDS_REDIS_URL": "redis://redis.test.invalid:6380/2",
        "R1CDS_AI_ENABLED": "false",
        "R1CDS_SYNC_BUDGET_S": "1.5",
        "R1CDS_QUEUE_MAX_DEPTH": "7",
        "R1CDS_MODEL_BACKEND": "openai",
        "R1CDS_MODEL_URL": "http://model.test.invalid:8000",
        "R1CDS_MODEL_NAME": "deepseek-r1-test",
        "R1CDS_MODEL_API_KEY": "sk-test",
        "R1CDS_MODEL_SLOTS": "2",
        "R1CDS_REVIEW_SAMPLES": "3",
        "R1CDS_WORKER_CONCURRENCY": "8",
        "R1CDS_TASK_SOFT_LIMIT_S": "100",
        "R1CDS_TASK_HARD_LIMIT_S": "120",
        "R1CDS_TASK_MAX_RETRIES": "1",
        "R1CDS_VISIBILITY_TIMEOUT_S": "300",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_review_settings()
    assert settings.redis_url == "redis://redis.test.invalid:6380/2"
    assert settings.ai_enabled is False
    assert settings.sync_budget_s == 1.5
    assert settings.queue_max_depth == 7
    assert (settings.model_backend, settings.model_url, settings.model_name) == (
        "openai",
        "http://model.test.invalid:8000",
        "deepseek-r1-test",
    )
    assert settings.model_api_key == "sk-test"
    assert "sk-test" not in repr(settings)
    assert (settings.model_slots, settings.review_samples, settings.worker_concurrency) == (2, 3, 8)
    assert (settings.task_soft_limit_s, settings.task_hard_limit_s, settings.task_max_retries) == (
        100,
        120,
        1,
    )
    assert settings.visibility_timeout_s == 300
    # Explicit arguments win over the environment.
    assert load_review_settings(queue_max_depth=9).queue_max_depth == 9


def test_an_invalid_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1CDS_REVIEW_SAMPLES", "0")
    with pytest.raises(ValidationError, match="review_samples"):
        load_review_settings()


@pytest.mark.parametrize("retries", [0, 1, 3, 6, 10, 20])
@pytest.mark.parametrize(("soft", "hard"), [(20, 30), (900, 960), (1, 2)])
def test_lock_ttl_covers_every_attempt_and_the_backoff_between_them(
    soft: int, hard: int, retries: int
) -> None:
    settings = ReviewSettings(task_soft_limit_s=soft, task_hard_limit_s=hard, task_max_retries=retries)
    # Each attempt may run up to its hard limit, and the worker waits _backoff(n) before attempt n + 1.
    worst_case = hard * (retries + 1) + sum(_backoff(attempt) for attempt in range(retries))
    assert settings.lock_ttl_s > worst_case


def test_celery_app_configuration() -> None:
    settings = ReviewSettings(
        **SGLANG,  # type: ignore[arg-type]
        redis_url="redis://127.0.0.1:6399/3",
        task_soft_limit_s=40,
        task_hard_limit_s=50,
        visibility_timeout_s=123,
        worker_concurrency=6,
    )
    app = create_celery(settings)
    conf = app.conf
    # JSON only, in both directions.
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    # A task is acknowledged after it ran, and given back when its worker dies.
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (40, 50)
    assert conf.worker_concurrency == 6
    # The four queues, most urgent first, each routed by its own name; consumed in that order.
    assert [q.name for q in conf.task_queues] == [
        "r1cds.order-sign",
        "r1cds.order-select",
        "r1cds.encounter",
        "r1cds.patient-view",
    ]
    assert [q.name for q in conf.task_queues] == [name for _, name in keys.QUEUES]
    assert all(q.routing_key == q.name for q in conf.task_queues)
    assert conf.task_default_queue == "r1cds.patient-view"
    assert conf.task_create_missing_queues is False
    options = conf.broker_transport_options
    assert options["queue_order_strategy"] == "priority"
    assert options["priority_steps"] == [0]  # every task is sent at priority 0: one list per queue
    assert options["visibility_timeout"] == 123
    # The broker is the configured Redis; results go to our own store, never a Celery backend.
    assert conf.broker_url == "redis://127.0.0.1:6399/3"
    assert conf.result_backend is None
    assert conf.task_ignore_result is True
    assert conf.r1cds_settings is settings
    assert "workers.tasks" in conf.include


@pytest.mark.parametrize(
    ("url", "shared_client"),
    [
        ("redis://127.0.0.1:6399/3", True),
        ("rediss://cache.example.org:6380/0", True),
        ("sentinel://127.0.0.1:26379", False),  # kombu's own choice of transport stays
    ],
)
def test_redis_urls_use_the_transport_with_one_shared_client(url: str, shared_client: bool) -> None:
    conf = create_celery(ReviewSettings(redis_url=url)).conf
    assert (conf.broker_transport is SharedClientTransport) is shared_client
    if not shared_client:
        assert conf.broker_transport is None


def test_visibility_timeout_defaults_above_the_hard_limit() -> None:
    # A task held by a live worker must not be handed to a second one while it still runs.
    settings = ReviewSettings()
    assert settings.visibility_timeout_s is None
    assert settings.visibility_s > settings.task_hard_limit_s
    assert settings.visibility_s == settings.task_hard_limit_s + LEASE_MARGIN_S < 1800
    assert (
        create_celery(settings).conf.broker_transport_options["visibility_timeout"] == settings.visibility_s
    )


def test_visibility_timeout_is_derived_from_the_model_timeout() -> None:
    # A model timeout longer than the hard limit sets the bound; no fixed half hour either way.
    slow = ReviewSettings(model_timeout_s=2400.5)
    assert slow.visibility_s == 2401 + LEASE_MARGIN_S
    quick = ReviewSettings(model_timeout_s=20, task_soft_limit_s=50, task_hard_limit_s=60)
    assert quick.visibility_s == 60 + LEASE_MARGIN_S
    options = create_celery(quick).conf.broker_transport_options
    assert options["visibility_timeout"] == 90
    # A lost worker's task is swept back a few seconds after its visibility timeout, not up to half of it
    # later; the sweep's lock never stops the sweeps for kombu's five minutes.
    assert options["unacked_restore_interval"] == 5
    assert options["unacked_mutex_expire"] == 10
    # An explicit R1CDS_VISIBILITY_TIMEOUT_S still wins.
    assert ReviewSettings(visibility_timeout_s=5000).visibility_s == 5000


def test_a_model_slot_lease_follows_the_model_timeout() -> None:
    assert ReviewSettings(model_timeout_s=12.5).model_lease_s == 12.5 + LEASE_MARGIN_S
    assert ReviewSettings().model_lease_s < ReviewSettings().task_hard_limit_s

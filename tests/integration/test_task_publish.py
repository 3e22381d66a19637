"""workers.publish writes what Celery's send_task writes; workers.transport keeps kombu's bookkeeping intact."""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from kombu import Connection  # type: ignore[attr-defined]

from tests.support.redis_server import RedisHandle, running_redis
from workers import keys
from workers.app import create_celery
from workers.publish import TaskMessages, TaskPublisher
from workers.settings import ReviewSettings
from workers.transport import Transport

pytestmark = pytest.mark.integration

# Fields that differ between any two sends, whoever sends them: a fresh delivery tag per message, the
# sending process's name, and the reply address of a Celery app (an RPC backend's; we have no backend).
PER_SEND = {("properties", "delivery_tag"), ("properties", "reply_to"), ("headers", "origin")}


@pytest.fixture(scope="module")
def served() -> Iterator[RedisHandle]:
    with running_redis() as handle:
        yield handle


@pytest.fixture
def client(served: RedisHandle) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(served.url, socket_timeout=5)
    connection.flushdb()
    yield connection
    connection.close()


def envelope(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def without_per_send_fields(message: dict[str, Any]) -> dict[str, Any]:
    trimmed = json.loads(json.dumps(message))
    for section, name in PER_SEND:
        trimmed[section].pop(name)
    return trimmed


@pytest.mark.parametrize("urgency", list(keys.QUEUE_OF))
def test_the_message_is_the_one_send_task_stores(
    client: redis.Redis, served: RedisHandle, urgency: str
) -> None:
    queue = keys.QUEUE_OF[urgency]  # type: ignore[index]
    task_id = str(uuid.uuid4())
    args = ["c0ffee" * 10, "r1-chart-review"]
    app = create_celery(ReviewSettings(redis_url=served.url), main="r1cds-api")
    try:
        app.send_task(keys.REVIEW_TASK, args=args, queue=queue, routing_key=queue, task_id=task_id)
    finally:
        app.close()
    client.lpush(queue, TaskMessages().build(keys.REVIEW_TASK, args, queue, task_id=task_id))

    ours, celerys = (envelope(raw) for raw in client.lrange(queue, 0, -1))  # LPUSH: newest first
    assert without_per_send_fields(ours) == without_per_send_fields(celerys)
    assert ours["body"] == [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert ours["headers"]["origin"] == f"gen{os.getpid()}@{socket.gethostname()}"
    assert ours["properties"]["delivery_tag"] != celerys["properties"]["delivery_tag"]


def test_every_message_gets_its_own_ids() -> None:
    messages = TaskMessages(origin="gen1@api")
    first, second = (envelope(messages.build("r1cds.review", ["fp", "svc"], "r1cds.encounter")) for _ in "ab")
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["headers"]["root_id"] == first["headers"]["id"] == first["properties"]["correlation_id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    assert first["headers"]["argsrepr"] == "['fp', 'svc']"
    assert first["properties"]["delivery_info"] == {"exchange": "", "routing_key": "r1cds.encounter"}


async def test_the_publisher_sends_one_message_over_the_callers_client(
    client: redis.Redis, served: RedisHandle
) -> None:
    connection = aioredis.Redis.from_url(served.url, socket_timeout=5)
    try:
        await TaskPublisher(connection).send(keys.REVIEW_TASK, ["fp", "svc"], keys.QUEUE_OF["order-sign"])
    finally:
        await connection.aclose()
    (raw,) = client.lrange(keys.QUEUE_OF["order-sign"], 0, -1)
    message = envelope(raw)
    assert message["headers"]["task"] == keys.REVIEW_TASK
    assert message["body"][0] == ["fp", "svc"]


def test_the_transport_shares_one_client_until_kombu_replaces_the_pool(served: RedisHandle) -> None:
    with Connection(served.url, transport=Transport) as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert first.connection_pool is channel.pool
        channel._after_fork()  # what kombu does in a forked child and after a connection error
        rebuilt = channel._create_client()
        assert rebuilt is not first
        assert rebuilt.connection_pool is channel.pool
        assert channel._create_client(asynchronous=True) is not rebuilt  # BRPOP's own, as before


def test_unacked_bookkeeping_survives_the_shared_client(client: redis.Redis, served: RedisHandle) -> None:
    # A received task is held in kombu's unacked hash until acked: what gives it back when a worker dies.
    with Connection(served.url, transport=Transport) as connection:
        queue = connection.SimpleQueue("r1cds.test-publish")
        try:
            queue.put({"n": 1})
            message = queue.get(timeout=5)
            assert client.hlen("unacked") == 1
            assert client.zcard("unacked_index") == 1
            message.ack()
            assert client.hlen("unacked") == 0
            assert client.zcard("unacked_index") == 0
            assert message.payload == {"n": 1}
        finally:
            queue.close()

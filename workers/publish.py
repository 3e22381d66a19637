"""Tasks for the workers as Celery protocol-2 messages in kombu's Redis envelope, sent with one LPUSH."""

# Why the API does not call Celery's send_task: kombu's publish is blocking I/O (the API had to run it on
# a thread) and takes 0.3-0.4 ms per task in bench.queue, several Redis round trips' worth. The message
# below is the one Celery's producer writes for send_task(name, args, queue=q) with no result backend,
# no eta/expiry and priority 0: the same headers and properties, the body base64-encoded JSON, pushed to
# the list kombu's Redis transport keeps for the queue (the list is named after the queue; priority 0 has
# no suffix). tests/integration/test_task_publish.py holds it equal to what send_task stores, field by
# field, and the stack tests run it through a real worker.
#
# What this does not do, on purpose: declare queues or bindings (the workers declare them when they start;
# the list is the queue either way), retry (the caller is inside a hook's time budget), or send events.

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

TaskArgument = str | int | float | bool | None

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_PERSISTENT = 2  # AMQP delivery mode "persistent", what Celery asks for by default


def _nodename() -> str:
    return f"gen{os.getpid()}@{socket.gethostname()}"


@dataclass(frozen=True)
class TaskMessages:
    """Builds task messages without I/O; `origin` names the sending process, as Celery's producer does."""

    origin: str = field(default_factory=_nodename)

    def build(self, task: str, args: Sequence[TaskArgument], queue: str, task_id: str | None = None) -> bytes:
        """The message for `task(*args)` on `queue`, as bytes to LPUSH onto the list named `queue`."""
        task_id = task_id or str(uuid.uuid4())
        arguments = list(args)
        body = orjson.dumps([arguments, {}, _EMBED])
        headers: dict[str, object] = {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],  # the worker applies the app's limits
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(arguments),
            "kwargsrepr": "{}",
            "origin": self.origin,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
        properties: dict[str, object] = {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": _PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        return orjson.dumps(
            {
                "body": base64.b64encode(body).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            }
        )


@dataclass(frozen=True)
class TaskPublisher:
    """Sends tasks over the caller's asyncio Redis client: one LPUSH, no thread, no second connection."""

    redis: aioredis.Redis
    messages: TaskMessages = field(default_factory=TaskMessages)

    async def send(self, task: str, args: Sequence[TaskArgument], queue: str) -> None:
        await self.redis.lpush(queue, self.messages.build(task, args, queue))

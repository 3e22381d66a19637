"""kombu's Redis transport with one synchronous Redis client per channel instead of one per command."""

# kombu builds a new redis.Redis for every synchronous command it sends (Channel.conn_or_acquire →
# _create_client): publishing, and, on a worker, the unacked bookkeeping of every task it receives and the
# ack after it ran. Building one costs ~50 µs of CPU (redis-py assembles its callback tables each time),
# and on a worker that CPU sits between a task arriving and the task starting. The client is only a
# handle on the channel's connection pool and safe to share between threads, so one per pool is enough:
# it is rebuilt whenever kombu replaces the pool (after a fork); a reconnect opens a new channel anyway.

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return shared


class Transport(kombu_redis.Transport):
    Channel = Channel

"""Runs any ASGI app on a free 127.0.0.1 port in a background thread, for tests that need real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

LOOPBACK = "127.0.0.1"


@dataclass
class ServedApp:
    url: str  # scheme://host:port, no trailing slash
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            raise RuntimeError(f"the loopback server at {self.url} did not stop within 10 s")


@contextmanager
def serve_asgi(
    build: Callable[[str], Any], lifespan: Literal["on", "off"] = "on", name: str = "asgi"
) -> Iterator[ServedApp]:
    """Bind a free port first, so `build` can be told its own URL (JWT audiences need it), then serve."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and Nagle's
    # algorithm would otherwise add ~40 ms to every keep-alive request.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.bind((LOOPBACK, 0))
        url = f"http://{LOOPBACK}:{listener.getsockname()[1]}"
        config = uvicorn.Config(
            build(url),
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=name, daemon=True)
        served = ServedApp(url, server, thread)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(f"the loopback {name} server exited during startup")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the loopback {name} server did not start within 10 s")
                time.sleep(0.01)
            yield served
        finally:
            served.stop()
    finally:
        listener.close()


def unused_loopback_url() -> str:
    """A loopback URL on a port that was free a moment ago and has nothing listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return f"http://{LOOPBACK}:{probe.getsockname()[1]}"

"""The bench site behind a middleware that notes when each tagged request arrives, so a
trigger-to-first-page-action time can be read from outside whatever ran the session.

A request whose query string carries `t=<tag>` records `time.perf_counter()` at arrival under
that tag; the bench triggers from the same process, so both ends read the same clock.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetwright.testing.site import create_app

__all__ = ["ProbeSite"]


class _Recorder:
    def __init__(self, app: ASGIApp, arrivals: dict[str, float]) -> None:
        self.app, self.arrivals = app, arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            tags = parse_qs(scope["query_string"].decode("latin-1")).get("t")
            if tags and tags[0] not in self.arrivals:
                self.arrivals[tags[0]] = time.perf_counter()
        await self.app(scope, receive, send)


class ProbeSite:
    """The bench site (no delay) on 127.0.0.1, recording tagged arrivals."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            _Recorder(create_app(), self.arrivals),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> ProbeSite:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the probe site did not start on {self.url}")
            time.sleep(0.01)
        return self

    async def arrival(self, tag: str, *, timeout: timedelta) -> float:
        """When the first request tagged `tag` arrived (perf_counter); waits for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total_seconds()
        while tag not in self.arrivals:
            if loop.time() > deadline:
                raise TimeoutError(f"no request tagged {tag} within {timeout}")
            await asyncio.sleep(0.005)
        return self.arrivals[tag]

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

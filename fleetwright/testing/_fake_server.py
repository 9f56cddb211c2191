"""A loopback HTTP server base for the fake GitHub and OpenAI services: routes, recorded
requests and injected faults (status bursts, rate limits, delays)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Fault", "Reply", "Request"]


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """What a route answers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An injected answer for the next `times` requests whose path starts with `path_prefix`."""

    reply: Reply
    times: int = 1
    path_prefix: str = "/"
    delay: timedelta = timedelta(0)


class FakeServer:
    """A threaded loopback server; subclasses implement `route`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._faults: deque[Fault] = deque()
        self.lock = threading.RLock()
        self.requests: list[Request] = []

    # lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server's base URL (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self) -> None:
                owner._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # faults ----------------------------------------------------------------------------
    def inject(
        self,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path_prefix: str = "/",
        delay: timedelta = timedelta(0),
    ) -> None:
        """Answer the next `times` matching requests with `status` instead of the route."""
        with self.lock:
            self._faults.append(
                Fault(Reply(status, body, dict(headers or {})), times, path_prefix, delay)
            )

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # dispatch --------------------------------------------------------------------------
    def route(self, request: Request) -> Reply:
        raise NotImplementedError

    def extra_headers(self, request: Request) -> dict[str, str]:
        """Headers added to every answer (e.g. rate-limit counters)."""
        return {}

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.requests.append(request)
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay.total_seconds())
            reply = fault.reply
        else:
            try:
                reply = self.route(request)
            except Exception as exc:  # a bug in the fake answers 500, visibly
                reply = Reply(500, {"message": f"fake server error: {exc!r}"})
        self._send(handler, request, reply)

    def _send(self, handler: BaseHTTPRequestHandler, request: Request, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            headers = {**self.extra_headers(request), **reply.headers}
            if reply.body is not None:
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if payload:
                handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return

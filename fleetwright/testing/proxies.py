"""Real proxy servers (tinyproxy, microsocks) and IP-echo/IP-info fakes on loopback.

Tests and benchmarks start them to exercise Fleetwright's proxy code against real servers.
Each proxy binds its outgoing side to its own loopback address (tinyproxy 127.0.0.2,
microsocks 127.0.0.3), so the echo server can tell which proxy a request came through.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from fleetwright.errors import ConfigurationError
from fleetwright.specs import ProxySpec

__all__ = [
    "DEFAULT_IP_TABLE",
    "IPEchoServer",
    "MicroSocks",
    "TinyProxy",
    "free_port",
    "wait_port",
]

DEFAULT_IP_TABLE: dict[str, tuple[str, str]] = {
    "127.0.0.1": ("ZZ", "UTC"),
    "127.0.0.2": ("DE", "Europe/Berlin"),
    "127.0.0.3": ("US", "America/New_York"),
}
"""Client address → (country, timezone) answered by the IP-info fake."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(
    port: int, *, host: str = "127.0.0.1", timeout: timedelta = timedelta(seconds=10)
) -> None:
    """Wait until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}") from None
            time.sleep(0.05)


class _Handler(BaseHTTPRequestHandler):
    server: _EchoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        client = self.client_address[0]
        path = self.path.split("?", 1)[0]
        if "://" in path:  # absolute-form request from a proxy
            path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
        with self.server.lock:
            self.server.hits[client] += 1
        if path == "/ip":
            self._send(200, json.dumps({"ip": client}).encode(), "application/json")
        elif path == "/info":
            country, tz = self.server.table.get(client, (None, None))
            body = {"ip": client, "country": country, "timezone": tz}
            self._send(200, json.dumps(body).encode(), "application/json")
        elif path == "/garbage":
            self._send(200, b"<html><body>Service temporarily moved</body></html>", "text/html")
        elif path == "/":
            page = f"<!doctype html><title>echo</title><p id='ip'>{client}</p>"
            self._send(200, page.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")


class _EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    hits: Counter[str]
    table: dict[str, tuple[str, str]]
    lock: threading.Lock


class IPEchoServer:
    """A loopback HTTP server: `/ip` echoes the client address as JSON, `/info` adds the
    country and timezone from a table keyed by client address, `/garbage` answers HTML,
    `/` is a page showing the client address."""

    def __init__(
        self,
        *,
        port: int = 0,
        table: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self._server = _EchoHTTPServer(("127.0.0.1", port), _Handler)
        self._server.hits = Counter()
        self._server.table = dict(table if table is not None else DEFAULT_IP_TABLE)
        self._server.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ip_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ip"

    @property
    def info_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/info"

    @property
    def garbage_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/garbage"

    @property
    def hits(self) -> Counter[str]:
        """Requests seen per client address."""
        with self._server.lock:
            return Counter(self._server.hits)

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ip-echo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _ProxyProcess:
    """A proxy server child process that can be stopped and started again on the same port."""

    binary = ""
    scheme = "http"

    def __init__(
        self,
        *,
        username: str | None,
        password: str | None,
        port: int | None = None,
        bind: str,
        workdir: Path | None = None,
    ) -> None:
        if shutil.which(self.binary) is None:
            raise ConfigurationError(
                f"{self.binary} is not installed; install it with apt-get install {self.binary}"
            )
        self.username = username
        self.password = password
        self.port = port or free_port()
        self.bind = bind
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"fw-{self.binary}-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout: timedelta = timedelta(seconds=10)) -> Self:
        if self.running:
            return self
        log = (self.workdir / f"{self.binary}.out").open("ab")
        self._proc = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            if self._proc.poll() is not None:
                out = (self.workdir / f"{self.binary}.out").read_text(errors="replace")
                self._proc = None
                raise ConfigurationError(
                    f"{self.binary} exited at start: {' '.join(out.split())[-300:]}"
                )
            try:
                wait_port(self.port, timeout=timedelta(seconds=0.2))
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def spec(self, name: str, **extra: Any) -> ProxySpec:
        """A ProxySpec for this server (with its credentials)."""
        return ProxySpec(
            name=name,
            scheme=self.scheme,
            host="127.0.0.1",
            port=self.port,
            username=self.username,
            password=self.password,
            **extra,
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TinyProxy(_ProxyProcess):
    """tinyproxy on 127.0.0.1 with BasicAuth, its outgoing side bound to `bind`."""

    binary = "tinyproxy"
    scheme = "http"

    def __init__(
        self,
        *,
        username: str | None = "fleet",
        password: str | None = "wright",
        port: int | None = None,
        bind: str = "127.0.0.2",
        workdir: Path | None = None,
    ) -> None:
        super().__init__(
            username=username, password=password, port=port, bind=bind, workdir=workdir
        )

    @property
    def log_path(self) -> Path:
        return self.workdir / "tinyproxy.log"

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def _command(self) -> list[str]:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            f"Bind {self.bind}",
            "Timeout 30",
            "MaxClients 64",
            "LogLevel Connect",
            f'LogFile "{self.log_path}"',
            "Allow 127.0.0.1",
        ]
        if self.username and self.password:
            lines.append(f"BasicAuth {self.username} {self.password}")
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        return ["tinyproxy", "-d", "-c", str(conf)]


class MicroSocks(_ProxyProcess):
    """microsocks (SOCKS5) on 127.0.0.1 with -u/-P auth, its outgoing side bound to `bind`."""

    binary = "microsocks"
    scheme = "socks5"

    def __init__(
        self,
        *,
        username: str | None = "fleet",
        password: str | None = "socks-pw",
        port: int | None = None,
        bind: str = "127.0.0.3",
        workdir: Path | None = None,
    ) -> None:
        super().__init__(
            username=username, password=password, port=port, bind=bind, workdir=workdir
        )

    def _command(self) -> list[str]:
        # microsocks only takes credentials as arguments: test servers only.
        cmd = ["microsocks", "-i", "127.0.0.1", "-p", str(self.port), "-b", self.bind]
        if self.username and self.password:
            cmd += ["-u", self.username, "-P", self.password]
        return cmd

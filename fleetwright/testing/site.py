"""A tiny local site for the demo, the tests and the benchmarks (Starlette served by uvicorn).

Pages: / (links), /login → /account, /table, /flow/1..3, /storage, /ip, /download, /upload,
/slow?ms=N. A delay set at serve time is added to every response.

    python -m fleetwright.testing.site --port 8765 --delay-ms 150
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["PRODUCTS", "SiteProcess", "SiteServer", "create_app", "main", "serve_site"]

SESSION_COOKIE = "fw_session"
MAX_SLOW_MS = 60_000
MAX_UPLOAD = 20 * 1024 * 1024
DOWNLOAD_NAME = "report.csv"
DOWNLOAD_BODY = b"id,name,price\n1,Widget,9.99\n2,Gadget,24.50\n3,Doohickey,3.75\n"

#: The rows /table shows: (id, name, price).
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("p-100", "Widget", "9.99"),
    ("p-101", "Gadget", "24.50"),
    ("p-102", "Doohickey", "3.75"),
    ("p-103", "Sprocket", "12.00"),
    ("p-104", "Gizmo", "99.95"),
)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (no python-multipart needed)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


async def index(request: Request) -> Response:
    links = ["login", "account", "table", "flow/1", "storage", "ip", "download", "upload"]
    items = "".join(f'<li><a href="/{p}">{p}</a></li>' for p in links)
    return _page("Fleetwright demo site", f"<ul id=links>{items}</ul>")


async def login(request: Request) -> Response:
    if request.method == "POST":
        form = await _form(request)
        user, password = form.get("user", "").strip(), form.get("password", "")
        if not user or not password:
            return _page("Sign in", "<p id=error>User and password are required.</p>" + _LOGIN)
        token = secrets.token_hex(16)
        request.app.state.sessions[token] = user
        request.app.state.logins[user] = hashlib.sha256(password.encode()).hexdigest()
        response = RedirectResponse("/account", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax")
        return response
    return _page("Sign in", _LOGIN)


_LOGIN = (
    '<form id=login method=post action="/login">'
    "<label>User <input name=user id=user autocomplete=off></label>"
    "<label>Password <input name=password id=password type=password autocomplete=off></label>"
    "<button id=submit type=submit>Sign in</button></form>"
)


async def account(request: Request) -> Response:
    user = request.app.state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if user is None:
        return RedirectResponse("/login", status_code=303)
    client = request.client.host if request.client else ""
    return _page(
        "Account",
        f"<p id=who>Signed in as {html.escape(user)}</p><p id=client>{html.escape(client)}</p>",
    )


async def table(request: Request) -> Response:
    rows = "".join(
        f'<tr data-id="{pid}"><td class=id>{pid}</td><td class=name>{name}</td>'
        f"<td class=price>{price}</td></tr>"
        for pid, name, price in PRODUCTS
    )
    return _page(
        "Products",
        "<table id=products><thead><tr><th>id</th><th>name</th><th>price</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
    )


async def flow(request: Request) -> Response:
    step = request.path_params["step"]
    q = request.query_params
    name, color = html.escape(q.get("name", "")), html.escape(q.get("color", ""))
    if step == 1:
        body = (
            '<form id=step1 action="/flow/2"><label>Name <input id=name name=name></label>'
            "<button id=next type=submit>Next</button></form>"
        )
    elif step == 2:
        body = (
            f'<form id=step2 action="/flow/3"><input type=hidden name=name value="{name}">'
            f"<p>Hello {name}</p><label>Colour <select id=color name=color>"
            "<option>red</option><option>green</option><option>blue</option></select></label>"
            "<button id=next type=submit>Next</button></form>"
        )
    elif step == 3:
        body = f"<p id=summary>Name: {name}; colour: {color}</p>"
    else:
        return _page("Not found", "<p>No such step.</p>")
    return _page(f"Flow step {step}", body)


_STORAGE_JS = """
<script>
const out = (id, v) => { document.getElementById(id).textContent = v === null ? "" : v; };
const q = new URLSearchParams(location.search).get("write");
function idb(mode, value) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("fw", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("kv");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction("kv", mode);
      const store = tx.objectStore("kv");
      const req = mode === "readwrite" ? store.put(value, "fw") : store.get("fw");
      tx.oncomplete = () => { open.result.close(); resolve(req.result); };
      tx.onerror = () => reject(tx.error);
    };
  });
}
(async () => {
  if (q !== null) {
    localStorage.setItem("fw", q);
    sessionStorage.setItem("fw", q);
    document.cookie = "fw_js=" + encodeURIComponent(q) + "; path=/; max-age=86400";
    await idb("readwrite", q);
  }
  out("local", localStorage.getItem("fw"));
  out("session", sessionStorage.getItem("fw"));
  const c = document.cookie.split("; ").find(x => x.startsWith("fw_js="));
  out("cookie", c ? decodeURIComponent(c.slice(6)) : "");
  const v = await idb("readonly");
  out("idb", v === undefined ? "" : v);
  document.getElementById("status").textContent = "ready";
})().catch(e => { document.getElementById("status").textContent = "error: " + e; });
</script>"""


async def storage(request: Request) -> Response:
    body = (
        "<dl><dt>cookie</dt><dd id=cookie></dd><dt>localStorage</dt><dd id=local></dd>"
        "<dt>sessionStorage</dt><dd id=session></dd><dt>IndexedDB</dt><dd id=idb></dd></dl>"
        "<p id=status>loading</p>" + _STORAGE_JS
    )
    return _page("Storage", body)


async def ip(request: Request) -> Response:
    client = request.client.host if request.client else ""
    return JSONResponse({"ip": client, "headers": dict(request.headers)})


async def download(request: Request) -> Response:
    return Response(
        DOWNLOAD_BODY,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{DOWNLOAD_NAME}"'},
    )


def _multipart_files(content_type: str, body: bytes) -> list[tuple[str, str, int]]:
    """(field, filename, size) of each file part of a multipart body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    found = []
    for part in message.iter_parts():
        filename = part.get_filename()
        if filename is None:
            continue
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        field = part.get_param("name", header="content-disposition")
        found.append((field if isinstance(field, str) else "", str(filename), size))
    return found


async def upload(request: Request) -> Response:
    form = (
        '<form id=upload method=post enctype="multipart/form-data" action="/upload">'
        "<input id=file type=file name=file><button id=send type=submit>Upload</button></form>"
    )
    if request.method == "GET":
        return _page("Upload", form)
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if not content_type.startswith("multipart/form-data") or len(body) > MAX_UPLOAD:
        return _page("Upload", "<p id=error>Send one file as multipart/form-data.</p>" + form)
    files = _multipart_files(content_type, body)
    if not files:
        return _page("Upload", "<p id=error>No file received.</p>" + form)
    _field, filename, size = files[0]
    return _page(
        "Uploaded",
        f"<p id=result>Received <span id=filename>{html.escape(str(filename))}</span> "
        f"(<span id=size>{size}</span> bytes)</p>",
    )


async def slow(request: Request) -> Response:
    try:
        ms = max(0, min(int(request.query_params.get("ms", "1000")), MAX_SLOW_MS))
    except ValueError:
        return _page("Slow", "<p id=error>ms must be a whole number of milliseconds.</p>")
    await asyncio.sleep(ms / 1000)
    return _page("Slow", f"<p id=waited>Waited {ms} ms</p>")


class _Delay:
    """ASGI middleware: wait `delay` before answering any HTTP request."""

    def __init__(self, app: ASGIApp, delay: float) -> None:
        self.app, self.delay = app, delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.delay > 0:
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


def create_app(*, delay: timedelta = timedelta(0), logins: dict[str, str] | None = None) -> ASGIApp:
    """The site as an ASGI app; every response waits `delay` first. `logins` collects the
    SHA-256 of the password each user last signed in with (tests check what arrived)."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/account", account),
            Route("/table", table),
            Route("/flow/{step:int}", flow),
            Route("/storage", storage),
            Route("/ip", ip),
            Route("/download", download),
            Route("/upload", upload, methods=["GET", "POST"]),
            Route("/slow", slow),
        ]
    )
    app.state.sessions = {}
    app.state.logins = logins if logins is not None else {}
    seconds = delay.total_seconds()
    if seconds < 0:
        raise ValueError("delay must not be negative")
    return _Delay(app, seconds) if seconds else app


class AppServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (or `host`) in a background thread (port 0: a
    free one). Use it as a context manager, or `start()` and `stop()`."""

    def __init__(
        self, app: Any, *, port: int = 0, what: str = "the test app", host: str = "127.0.0.1"
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._what = what
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, *, timeout: timedelta = timedelta(seconds=10)) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout.total_seconds()
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._what} did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class SiteServer(AppServer):
    """The demo site served by uvicorn on 127.0.0.1 (or `host`) in a background thread."""

    def __init__(
        self, *, port: int = 0, delay: timedelta = timedelta(0), host: str = "127.0.0.1"
    ) -> None:
        self.delay = delay
        #: user → SHA-256 of the password the site last received from them
        self.logins: dict[str, str] = {}
        super().__init__(
            create_app(delay=delay, logins=self.logins), port=port, what="the demo site", host=host
        )


class SiteProcess:
    """The site served from a process of its own (`python -m fleetwright.testing.site`).

    A real site never shares an interpreter with the automation visiting it. SiteServer's
    thread does: its requests wait for the client process's GIL, so the more Python threads
    a client runs, the slower the site answers it. Benchmarks that compare clients use this.
    """

    def __init__(
        self, *, port: int = 0, delay: timedelta = timedelta(0), log_path: Path | None = None
    ) -> None:
        from fleetwright.testing.proxies import free_port

        if delay < timedelta(0):
            raise ValueError("delay must not be negative")
        self.port: int = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay = delay
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: timedelta = timedelta(seconds=30)) -> SiteProcess:
        """Start the process and wait until the site answers."""
        import tempfile

        import httpx

        from fleetwright.processes import start_process

        log = self.log_path or Path(tempfile.gettempdir()) / f"fleetwright-site-{self.port}.log"
        delay_ms = str(int(self.delay.total_seconds() * 1000))
        self._proc = start_process(
            [sys.executable, "-m", "fleetwright.testing.site", "--port", str(self.port),
             "--delay-ms", delay_ms],
            {}, log_path=log,
        )  # fmt: skip
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            if self._proc.poll() is not None:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                self._proc = None
                raise RuntimeError(f"the site on port {self.port} exited at start: {tail}")
            try:
                httpx.get(f"{self.url}/", timeout=2).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the site did not answer on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (idempotent)."""
        from fleetwright.processes import stop_process

        stop_process(self._proc, timeout=10)
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


@contextmanager
def serve_site(
    *, port: int = 0, delay: timedelta = timedelta(0), host: str = "127.0.0.1"
) -> Iterator[SiteServer]:
    """Serve the site for the duration of a `with` block; port 0 picks a free port."""
    server = SiteServer(port=port, delay=delay, host=host).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve Fleetwright's local demo site.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay-ms", type=int, default=0, help="added to every response")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    with serve_site(port=args.port, delay=timedelta(milliseconds=args.delay_ms)) as site:
        print(f"Fleetwright demo site on {site.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

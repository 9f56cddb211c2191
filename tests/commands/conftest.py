"""Fixtures for command tests: small real pages on 127.0.0.1, one Chromium per module."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from fleetwright.commands import CommandContext, CommandSpec, parse_command

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
]

PAGES: dict[str, str] = {
    "/login": """<!doctype html><title>Login</title>
<form action="/account" method="get">
  <input id="user" name="user"><input id="password" name="password" type="password">
  <button type="submit">Sign in</button>
</form>""",
    "/table": """<!doctype html><title>Products</title>
<table id="products"><thead><tr><th>Name</th><th>Price</th></tr></thead>
<tbody><tr><td>Widget</td><td>9.99</td></tr><tr><td>Gadget</td><td>19.50</td></tr></tbody>
</table>
<table id="bare"><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>""",
    "/widgets": """<!doctype html><title>Widgets</title>
<select id="color"><option value="r">Red</option><option value="g">Green</option></select>
<input type="checkbox" id="agree">
<div id="hover-target" onmouseover="document.getElementById('tip').hidden=false">hover me</div>
<div id="tip" hidden>tooltip</div>
<input id="key" onkeydown="document.getElementById('last-key').textContent=event.key">
<div id="last-key"></div>
<ul id="items"><li data-sku="a1">Apple</li><li data-sku="b2">Banana</li>
<li data-sku="c3">Cherry</li></ul>
<a id="dl" href="/file.txt">download</a>
<input id="upload" type="file" multiple onchange="document.getElementById('uploaded').textContent=
  Array.from(this.files).map(f => f.name + ':' + f.size).join(',')">
<div id="uploaded"></div>
<button id="disabled" disabled>no</button>
<div id="hidden" style="display:none">secret</div>
<div id="later"></div>
<script>setTimeout(() => { document.getElementById('later').innerHTML =
  '<span id="late">arrived</span>'; }, 300);</script>
<div style="height: 4000px">tall</div>
<div id="bottom">bottom</div>""",
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path in PAGES:
            self._send(PAGES[url.path].encode())
        elif url.path == "/account":
            user = parse_qs(url.query).get("user", [""])[0]
            body = f"<!doctype html><h1 id='greeting'>Signed in as {user}</h1>"
            self._send(body.encode())
        elif url.path == "/file.txt":
            self._send(
                b"id,name\n1,widget\n",
                "text/plain",
                Content_Disposition='attachment; filename="report.csv"',
            )
        elif url.path == "/slow":
            time.sleep(3)
            self._send(b"<p>slow</p>")
        else:
            self.send_error(404)


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """Base URL of the test pages, served from a thread on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """One real Chromium for the module."""
    from playwright.async_api import async_playwright

    executable = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE")
    if not executable:
        pytest.fail("FLEETWRIGHT_CHROMIUM_EXECUTABLE is not set and no system Chromium was found")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh context and page for one test."""
    context = await browser.new_context(accept_downloads=True)
    pg = await context.new_page()
    yield pg
    await context.close()


@pytest.fixture
def ctx(tmp_path: Path) -> CommandContext:
    return CommandContext(
        artifacts_dir=tmp_path / "artifacts",
        profile={"name": "alice", "tags": ["qa"]},
        run={"id": 7, "attempt": 1},
        base_dir=tmp_path,
    )


def _command(text: str) -> CommandSpec:
    return parse_command(yaml.safe_load(text), where="test.yaml")


@pytest.fixture
def cmd() -> Callable[[str], CommandSpec]:
    """Build a CommandSpec from inline YAML text."""
    return _command

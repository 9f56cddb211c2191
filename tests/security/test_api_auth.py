"""The Prefect API asks for a credential: anonymous and wrong requests get 401 (HTTP) or a
closed socket (events), the UI's login page lets the right one in, in a real browser.

The session server (tests/conftest.py) runs with Prefect's basic API auth, as the one
`fleetwright up` starts does; every other test that talks to Prefect goes through it too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.prefect


def _basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def test_requests_without_the_credential_get_401(prefect_api: str, prefect_auth: str) -> None:
    wrong = prefect_auth + "x"
    probes = [
        ("POST", "/flows/filter", {"json": {}}),
        ("POST", "/flow_runs/filter", {"json": {}}),
        # what the open server of old gave any local user: every block, secrets decrypted
        ("POST", "/block_documents/filter", {"json": {"include_secrets": True}}),
        ("GET", "/admin/version", {}),
    ]
    for method, path, kw in probes:
        url = f"{prefect_api}{path}"
        for headers in (
            {},
            _basic(wrong),
            _basic(prefect_auth.partition(":")[2]),  # the password without its user
            {"Authorization": "Basic not-base64!"},
            {"Authorization": f"Bearer {prefect_auth}"},
        ):
            response = httpx.request(method, url, headers=headers, timeout=30, **kw)
            assert response.status_code == 401, (method, path, headers, response.text[:200])
            assert prefect_auth not in response.text
        ok = httpx.request(method, url, headers=_basic(prefect_auth), timeout=30, **kw)
        assert ok.status_code == 200, (method, path, ok.text[:200])
    # the health probe stays open (so do the UI's static files), nothing else
    assert httpx.get(f"{prefect_api}/health", timeout=30).status_code == 200


async def test_the_events_socket_wants_the_credential_too(
    prefect_api: str, prefect_auth: str
) -> None:
    """Events (block edits among them) stream over a websocket: a wrong token is refused."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = prefect_api.replace("http://", "ws://") + "/events/out"
    for token in (None, prefect_auth + "x"):
        async with connect(url, subprotocols=["prefect"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "auth", "token": token}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with connect(url, subprotocols=["prefect"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "auth", "token": prefect_auth}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert reply == {"type": "auth_success"}


@pytest.mark.browser
def test_ui_login_in_a_real_browser(prefect_api: str, prefect_auth: str) -> None:
    """Chromium opens the UI: the login page asks for the credential, a wrong one is refused,
    the right one shows the dashboard and the runs page lists a flow run of this test."""
    from playwright.sync_api import sync_playwright
    from prefect import flow

    run_name = f"ui-login-{uuid.uuid4().hex[:8]}"

    @flow(name="fw-ui-login-probe")
    def probe() -> int:
        return 1

    assert probe.with_options(flow_run_name=run_name)() == 1  # this process authenticates too
    base = prefect_api.removesuffix("/api")
    statuses: list[tuple[str, int]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            page.on(
                "response",
                lambda r: statuses.append((r.url, r.status)) if "/api/" in r.url else None,
            )
            page.goto(f"{base}/dashboard", wait_until="networkidle", timeout=90_000)
            password = page.locator("input[type=password]")
            password.wait_for(timeout=60_000)
            assert "Login" in page.inner_text("body")
            assert any(status == 401 for _, status in statuses), statuses
            # a wrong credential: refused, still on the login page
            password.fill(prefect_auth + "x")
            password.press("Enter")
            page.get_by_text("Authentication failed").first.wait_for(timeout=60_000)
            page.locator("input[type=password]").wait_for(timeout=60_000)
            # the right one: the dashboard, then the runs page with this test's flow run
            page.locator("input[type=password]").fill(prefect_auth)
            statuses.clear()
            page.locator("input[type=password]").press("Enter")
            page.locator("input[type=password]").wait_for(state="detached", timeout=60_000)
            page.get_by_text("Dashboard").first.wait_for(timeout=60_000)
            page.goto(f"{base}/runs", wait_until="networkidle", timeout=90_000)
            page.get_by_text(run_name).first.wait_for(timeout=90_000)
            stored = page.evaluate("localStorage.getItem('prefect-password')")
        finally:
            browser.close()
    assert stored == base64.b64encode(prefect_auth.encode()).decode()
    assert statuses and all(status != 401 for _, status in statuses), statuses
    assert any(status == 200 for _, status in statuses), statuses


@pytest.mark.slow
def test_rotating_the_credential(tmp_path: Path) -> None:
    """`fleetwright auth rotate` writes a new credential (never printed); the running server
    keeps the old one until it is restarted, as `up` does, with the new one."""
    from fleetwright.embedded import LocalPrefectServer
    from fleetwright.prefect_auth import auth_path, ensure_auth, read_auth

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEETWRIGHT_"))}
    env.update(FLEETWRIGHT_HOME=str(home), COLUMNS="300")  # rich folds at 80 in a pipe
    fleetwright = [str(Path(sys.executable).parent / "fleetwright")]
    where = subprocess.run([*fleetwright, "auth", "where"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert where.returncode == 1 and "fleetwright up" in where.stdout

    old, created = ensure_auth(home)
    assert created
    server = LocalPrefectServer(prefect_home=home / "prefect", auth_string=old)
    server.start()
    try:
        done = subprocess.run([*fleetwright, "auth", "rotate"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        new = read_auth(home)
        assert new and new != old and new.startswith("fleetwright:")
        assert new.partition(":")[2] not in done.stdout + done.stderr
        assert str(auth_path(home)) in done.stdout and "Restart" in done.stdout
        assert stat.S_IMODE(auth_path(home).stat().st_mode) == 0o600
        url = f"{server.api_url}/admin/version"
        assert httpx.get(url, headers=_basic(old), timeout=30).status_code == 200
        assert httpx.get(url, headers=_basic(new), timeout=30).status_code == 401
    finally:
        server.stop()
    server = LocalPrefectServer(prefect_home=home / "prefect", auth_string=read_auth(home))
    server.start()
    try:
        url = f"{server.api_url}/admin/version"
        assert httpx.get(url, headers=_basic(new), timeout=30).status_code == 200
        assert httpx.get(url, headers=_basic(old), timeout=30).status_code == 401
    finally:
        server.stop()
    shown = subprocess.run([*fleetwright, "auth", "where"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert shown.returncode == 0 and str(auth_path(home)) in shown.stdout
    assert new.partition(":")[2] not in shown.stdout

"""Fleetwright's settings reach Prefect from every entry point, not only the CLI.

The Python API runs in a child process whose environment holds FLEETWRIGHT_* settings only
(no PREFECT_*), with HOME a temporary folder: it must reach the server the settings name,
or fail with one line at once, and never create ~/.prefect or a throwaway server.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.prefect

_PROBE = """
import json, sys
import fleetwright
from fleetwright.errors import FleetwrightError

try:
    if sys.argv[1] == "submit":
        run = fleetwright.run_deployment(sys.argv[2], {})
        again = fleetwright.get_run(run.id)
        print(json.dumps({"id": run.id, "state": again.state}))
    else:
        fleetwright.get_run(sys.argv[2])
except FleetwrightError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": exc.message}))
"""


def _fleetwright_only_env(
    tmp_path: Path, fleetwright_home: Path, **settings: str
) -> dict[str, str]:
    """The test process's environment without any PREFECT_* variable, HOME in `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEETWRIGHT_"))}
    env["HOME"] = str(tmp_path / "user")
    env["FLEETWRIGHT_HOME"] = str(fleetwright_home)
    env.update(settings)
    (tmp_path / "user").mkdir(exist_ok=True)
    return env


def _probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _probe_deployment() -> str:
    """A deployment (no work pool: its runs stay scheduled) on the session server."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_id = await client.create_flow_from_name("fw-settings-probe")
        await client.create_deployment(flow_id=flow_id, name="probe")
    return "fw-settings-probe/probe"


async def test_python_api_uses_fleetwright_port(
    prefect_api: str, home: Path, tmp_path: Path, store_prefect_auth: Callable[[Path], Path]
) -> None:
    """The local server's credential comes from the home, where `fleetwright up` keeps it."""
    from fleetwright.catalogue.db import upgrade

    upgrade()
    deployment = await _probe_deployment()
    port = urlsplit(prefect_api).port
    assert port is not None and port != 4200
    store_prefect_auth(home)
    env = _fleetwright_only_env(tmp_path, home, FLEETWRIGHT_PREFECT_PORT=str(port))
    done = _probe(env, "submit", deployment)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "SCHEDULED", result
    from prefect.client.orchestration import get_client

    async with get_client() as client:  # the run is on the session server
        run = await client.read_flow_run(result["id"])
    assert run.deployment_id is not None
    assert not (tmp_path / "user" / ".prefect").exists()


async def test_python_api_uses_fleetwright_api_url(
    prefect_api: str, home: Path, tmp_path: Path, prefect_auth: str
) -> None:
    """A server named by URL is a server of the user's own: its credential is the user's
    PREFECT_API_AUTH_STRING, kept as it is."""
    from fleetwright.catalogue.db import upgrade

    upgrade()
    deployment = await _probe_deployment()
    env = _fleetwright_only_env(
        tmp_path,
        home,
        FLEETWRIGHT_PREFECT_API_URL=prefect_api,
        FLEETWRIGHT_PREFECT_PORT="9",
        PREFECT_API_AUTH_STRING=prefect_auth,
    )
    done = _probe(env, "submit", deployment)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "SCHEDULED"
    assert not (tmp_path / "user" / ".prefect").exists()


@pytest.mark.parametrize("credential", ["none", "wrong"])
def test_python_api_refused_by_the_server_fails_in_one_line(
    prefect_api: str, tmp_path: Path, credential: str
) -> None:
    """No credential in the home, or a stale one: one line naming the URL and where the
    credential lives, at once; the credential itself is never in it."""
    from fleetwright.prefect_auth import new_auth, rotate_auth

    fw_home = tmp_path / "fw"
    stale = rotate_auth(fw_home) if credential == "wrong" else new_auth()
    port = str(urlsplit(prefect_api).port)
    env = _fleetwright_only_env(tmp_path, fw_home, FLEETWRIGHT_PREFECT_PORT=port)
    done = _probe(env, "read", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error"] == "PrefectUnavailableError", result
    assert "HTTP 401" in result["message"] and "prefect-api-auth" in result["message"]
    assert "\n" not in result["message"] and "Traceback" not in done.stderr
    assert stale.partition(":")[2] not in done.stdout + done.stderr


def test_python_api_without_server_fails_in_one_line(tmp_path: Path) -> None:
    from fleetwright.embedded.prefect_server import free_port

    port = free_port()
    fw_home = tmp_path / "fw"
    env = _fleetwright_only_env(tmp_path, fw_home, FLEETWRIGHT_PREFECT_PORT=str(port))
    done = _probe(env, "read", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error"] == "PrefectUnavailableError"
    assert f"127.0.0.1:{port}" in result["message"] and "\n" not in result["message"]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "user" / ".prefect").exists()
    # No throwaway server: nothing wrote a Prefect database anywhere under the temp folder.
    assert not list(tmp_path.rglob("prefect.db"))


def test_settings_apply_before_and_after_prefect_import(tmp_path: Path) -> None:
    """A script that imported Prefect first still talks to Fleetwright's server."""
    env = _fleetwright_only_env(
        tmp_path, tmp_path / "fw", FLEETWRIGHT_PREFECT_API_URL="http://127.0.0.1:4999/api"
    )
    script = (
        "import prefect.settings as s, fleetwright.api\n"
        "print(s.get_current_settings().api.url)\n"
        "print(s.get_current_settings().home)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    url, prefect_home = done.stdout.split()
    assert url == "http://127.0.0.1:4999/api"
    assert prefect_home == str(tmp_path / "fw" / "prefect")


def test_flows_tasks_and_deployments_apply_settings(tmp_path: Path) -> None:
    for module in ("fleetwright.flows", "fleetwright.tasks", "fleetwright.deployments"):
        env = _fleetwright_only_env(tmp_path, tmp_path / "fw", FLEETWRIGHT_PREFECT_PORT="4321")
        script = f"import os, {module}; print(os.environ['PREFECT_API_URL'])"
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "http://127.0.0.1:4321/api", module


def test_cli_status_finds_server_through_fleetwright_port(
    prefect_api: str, tmp_path: Path, store_prefect_auth: Callable[[Path], Path]
) -> None:
    """`status` (any command) reaches the server on FLEETWRIGHT_PREFECT_PORT, even with a
    stale PREFECT_API_URL of the user's in the environment, with the home's credential."""
    port = str(urlsplit(prefect_api).port)
    store_prefect_auth(tmp_path / "fw")
    env = _fleetwright_only_env(tmp_path, tmp_path / "fw", FLEETWRIGHT_PREFECT_PORT=port)
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    exe = Path(sys.executable).with_name("fleetwright")
    done = subprocess.run(
        [str(exe), "status", "--json"], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["prefect_api"] == prefect_api and info["prefect_ok"] is True
    assert info["prefect_auth"] == "given, accepted"
    assert not (tmp_path / "user" / ".prefect").exists()


def test_ui_settings_name_the_servers_own_api(prefect_api: str) -> None:
    base = prefect_api.removesuffix("/api")
    ui = httpx.get(f"{base}/ui-settings", timeout=10).json()
    assert ui["api_url"] == prefect_api


@pytest.mark.browser
def test_ui_on_other_port_reaches_its_api(prefect_api: str, prefect_auth: str) -> None:
    """A real browser opens the UI of a server on a non-default port: no connection banner,
    and the UI's own API calls go to that port and succeed (logged in as the UI's login page
    would: tests/security/test_api_auth.py goes through that page itself)."""
    from playwright.sync_api import sync_playwright

    base = prefect_api.removesuffix("/api")
    assert urlsplit(base).port != 4200
    api_calls: list[tuple[str, int]] = []
    failed: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            token = base64.b64encode(prefect_auth.encode()).decode()
            page.add_init_script(f"localStorage.setItem('prefect-password', '{token}')")
            page.on(
                "response",
                lambda r: api_calls.append((r.url, r.status)) if "/api/" in r.url else None,
            )
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(f"{base}/dashboard", wait_until="networkidle", timeout=60_000)
            page.wait_for_timeout(2_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert "Can't connect" not in text, text[:500]
    assert api_calls, "the UI made no API call"
    assert all(url.startswith(prefect_api) for url, _ in api_calls), api_calls
    assert any(status == 200 for _, status in api_calls)
    assert not [u for u in failed if "/api/" in u], failed

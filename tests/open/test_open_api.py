"""The local API served by `fleetwright api serve` (a process of its own): open a profile for
a tool and stop it, list and read profiles, start a fleet run and read it, refuse a missing or
wrong token; and a bounded schemathesis run against its OpenAPI document."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

TOKEN = "test-token-" + "x" * 24
FLEETWRIGHT = [str(Path(sys.executable).parent / "fleetwright")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api(prefect_api: str, home: Path) -> Iterator[str]:
    """`fleetwright api serve` on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen(
        [*FLEETWRIGHT, "api", "serve", "--port", str(port)],
        env={**os.environ, "FLEETWRIGHT_API_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _client(url: str, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def test_endpoints_and_auth(api: str, make_profile, site, tmp_path: Path) -> None:
    from fleetwright.browser.state import StateStore

    name = make_profile("api-alice")
    for token in (None, "wrong-token-" + "y" * 20):
        with _client(api, token) as anon:
            for method, path in [
                ("GET", "/profiles"),
                ("GET", f"/profiles/{name}"),
                ("POST", f"/profiles/{name}/start"),
                ("POST", f"/profiles/{name}/stop"),
                ("POST", "/runs"),
                ("GET", "/runs/x"),
            ]:
                r = anon.request(method, path, json={} if method == "POST" else None)
                assert r.status_code == 401, (method, path, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
    with _client(api) as c:
        listed = c.get("/profiles").json()
        assert [p["name"] for p in listed] == [name] and listed[0]["open"] is None

        started = c.post(f"/profiles/{name}/start", json={"timeout": 600})
        assert started.status_code == 200, started.text
        ws = started.json()["ws_endpoint"]
        assert ws.startswith("ws://127.0.0.1:")
        # CDP answers on loopback; the tool connects and writes
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(ws)
            page = browser.contexts[0].new_page()
            page.goto(f"{site.url}/storage?write=api-value")
            page.wait_for_selector("#status:text('ready')")
            browser.close()

        shown = c.get(f"/profiles/{name}").json()
        assert shown["open"]["ws_endpoint"] == ws
        assert shown["lease_holder"] == started.json()["holder"]
        busy = c.post(f"/profiles/{name}/start")
        assert busy.status_code == 409 and "already open" in busy.json()["detail"]

        stopped = c.post(f"/profiles/{name}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["outcome"] == "saved" and stopped.json()["saved_version"] == 1
        state = StateStore().load(name)
        assert state is not None
        assert {c["value"] for c in state.storage["cookies"] if c["name"] == "fw_js"} == {
            "api-value"
        }
        assert c.get(f"/profiles/{name}").json()["lease_holder"] is None

        assert c.post(f"/profiles/{name}/stop").status_code == 404
        assert c.post("/profiles/ghost/start").status_code == 404
        bad = c.post("/profiles/a..b/start")
        assert bad.status_code == 422 and "'..'" in bad.json()["detail"]
        assert c.post(f"/profiles/{name}/start", json={"port": 80}).status_code == 422
        assert c.get("/runs/00000000-0000-0000-0000-000000000000").status_code == 404
        unknown = c.post("/runs", json={"command": "nope", "profiles": [name]})
        assert unknown.status_code == 404 and "unknown command 'nope'" in unknown.json()["detail"]


def test_runs_go_through_the_run_command_deployment(
    api: str, make_profile, site, worker, tmp_path: Path
) -> None:
    from fleetwright.commands import load_commands

    load_commands()
    name = make_profile("api-runner")
    worker("run-command")
    with _client(api) as c:
        r = c.post(
            "/runs", json={"command": "demo", "profiles": [name], "params": {"base_url": site.url}}
        )
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        deadline = time.monotonic() + 180
        run = c.get(f"/runs/{run_id}").json()
        while (
            run["state"] not in ("COMPLETED", "FAILED", "CRASHED") and time.monotonic() < deadline
        ):
            time.sleep(1)
            run = c.get(f"/runs/{run_id}").json()
    assert run["state"] == "COMPLETED", run
    assert run["ok"] == 1 and run["failed"] == 0
    assert run["sessions"][0]["profile"] == name


def test_openapi_conformance(api: str) -> None:
    """Every operation of the OpenAPI document, fed generated input (10 examples each, fixed
    seed): no server error, and every answer matches the document (status, type, schema)."""
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /profiles/{name}/start",
        "POST /profiles/{name}/stop",
        "GET /profiles",
        "GET /profiles/{name}",
        "POST /runs",
        "GET /runs/{run_id}",
    }
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=120,  # a start launches a browser: slow on a loaded machine
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )
            calls.append(response.status_code)

        check()
    assert len(calls) >= len(operations)


def test_serve_refuses_bad_input_in_one_line(home: Path) -> None:
    for args, env, message in [
        (["--host", "localhost-ish"], {}, "is not an IP address"),
        (["--port", "70000"], {}, "outside 1–65535"),
        ([], {"FLEETWRIGHT_API_TOKEN": "short"}, "shorter than 16 characters"),
    ]:
        proc = subprocess.run(
            [*FLEETWRIGHT, "api", "serve", *args],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr

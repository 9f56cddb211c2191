"""`fleetwright up` as a user runs it: its Prefect server asks for a credential that `up`
generates into the home (0600, never printed in full, never on a command line), the CLI in
another shell and the worker `up` starts use it without being told, and the home's files are
private — including those an earlier version left readable."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.up import UpProcess, api_call, console_script, user_env

pytestmark = [pytest.mark.slow]

UP_TIMEOUT_S = 420


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def test_up_serves_an_authenticated_api_and_keeps_its_home_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    leftover = home / "old-export.json"  # what an earlier version left readable to all
    leftover.write_text("{}")
    leftover.chmod(0o644)
    port = free_port()
    env = user_env(home, port)
    argv = [*console_script(), "up", "--no-demo", "--no-warm-worker", "--port", str(port)]
    with UpProcess(argv, env, umask=0o022) as up:
        up.wait_up(UP_TIMEOUT_S)
        deadline = time.monotonic() + UP_TIMEOUT_S
        credential_file = home / "prefect-api-auth"
        auth = credential_file.read_text().strip()
        assert auth.startswith("fleetwright:") and len(auth) > 40
        api = f"http://127.0.0.1:{port}/api"

        # 401 without it, or with anything else; /health stays open
        assert httpx.post(f"{api}/deployments/filter", json={}, timeout=30).status_code == 401
        wrong = httpx.post(f"{api}/deployments/filter", json={}, headers=_basic("a:b"), timeout=30)
        assert wrong.status_code == 401
        assert httpx.get(f"{api}/health", timeout=30).status_code == 200
        found = api_call("POST", f"{api}/deployments/filter", json={}, headers=_basic(auth))

        # the CLI in another shell finds the credential in the home by itself
        status = subprocess.run(
            [*console_script(), "status", "--json"],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["prefect_api"] == api and info["prefect_auth"] == "given, accepted", info

        # a deployment run on the worker `up` started: the worker and the flow run's own
        # process report to the authenticated API with the credential from their environment
        check = next(d for d in found if d["name"] == "check-proxies")
        run = api_call(
            "POST",
            f"{api}/deployments/{check['id']}/create_flow_run",
            json={},
            headers=_basic(auth),
        )
        state = None
        while time.monotonic() < deadline:
            got = api_call("GET", f"{api}/flow_runs/{run['id']}", headers=_basic(auth))
            state = (got.get("state") or {}).get("type")
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", f"check-proxies ended {state}:\n" + up.output()

        # no child has it on its command line; the server and the worker have it in their
        # environment (that is how they get it)
        children = psutil.Process(up.proc.pid).children(recursive=True)
        up.take_snapshot()
        password = auth.partition(":")[2]
        for child in children:
            with contextlib.suppress(psutil.Error):
                assert password not in " ".join(child.cmdline()), child.cmdline()[:4]
        names = " ".join(" ".join(c.cmdline()[:5]) for c in children if c.is_running())
        assert "server" in names and "worker" in names, names

        # the home and what is in it: private, the leftover tightened
        assert _mode(home) == 0o700
        assert _mode(credential_file) == 0o600
        assert _mode(leftover) == 0o600
        prefect_db = list((home / "prefect").glob("prefect.db*"))
        catalogue_db = list(home.glob("catalogue.db*"))
        assert prefect_db and catalogue_db
        logs = [home / "logs" / "worker.log", home / "prefect" / "server.log"]
        for path in [*prefect_db, *catalogue_db, *logs]:
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        opened = [p for p in home.rglob("*") if _mode(p) & 0o077]
        assert opened == [], [(str(p), oct(_mode(p))) for p in opened]

        assert up.interrupt() == 0, up.output()
    assert up.stopped_cleanly() == []
    output = "\n".join(up.lines)
    assert password not in output, "the credential was printed"
    assert "prefect-api-auth" in output and "fleetwright:" in output
    # a user's other shell is told what it needs to reach this stack (non-default home, port)
    assert f"export FLEETWRIGHT_HOME={home} FLEETWRIGHT_PREFECT_PORT={port}" in output, output


@pytest.mark.prefect
def test_up_refuses_a_server_without_authentication_on_its_port(tmp_path: Path) -> None:
    """A Prefect server left on the port that answers anyone (an older `up`, or another
    tool's): `up` does not use it and says what to do, in one line."""
    from fleetwright.embedded import LocalPrefectServer

    open_server = LocalPrefectServer(prefect_home=tmp_path / "other-prefect")
    open_server.start()
    try:
        done = subprocess.run(
            [*console_script(), "up", "--no-demo", "--port", str(open_server.port)],
            env=user_env(tmp_path / "home", open_server.port),
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        open_server.stop()
    assert done.returncode != 0
    assert "without authentication is running" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr

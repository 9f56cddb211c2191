"""`fleetwright up` as a user runs it from the README: the embedded stack (Prefect server on
SQLite, deployments, workers, demo site, demo run) comes up in a fresh home, and Ctrl-C — pressed
twice, the second while it is stopping — leaves none of the processes it started behind."""

from __future__ import annotations

import base64
import contextlib
import os
import time
from pathlib import Path

import httpx
import pytest

from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.up import UpProcess, api_call, console_script, user_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        os.environ.get("FLEETWRIGHT_TEST_UP") != "1",
        reason="opt-in (FLEETWRIGHT_TEST_UP=1): in one full-suite run `up` had not exited 180 s "
        "after Ctrl-C; its signal handling was reworked since (95c57db) and it has passed every "
        "run after that, but it stays out of CI until more full-suite runs back that up",
    ),
]

UP_TIMEOUT_S = 420


def test_up_comes_up_and_a_double_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, demo_port, metrics_port = free_port(), free_port(), free_port()
    env = user_env(
        tmp_path / "home",
        port,
        FLEETWRIGHT_DEMO_SITE_PORT=str(demo_port),
        FLEETWRIGHT_METRICS_PORT=str(metrics_port),
    )
    with UpProcess([*console_script(), "up"], env) as up:
        up.wait_up(UP_TIMEOUT_S)
        deadline = time.monotonic() + UP_TIMEOUT_S
        lines = up.lines
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{demo_port}/login", timeout=10).status_code == 200
        started = [line for line in lines if "demo run started: " in line]
        assert started, "\n".join(lines)
        run_id = started[0].rsplit("/", 1)[-1].strip()
        state = None
        auth = (tmp_path / "home" / "prefect-api-auth").read_text().strip()  # the API asks
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
        while time.monotonic() < deadline:  # the process worker picks it up and runs it
            run = api_call(
                "GET", f"http://127.0.0.1:{port}/api/flow_runs/{run_id}", headers=headers
            )
            state = (run.get("state") or {}).get("type")
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", f"demo run {run_id} ended {state}:\n" + "\n".join(lines)
        # the demo run's sessions ran in a flow-run process; the host's endpoint counts them
        demo = 'fleetwright_sessions_total{command="demo"'
        metrics, ok = "", []
        for _ in range(30):  # a loaded machine may answer the first scrape late
            with contextlib.suppress(httpx.HTTPError):
                metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
            ok = [m for m in metrics.splitlines() if m.startswith(demo) and 'status="ok"' in m]
            if ok:
                break
            time.sleep(2)
        assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 1, metrics[-2000:]
        names = " | ".join(s[2] for s in up.take_snapshot())
        assert "server" in names and "worker" in names, names
        # Ctrl-C goes to the whole foreground group; the second one lands while it stops
        assert up.interrupt(times=2) == 0, up.output()
    left = up.stopped_cleanly()
    assert left == [], f"left running after `fleetwright up` stopped: {left}"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)

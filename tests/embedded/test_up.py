"""`fleetwright up` as a user runs it from the README: the embedded stack (Prefect server on
SQLite, deployments, workers, demo site, demo run) comes up in a fresh home, and Ctrl-C — pressed
twice, the second while it is stopping — leaves none of the processes it started behind."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from fleetwright.embedded.prefect_server import free_port

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


def _fleetwright() -> list[str]:
    """The console script of this environment (what the README's set-up installs)."""
    script = Path(sys.executable).parent / "fleetwright"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fleetwright.cli import main; main()"]


def _clean_env(
    home: Path, port: int, demo_port: int, metrics_port: int | None = None
) -> dict[str, str]:
    """The user's environment: none of the test session's Prefect or Fleetwright settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEETWRIGHT_"))}
    env.update(
        FLEETWRIGHT_HOME=str(home),
        FLEETWRIGHT_PREFECT_PORT=str(port),
        FLEETWRIGHT_DEMO_SITE_PORT=str(demo_port),
        FLEETWRIGHT_METRICS_PORT=str(metrics_port or free_port()),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        COLUMNS="200",  # rich folds long lines (the run's URL) at 80 columns in a pipe
    )
    chromium = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE")
    if chromium:
        env["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] = chromium
    return env


def _alive(snapshot: list[tuple[int, float, str]]) -> list[str]:
    """The processes of `snapshot` still running (same pid and start time, not a zombie)."""
    left = []
    for pid, created, name in snapshot:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {name}")
        except psutil.NoSuchProcess:
            continue
    return left


def test_up_comes_up_and_a_double_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, demo_port, metrics_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [*_fleetwright(), "up"],
        env=_clean_env(tmp_path / "home", port, demo_port, metrics_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    snapshot: list[tuple[int, float, str]] = []
    try:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while not any("Fleetwright is up." in line for line in lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("`fleetwright up` did not come up:\n" + "\n".join(lines[-40:]))
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{demo_port}/login", timeout=10).status_code == 200
        started = [line for line in lines if "demo run started: " in line]
        assert started, "\n".join(lines)
        run_id = started[0].rsplit("/", 1)[-1].strip()
        state = None
        auth = (tmp_path / "home" / "prefect-api-auth").read_text().strip()  # the API asks
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
        while time.monotonic() < deadline:  # the process worker picks it up and runs it
            run = httpx.get(
                f"http://127.0.0.1:{port}/api/flow_runs/{run_id}", headers=headers, timeout=10
            )
            state = (run.json().get("state") or {}).get("type")
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
        snapshot = [
            (p.pid, p.create_time(), " ".join(p.cmdline()[:4]))
            for p in psutil.Process(proc.pid).children(recursive=True)
        ]
        names = " | ".join(s[2] for s in snapshot)
        assert "server" in names and "worker" in names, names
        # Ctrl-C goes to the whole foreground group; the second one lands while it stops
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(
                "`fleetwright up` still running 180 s after Ctrl-C; still alive: "
                f"{_alive(snapshot)}\n" + "\n".join(lines[-40:])
            )
        assert code == 0, "\n".join(lines[-40:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            # what `up` started lives in process groups of its own: a test that had to kill
            # `up` must not leave its server and workers behind
            for pid, created, _name in snapshot:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if psutil.Process(pid).create_time() == created:
                        os.killpg(os.getpgid(pid), signal.SIGKILL)
    reader.join(timeout=10)
    assert any("Stopped everything" in line for line in lines), "\n".join(lines[-40:])
    deadline = time.monotonic() + 15
    while _alive(snapshot) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _alive(snapshot)
    assert left == [], f"left running after `fleetwright up` stopped: {left}"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)

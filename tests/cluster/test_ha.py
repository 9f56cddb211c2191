"""scripts/ha.sh: the highly available Prefect on one machine, started, failed over and stopped.

Two API servers (no services) and one services process on a Postgres database of their own,
Redis messaging, nginx in front. A flow run through the balancer loses one API server mid-way
and completes through the other; the services process records its task runs from the events
the API servers put on Redis; `down` leaves no process behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ha.sh"
FLOW = Path(__file__).with_name("ha_flow.py")
PG_ADMIN_URL = os.environ.get(
    "FLEETWRIGHT_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FLEETWRIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its Prefect settings (the test harness sets some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(extra)
    return env


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Stack:
    def __init__(self, tmp: Path) -> None:
        pg = make_url(PG_ADMIN_URL)
        redis = make_url(REDIS_URL)
        self.dir = tmp / "ha"
        self.lb = _free_port()
        self.apis = (_free_port(), _free_port())
        self.database = f"fw_ha_{uuid.uuid4().hex[:10]}"
        self.env = _clean_env(
            FLEETWRIGHT_HA_DIR=str(self.dir),
            FLEETWRIGHT_HA_PORT=str(self.lb),
            FLEETWRIGHT_HA_API_PORTS=f"{self.apis[0]} {self.apis[1]}",
            FLEETWRIGHT_HA_PG=f"postgresql://{pg.username}@{pg.host}:{pg.port or 5432}",
            FLEETWRIGHT_HA_DATABASE=self.database,
            FLEETWRIGHT_HA_REDIS=f"{redis.host}:{redis.port or 6379}",
            FLEETWRIGHT_HA_REDIS_DB="10",
        )
        self.api_url = f"http://127.0.0.1:{self.lb}/api"

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        run = self.dir / "run"
        return {p.stem: int(p.read_text()) for p in run.glob("*.pid") if p.stem != "nginx.master"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if shutil.which("nginx") is None and shutil.which("apt-get") is None:
        pytest.skip("needs nginx (Debian package nginx), and apt-get is not here to install it")
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.run("down", "--purge", timeout=300)


def _post(url: str, body: dict[str, Any]) -> Any:
    response = httpx.post(url, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_ha_stack_survives_an_api_server_and_stops_clean(stack: Stack, tmp_path: Path) -> None:
    up = stack.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = stack.pids()
    assert set(pids) == {"lb", "services", "api-1", "api-2"}
    processes = [p for pid in pids.values() for p in _tree(pid)]
    assert len(processes) >= 4
    status = stack.run("status", timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr

    # The balancer serves the UI as well as the API.
    assert httpx.get(f"http://127.0.0.1:{stack.lb}/", timeout=30).status_code == 200
    version = httpx.get(f"{stack.api_url}/admin/version", timeout=30)
    assert version.status_code == 200

    gate = tmp_path / "gate"
    flow = subprocess.Popen(
        [sys.executable, str(FLOW), str(gate)],
        env=_clean_env(
            PREFECT_API_URL=stack.api_url,
            PREFECT_HOME=str(tmp_path / "client-home"),
            PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.5",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        id_file = Path(str(gate) + ".id")
        deadline = time.monotonic() + 300
        while not id_file.exists():
            assert flow.poll() is None, flow.communicate()[0]
            assert time.monotonic() < deadline, "the flow did not start within 300 s"
            time.sleep(0.5)
        run_id = id_file.read_text()

        killed = stack.run("kill-api", "1", timeout=120)
        assert killed.returncode == 0, killed.stdout + killed.stderr
        assert not _healthy(stack.apis[0])
        assert _healthy(stack.apis[1])
        # Round robin would send every other request to the dead server: all still answer.
        for _ in range(10):
            assert _healthy(stack.lb)
            found = _post(f"{stack.api_url}/flow_runs/filter", {"limit": 5})
            assert [r["id"] for r in found] == [run_id]

        gate.touch()
        out, _ = flow.communicate(timeout=600)
        assert flow.returncode == 0, out
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.wait()

    run = httpx.get(f"{stack.api_url}/flow_runs/{run_id}", timeout=30).json()
    assert run["state"]["type"] == "COMPLETED"
    # Task run states travel as events: API server → Redis → the services process, which
    # records them. All five are there, completed, though one API server died in between.
    deadline = time.monotonic() + 180
    while True:
        tasks = _post(
            f"{stack.api_url}/task_runs/filter",
            {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 50},
        )
        states = sorted((t["state"] or {}).get("type") for t in tasks)
        if states == ["COMPLETED"] * 5 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states == ["COMPLETED"] * 5, states

    down = stack.run("down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [(p.pid, p.cmdline()) for p in left]
    assert not _healthy(stack.lb)
    assert not (stack.dir / "run" / "lb.pid").exists()

"""Fleet throughput through the path users take: `fleetwright run bench-login --tag T -c 8
--wait` as a whole process (the CLI submits a flow run of the `run-command` deployment from
prefect.yaml; a process worker polling every 2 s starts it in a subprocess; the CLI follows its
events and prints the summary), beside the bare script at concurrency 8 on the 150 ms site.

The rounds run back to back on the same profiles, so runs, run rows and state versions pile up
from round to round; each round records how many there were before it (`accumulated`), so a
falling throughput can be read against them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.cli_bench import _cli_env
from bench.fleet_common import per_minute
from bench.harness import Bench
from bench.stats import Figure, ab_ratio
from bench.throughput_bench import bare_script
from bench.workload import load_bench_command

__all__ = ["FIGURES", "run"]

FIGURES = ("throughput_deployment_ratio_c8_150ms",)
_TAG = "bench-deploy"


def _tag_profiles(names: list[str]) -> None:
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Profile

    with session_scope() as s:
        for row in s.scalars(select(Profile).where(Profile.name.in_(names))):
            row.set_tags([_TAG])


def _accumulated() -> dict[str, int]:
    """Catalogue rows that pile up run after run."""
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import ProfileState, Run

    with session_scope() as s:
        return {
            "run_rows": int(s.scalar(select(func.count()).select_from(Run)) or 0),
            "state_versions": int(s.scalar(select(func.count()).select_from(ProfileState)) or 0),
        }


async def _prefect_counts() -> dict[str, int]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client._client.post("/task_runs/count", json={})
        response.raise_for_status()
        return {"flow_runs": await client.count_flow_runs(), "task_runs": int(response.json())}


def _cli_round(argv: list[str], sessions: int) -> float:
    """Seconds from starting the CLI to its exit; every session must have ended ok."""
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, env=_cli_env(), capture_output=True, timeout=3600, check=False, text=True
    )
    seconds = time.perf_counter() - t0
    try:
        summary = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError:
        summary = {}
    if done.returncode != 0 or summary.get("ok") != sessions:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(
            f"fleetwright run --wait exited {done.returncode}, "
            f"{summary.get('ok')} of {sessions} ok: {tail}"
        )
    return seconds


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.embedded.stack import deploy_project, start_worker, stop_process

    bench.prefect()
    n = bench.sizes.deployment_sessions
    load_bench_command(bench.root / "commands")
    profiles = bench.profiles(n, prefix="deploy")
    await asyncio.to_thread(_tag_profiles, profiles)
    url = bench.site(150).url
    fw = str(Path(sys.executable).with_name("fleetwright"))
    argv = [fw, "run", "bench-login", "--tag", _TAG, "-c", "8", "--wait", "--json"]
    argv += ["-p", f"base_url={url}"]
    await asyncio.to_thread(deploy_project, {}, names=["run-command"])
    worker = start_worker({}, log_path=bench.root / "process-worker.log")
    fleet: list[float] = []
    bare: list[float] = []
    accumulated: list[dict[str, Any]] = []
    try:
        for r in range(bench.sizes.deployment_rounds):
            before = {"round": r + 1, **_accumulated(), **await _prefect_counts()}
            sides = ("fleet", "bare") if r % 2 == 0 else ("bare", "fleet")
            for side in sides:
                if side == "fleet":
                    seconds = await asyncio.to_thread(_cli_round, argv, n)
                    fleet.append(per_minute(n, seconds))
                else:
                    bare.append(per_minute(n, await bare_script(profiles, 8, url)))
            rates = {"fleetwright_per_min": round(fleet[-1], 1), "bare_per_min": round(bare[-1], 1)}
            accumulated.append(before | rates)
    finally:
        await asyncio.to_thread(stop_process, worker)
    return {
        "throughput_deployment_ratio_c8_150ms": ab_ratio(
            fleet,
            bare,
            unit="ratio",
            a_name="fleetwright",
            b_name="bare playwright script + asyncio semaphore",
            a_unit="sessions/min",
            concurrency=8,
            delay_ms=150,
            sessions_per_round=n,
            accumulated=accumulated,
            path="fleetwright run --tag --wait (whole process) → run-command deployment → "
            "process worker (query every 2 s) → flow run subprocess → sessions",
        )
    }

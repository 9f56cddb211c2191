"""Trigger → first page action: the warm path (a warm worker, `deployments.warm_worker`, that
keeps a browser pool open; sessions submitted as run-profile-session task runs, as
`fleetwright run --now` does) beside the process-worker path (a `run-command` deployment from
prefect.yaml on a process work pool, PREFECT_WORKER_QUERY_SECONDS=2, as `fleetwright up` runs it).

"First page action" is the moment the session's first request reaches the bench site.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import Bench
from bench.probe import ProbeSite
from bench.stats import Figure, summary
from bench.workload import load_bench_command
from fleetwright.embedded.stack import deploy_project, start_worker, stop_process

__all__ = ["FIGURES", "run"]

FIGURES = ("warm_trigger_to_action_ms", "process_worker_trigger_to_action_ms")
_WAIT = timedelta(seconds=120)
_TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


async def _warm(bench: Bench, site: ProbeSite, profiles: list[str]) -> Figure:
    from fleetwright.fleet.warm import await_warm_worker, session_result
    from fleetwright.tasks.sessions import run_profile_session

    command = load_bench_command(bench.root / "commands")
    worker = bench.start_warm_worker()
    try:
        await await_warm_worker(timeout=timedelta(seconds=90))
        action_ms: list[float] = []
        result_ms: list[float] = []
        for i in range(bench.sizes.warm_n + 1):  # the first one warms the worker's browser
            tag = uuid.uuid4().hex
            t0 = time.perf_counter()
            future: Any = await asyncio.to_thread(
                run_profile_session.apply_async,
                args=(profiles[i % len(profiles)], command),
                kwargs={
                    "params": {"base_url": site.url, "tag": tag},
                    "fleet_run_id": f"bench-warm-{bench.run_id}",
                },
            )
            result = await session_result(future)
            done = time.perf_counter()
            if result["status"] != "ok":
                raise RuntimeError(f"warm session ended {result['status']}: {result.get('error')}")
            arrived = await site.arrival(tag, timeout=timedelta(0))
            if i:
                action_ms.append((arrived - t0) * 1000)
                result_ms.append((done - t0) * 1000)
    finally:
        await asyncio.to_thread(stop_process, worker)
    fig = summary(action_ms, "ms", what="apply_async → first request at the site (warm worker)")
    fig["result_back_ms"] = summary(result_ms, "ms")
    fig["path"] = "deployments.warm_worker + run_profile_session.apply_async"
    return fig


async def _flow_run_state(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT.total_seconds()
        while loop.time() < deadline:
            flow_run = await client.read_flow_run(flow_run_id)
            state = flow_run.state.type.value if flow_run.state else "PENDING"
            if state in _TERMINAL:
                return state
            await asyncio.sleep(0.25)
    raise TimeoutError(f"flow run {flow_run_id} did not finish within {_WAIT}")


async def _process(bench: Bench, site: ProbeSite, profiles: list[str]) -> Figure:
    from fleetwright.fleet.deployments import asubmit_deployment

    await asyncio.to_thread(deploy_project, {}, names=["run-command"])
    worker = start_worker({}, log_path=bench.root / "process-worker.log")
    try:
        action_ms: list[float] = []
        done_ms: list[float] = []
        for i in range(bench.sizes.process_n):
            tag = uuid.uuid4().hex
            t0 = time.perf_counter()
            flow_run = await asubmit_deployment(
                {
                    "command": "bench-login",
                    "profiles": [profiles[i % len(profiles)]],
                    "tags": [],
                    "params": {"base_url": site.url, "tag": tag},
                    "concurrency": 1,
                }
            )
            state = await _flow_run_state(flow_run.id)
            if state != "COMPLETED":
                raise RuntimeError(f"run-command flow run ended {state}")
            arrived = await site.arrival(tag, timeout=timedelta(0))
            action_ms.append((arrived - t0) * 1000)
            done_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await asyncio.to_thread(stop_process, worker)
    fig = summary(
        action_ms, "ms", what="create flow run → first request at the site (process worker)"
    )
    fig["flow_run_done_ms"] = summary(done_ms, "ms")
    fig["path"] = "prefect.yaml run-command deployment, process work pool, query every 2 s"
    return fig


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    profiles = bench.profiles(4, prefix="trig")
    site = ProbeSite().start()
    figures: dict[str, Figure] = {}
    try:
        figures["warm_trigger_to_action_ms"] = await _warm(bench, site, profiles)
        process = await _process(bench, site, profiles)
        figures["process_worker_trigger_to_action_ms"] = process
        figures["warm_trigger_to_action_ms"]["baseline"] = {
            k: process[k] for k in ("median", "min", "max", "n", "unit")
        } | {"name": "process worker (process_worker_trigger_to_action_ms)"}
    finally:
        site.stop()
    return figures

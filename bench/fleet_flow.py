"""A fleet of Fleetwright sessions on a pool the bench keeps open: one `run-profile-session`
task run per profile (the same task the run-command flow and warm workers run), bounded
concurrency. Used where the bench needs the pool between runs (memory, lease options)."""

from __future__ import annotations

import asyncio
import time

from prefect import flow

from bench.workload import FleetSession
from fleetwright.tasks.sessions import run_profile_session, use_engine

__all__ = ["bind", "fleet_flow"]

_runner: FleetSession | None = None


def bind(runner: FleetSession) -> None:
    """The runner whose engine (pool, relays) the tasks use; live objects stay out of the
    flow's parameters."""
    global _runner
    _runner = runner


@flow(name="bench-fleet", persist_result=False, validate_parameters=False)
async def fleet_flow(profiles: list[str], concurrency: int) -> float:
    """Run the bench command on every profile, `concurrency` at a time; seconds taken."""
    runner = _runner
    assert runner is not None, "bind() a FleetSession first"
    use_engine(runner.engine)
    base_url = runner.base_url
    sem = asyncio.Semaphore(concurrency)

    async def one(profile: str) -> None:
        async with sem:
            result = await run_profile_session(profile, runner.command, {"base_url": base_url})
            if result["status"] != "ok":
                raise RuntimeError(f"session on {profile} ended {result['status']}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in profiles))
    return time.perf_counter() - t0

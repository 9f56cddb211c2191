"""What Prometheus metrics cost: Fleetwright fleet throughput at concurrency 4 on the 0 ms site
with metrics on (every process writing to the host's metrics folder, as in production) ÷ the
same fleet with them off, in alternating rounds of the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from bench.fleet_common import alternate, per_minute
from bench.fleet_flow import bind, fleet_flow
from bench.harness import Bench
from bench.stats import Figure, ab_ratio
from bench.workload import FleetSession, load_bench_command
from fleetwright.browser import BrowserPool
from fleetwright.observability.metrics import reset_fleet_metrics
from fleetwright.settings import get_settings

__all__ = ["CONCURRENCY", "FIGURES", "run", "use_metrics"]

FIGURES = ("metrics_overhead_ratio",)
CONCURRENCY = 4


@contextmanager
def use_metrics(on: bool) -> Iterator[None]:
    """Sessions in this block record metrics (`on`) or not; the setting is restored after."""
    settings = get_settings()
    before = settings.metrics
    settings.metrics = on
    reset_fleet_metrics()
    try:
        yield
    finally:
        settings.metrics = before
        reset_fleet_metrics()


def _recording_cost_us(sessions: int, pool: BrowserPool) -> float:
    """CPU cost of what the metrics observer records for one session, through the engine's
    observer calls (start: lease wait and active gauge; four phase ends, the launch one
    sampling the browser pool; the outcome counter, active gauge and pool sample), in µs:
    the part of the ratio that is not machine noise."""
    from fleetwright.observability.sessions import observe_metrics
    from fleetwright.sessions import SessionResult
    from fleetwright.sessions.observers import SessionObservers, SessionStart

    start = SessionStart(profile="bench", command="bench", run_id=1, flow_run_id=None,
                         task_run_id=None, attempt=1, proxy=None, lease_wait=0.01,
                         pool=pool)  # fmt: skip
    result = SessionResult(profile="bench", status="ok")

    async def sessions_(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            observed = SessionObservers(start, factories=(observe_metrics,))
            for phase in ("launch", "steps", "save", "record"):
                observed.phase(phase)
            await observed.finished(result)
        return time.perf_counter() - t0

    with use_metrics(True):
        asyncio.run(sessions_(50))  # the files created, the label children made
        return asyncio.run(sessions_(sessions)) * 1e6 / sessions


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    n = bench.sizes.lease_sessions
    profiles = bench.profiles(n, prefix="metrics")
    load_bench_command(bench.root / "commands")
    async with BrowserPool(browsers=1) as pool:
        recording_us = await asyncio.to_thread(_recording_cost_us, 2000 if n > 10 else 200, pool)
        runner = FleetSession(pool, bench.site(0).url)
        bind(runner)
        try:
            await fleet_flow(profiles, CONCURRENCY)  # warm-up and first saved states

            def fleet(on: bool) -> Callable[[], Awaitable[float]]:
                async def side() -> float:
                    with use_metrics(on):
                        return per_minute(n, await fleet_flow(profiles, CONCURRENCY))

                return side

            sides = await alternate(bench.sizes.ab_rounds, {"on": fleet(True), "off": fleet(False)})
        finally:
            await runner.close()
    folder = get_settings().metrics_dir
    return {
        "metrics_overhead_ratio": ab_ratio(
            sides["on"],
            sides["off"],
            unit="ratio",
            a_name="metrics_on",
            b_name="the same Fleetwright fleet with FLEETWRIGHT_METRICS=false",
            a_unit="sessions/min",
            concurrency=CONCURRENCY,
            delay_ms=0,
            sessions_per_round=n,
            metrics_dir=str(folder),
            metrics_files=len(list(folder.glob("*.db"))) if folder.exists() else 0,
            recording_us_per_session=round(recording_us, 1),
            path=f"run-profile-session task per session → {runner.path}",
        )
    }

"""Memory: peak RSS per concurrent session, and RSS across a long fleet run with browsers
recycling. RSS is summed over this process and its children (Playwright's driver, Chromium),
leaving out the Prefect server the bench started."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Iterator
from types import TracebackType

import psutil  # type: ignore[import-untyped]

from bench.fleet_flow import bind, fleet_flow
from bench.harness import Bench
from bench.stats import Figure
from bench.throughput_bench import fleetwright_run
from bench.workload import FleetSession, load_bench_command
from fleetwright.browser import BrowserPool
from fleetwright.settings import get_settings, reset_settings

__all__ = ["FIGURES", "RssSampler", "rss_mb", "run"]

FIGURES = ("memory_mb_per_session",)
MB = 1024 * 1024


def tree_mb(exclude: set[int]) -> tuple[float, float]:
    """(RSS, PSS) in MB of this process and its descendants, minus the subtrees rooted at
    `exclude`. RSS counts pages shared between Chromium's processes once per process; PSS
    splits them, so it is the fairer sum."""
    me = psutil.Process()
    skip: set[int] = set()
    for pid in exclude:
        try:
            proc = psutil.Process(pid)
            skip.add(pid)
            skip.update(c.pid for c in proc.children(recursive=True))
        except psutil.Error:
            continue
    rss = pss = 0
    for proc in [me, *me.children(recursive=True)]:
        if proc.pid in skip:
            continue
        try:
            info = proc.memory_full_info()
        except psutil.Error:  # exited meanwhile
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / MB, pss / MB


def rss_mb(exclude: set[int]) -> float:
    """RSS in MB of this process and its descendants (see tree_mb)."""
    return tree_mb(exclude)[0]


class RssSampler:
    """Samples tree_mb() every `interval` seconds in a thread; keeps (t, RSS, PSS)."""

    def __init__(self, exclude: set[int], *, interval: float = 0.1) -> None:
        self.exclude, self.interval = exclude, interval
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - t0, *tree_mb(self.exclude)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(s[1] for s in self.samples)

    @property
    def peak_pss(self) -> float:
        return max(s[2] for s in self.samples)


def _decile(samples: list[tuple[float, float, float]], index: int) -> float:
    values = [s[1] for s in samples]
    size = max(1, len(values) // 10)
    return statistics.median(values[index * size : (index + 1) * size] or values[-size:])


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    exclude = {p for p in (bench.prefect_server_pid,) if p is not None}
    c = bench.sizes.memory_concurrency
    long_run = bench.sizes.long_run
    profiles = bench.profiles(max(c * 4, 8), prefix="mem")
    load_bench_command(bench.root / "commands")
    async with BrowserPool(browsers=1) as pool:  # no recycling within these runs
        runner = FleetSession(pool, bench.site(0).url)
        bind(runner)
        try:
            await fleet_flow(profiles[:c], c)  # browser up, Prefect warm
            idle_samples = [tree_mb(exclude) for _ in range(5)]
            idle = statistics.median(s[0] for s in idle_samples)
            idle_pss = statistics.median(s[1] for s in idle_samples)
            peaks: list[float] = []
            peaks_pss: list[float] = []
            for _ in range(bench.sizes.memory_rounds):
                with RssSampler(exclude, interval=0.05) as sampler:
                    await fleet_flow(profiles, c)
                peaks.append((sampler.peak - idle) / c)
                peaks_pss.append((sampler.peak_pss - idle_pss) / c)
        finally:
            await runner.close()
    # the long run: the run-command flow itself, its pool recycling browsers as configured
    recycle_after = get_settings().contexts_per_browser
    if bench.mode == "smoke":
        recycle_after = max(2, long_run // 3)
    names = bench.profiles(long_run, prefix="long")
    with _contexts_per_browser(recycle_after), RssSampler(exclude, interval=0.25) as sampler:
        seconds = await fleetwright_run(names, c, bench.site(0).url)
    samples = sampler.samples
    early, late = _decile(samples, 1), _decile(samples, 9)
    return {
        "memory_mb_per_session": {
            "median": round(statistics.median(peaks), 2),
            "min": round(min(peaks), 2),
            "max": round(max(peaks), 2),
            "n": len(peaks),
            "unit": "MB RSS per concurrent session",
            "what": f"(peak RSS during a fleet at concurrency {c} − idle RSS) ÷ {c}",
            "concurrency": c,
            "idle_rss_mb": round(idle, 1),
            "pss": {
                "median": round(statistics.median(peaks_pss), 2),
                "min": round(min(peaks_pss), 2),
                "max": round(max(peaks_pss), 2),
                "idle_pss_mb": round(idle_pss, 1),
            },
            "long_run": {
                "sessions": long_run,
                "concurrency": c,
                "seconds": round(seconds, 1),
                "contexts_per_browser": recycle_after,
                "peak_rss_mb": round(sampler.peak, 1),
                "peak_pss_mb": round(sampler.peak_pss, 1),
                "rss_second_decile_mb": round(early, 1),
                "rss_last_decile_mb": round(late, 1),
                "growth_mb": round(late - early, 1),
                "path": "run-command flow (in process)",
            },
            "path": f"run-profile-session task per session → {runner.path}",
        }
    }


@contextlib.contextmanager
def _contexts_per_browser(count: int) -> Iterator[None]:
    """Recycle shared browsers after `count` contexts for the duration (settings via env)."""
    old = os.environ.get("FLEETWRIGHT_CONTEXTS_PER_BROWSER")
    os.environ["FLEETWRIGHT_CONTEXTS_PER_BROWSER"] = str(count)
    reset_settings()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FLEETWRIGHT_CONTEXTS_PER_BROWSER", None)
        else:
            os.environ["FLEETWRIGHT_CONTEXTS_PER_BROWSER"] = old
        reset_settings()

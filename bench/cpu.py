"""CPU time of every process a fleet round involves, from the kernel's accounting (/proc through
psutil), split by process group:

- `bench`: the bench process itself (the client side: the flow engine and Prefect client for
  Fleetwright, the asyncio script for bare Playwright);
- `browser`: the bench process's other descendants (Playwright's driver and Chromium's
  processes) plus the CPU of those it has reaped (children_user/system: a driver and browser
  closed at the end of a round count there, with the renderers Chromium reaped before);
- `prefect_server`: the bench's Prefect server and its children;
- `postgres`: the backends connected to the bench's own databases (catalogue and Prefect), per
  backend; a backend that exits during a round takes its CPU with it (the postmaster, shared
  with other databases, reaps it), so this group can only undercount;
- `site`: the bench site's processes, the same work for both sides, reported and left out of
  the total.

Chromium forks its renderers from a zygote process, which reaps them. When a browser closes,
its zygote (and crashpad handlers) outlive it for a moment and are re-parented; under init,
their CPU — every renderer's — is lost to this accounting (measured: 430 of 1,117 ms per bare
session were seen). So the meter makes the bench process their child subreaper
(PR_SET_CHILD_SUBREAPER, Linux) and reaps those orphans itself before each sample: their CPU
then lands in the bench process's children_user/system, under `browser`.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from bench.harness import Bench

__all__ = ["GROUPS", "CpuMeter", "CpuSample"]

GROUPS = ("bench", "browser", "prefect_server", "postgres", "site")
COUNTED = ("bench", "browser", "prefect_server", "postgres")
#: names of Chromium's processes (psutil cuts them to 15 characters)
_CHROMIUM = ("chrom", "headless_shell")
_PR_SET_CHILD_SUBREAPER = 36
_ORPHAN_WAIT_S = 3.0


def _set_subreaper(on: bool) -> bool:
    """Make this process the reaper of its orphaned descendants (or stop); False where
    unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0


def _own(times: psutil._common.pcputimes) -> float:  # type: ignore[name-defined]
    return float(times.user + times.system)


def _all(times: psutil._common.pcputimes) -> float:  # type: ignore[name-defined]
    return float(times.user + times.system + times.children_user + times.children_system)


@dataclass
class CpuSample:
    """Cumulative CPU seconds per group at one moment, and per Postgres backend."""

    groups: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)

    def minus(self, before: CpuSample) -> dict[str, float]:
        """Milliseconds per group spent since `before` (and `total`, the counted groups)."""
        out = {g: (self.groups.get(g, 0.0) - before.groups.get(g, 0.0)) * 1000 for g in GROUPS}
        out["postgres"] = 1000 * sum(
            spent - before.backends.get(pid, 0.0) for pid, spent in self.backends.items()
        )
        out["total"] = sum(out[g] for g in COUNTED)
        return {k: round(v, 1) for k, v in out.items()}


class CpuMeter:
    """Samples the bench's processes; `sample()` before and after a round, then `minus`."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.me = psutil.Process()
        #: whether orphaned Chromium processes come back to this process to be reaped
        self.subreaper = _set_subreaper(True)
        #: how many it has reaped
        self.reaped = 0

    def close(self) -> None:
        """Reap what is left and stop being the subreaper (later groups start browsers of their
        own, which the meter does not follow)."""
        if self.subreaper:
            self._reap_orphans()
            _set_subreaper(False)
            self.subreaper = False

    def _reap_orphans(self) -> None:
        """Reap Chromium's processes re-parented to this one, waiting (up to a few seconds)
        for those of a closed browser that are still exiting. Only Chromium's: the bench's own
        children (server, site, proxies) are left to whoever started them."""
        deadline = time.monotonic() + _ORPHAN_WAIT_S
        while True:
            waiting = False
            for child in self.me.children():
                try:
                    if not child.name().startswith(_CHROMIUM):
                        continue
                    if child.status() != psutil.STATUS_ZOMBIE:
                        waiting = True  # an orphan still exiting: its browser has closed
                        continue
                except psutil.Error:
                    continue
                try:
                    os.waitpid(child.pid, 0)
                    self.reaped += 1
                except ChildProcessError:
                    pass
            if not waiting or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _roots(self) -> dict[int, str]:
        roots: dict[int, str] = {}
        pid = self.bench.prefect_server_pid
        if pid is not None:
            roots[pid] = "prefect_server"
        for site in self.bench.site_pids():
            roots[site] = "site"
        return roots

    def _backend_pids(self) -> list[int]:
        from sqlalchemy import create_engine, text

        from bench.harness import PG_ADMIN_URL

        engine = create_engine(PG_ADMIN_URL)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "select pid from pg_stat_activity where datname = any(:names) "
                        "and pid <> pg_backend_pid()"
                    ),
                    {"names": list(self.bench.databases)},
                ).all()
        finally:
            engine.dispose()
        return [int(r[0]) for r in rows]

    def sample(self) -> CpuSample:
        out = CpuSample(groups=dict.fromkeys(GROUPS, 0.0))
        if self.subreaper:
            self._reap_orphans()
        mine = self.me.cpu_times()
        out.groups["bench"] += _own(mine)
        out.groups["browser"] += float(mine.children_user + mine.children_system)
        roots = self._roots()
        for child in self.me.children(recursive=True):
            try:
                spent = _all(child.cpu_times())
                group = "browser"
                proc: psutil.Process | None = child
                while proc is not None and proc.pid != self.me.pid:
                    if proc.pid in roots:
                        group = roots[proc.pid]
                        break
                    proc = proc.parent()
            except psutil.Error:  # ended while we looked: its time is in its parent's
                continue
            out.groups[group] += spent
        for pid in self._backend_pids():
            try:
                out.backends[pid] = _own(psutil.Process(pid).cpu_times())
            except psutil.Error:
                continue
        return out

"""Throughput of one fleet on two worker hosts over one, with the CPU each session costs.

fleetwright.testing.hosts builds the central stack (HA Prefect, Redis, Postgres through a
forwarder, an S3 server, the demo site) and two hosts in network namespaces. The same fleet
(storage mode, the demo site's fast page, concurrency 4 per host) runs on host a alone, then
split in two halves on hosts a and b at once. Sessions per minute are counted from the first
session's start to the last one's end (catalogue run rows), so worker pick-up is left out.
Both hosts share this machine's cores: the ratio says what a second host adds when the CPU is
already the limit, and the CPU seconds per session say how much a host of its own would
need. CPU per session is given twice: the hosts' own processes (worker, flow runs, Chromium;
sampled) and the whole machine's busy time, which also counts the central stack and anything
else running.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import psutil
from sqlalchemy import select

from bench.harness import Bench
from bench.stats import Figure, ab_ratio

__all__ = ["FIGURES", "run"]

FIGURES = ("throughput_2hosts_over_1host",)

VISIT = """\
name: bench-host-visit
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/"
  - extract: {id: links, selector: "#links", kind: text}
"""


class HostCpu:
    """CPU seconds used by every process in the hosts' namespaces (worker, flow runs,
    Chromium), sampled every 0.25 s: the last moments of a process that exits between two
    samples are not counted."""

    def __init__(self, hosts: list[Any]) -> None:
        self.hosts = hosts
        self.seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for host in self.hosts:
                for pid in host.pids():
                    try:
                        proc = psutil.Process(pid)
                        t = proc.cpu_times()
                        key = (pid, proc.create_time())
                    except psutil.Error:
                        continue
                    self.seen[key] = float(t.user + t.system)
            self._stop.wait(0.25)

    def __enter__(self) -> HostCpu:
        self.start_total = self._total_now()
        self._thread.start()
        return self

    def _total_now(self) -> float:
        total = 0.0
        for host in self.hosts:
            for pid in host.pids():
                try:
                    t = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue
                total += float(t.user + t.system)
        return total

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        """CPU seconds used while the sampler ran (what the workers had used before, minus)."""
        return sum(self.seen.values()) - self.start_total


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


async def _final(run_ids: list[str], timeout: float) -> list[str]:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            states = []
            for rid in run_ids:
                run = await client.read_flow_run(uuid.UUID(rid))
                states.append(run.state.type.value if run.state else "PENDING")
            done = all(s in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} for s in states)
            if done or time.monotonic() > deadline:
                return states
            await asyncio.sleep(1)


def _span(run_ids: list[str]) -> tuple[int, float]:
    """(ok sessions, seconds from the first session's start to the last one's end)."""
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Run

    with session_scope() as s:
        found = s.execute(
            select(Run.status, Run.started_at, Run.ended_at).where(Run.flow_run_id.in_(run_ids))
        ).all()
    ok = [r for r in found if r.status == "ok" and r.ended_at is not None]
    if not ok:
        raise RuntimeError("no session finished")
    start = min(r.started_at for r in ok)
    end = max(r.ended_at for r in ok)
    return len(ok), (end - start).total_seconds()


def _fleet(cluster: Any, names: list[str], queues: list[str]) -> tuple[float, float, float]:
    """Run `names` split over `queues` (one flow run each); (sessions/min, the hosts' CPU
    s/session, the whole machine's busy CPU s/session)."""
    parts = [names[i :: len(queues)] for i in range(len(queues))]
    params = {"command": "bench-host-visit", "tags": [], "concurrency": 4,
              "params": {"base_url": cluster.site_url}}  # fmt: skip
    busy = _busy_seconds()
    with HostCpu(list(cluster.hosts.values())) as sampler:
        ids = [
            cluster.submit({**params, "profiles": part}, queue=queue)
            for part, queue in zip(parts, queues, strict=True)
        ]
        states = asyncio.run(_final(ids, 900))
    cpu = _busy_seconds() - busy
    if set(states) != {"COMPLETED"}:
        raise RuntimeError(f"fleet runs ended {states}")
    ok, seconds = _span(ids)
    if ok != len(names):
        raise RuntimeError(f"{ok} of {len(names)} sessions ok")
    return ok / seconds * 60, sampler.seconds / ok, cpu / ok


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4)


async def run(bench: Bench) -> dict[str, Figure]:
    return await asyncio.to_thread(_run, bench)


def _run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.commands import load_commands
    from fleetwright.registry import import_profiles
    from fleetwright.testing.hosts import Cluster, namespaces_refused

    refused = namespaces_refused()
    if refused:
        raise RuntimeError(f"needs Linux network namespaces: {refused}")
    n = 80 if bench.mode == "full" else 16
    rounds = 2 if bench.mode == "full" else 1
    one: list[float] = []
    two: list[float] = []
    cpu_one: list[float] = []
    cpu_two: list[float] = []
    machine_one: list[float] = []
    machine_two: list[float] = []
    with Cluster(bench.root / "hosts") as cluster, cluster.use():
        commands = bench.root / "hosts-commands"
        commands.mkdir()
        (commands / "bench-host-visit.yaml").write_text(VISIT)
        load_commands([commands])
        a, b = cluster.hosts["a"], cluster.hosts["b"]
        a.start_worker()
        b.start_worker()
        for r in range(rounds):
            items = [(f"i{i}", {"name": f"bh{r}-{i:04d}", "tags": []}) for i in range(n)]
            report = asyncio.run(import_profiles(items))
            if report.errors:
                raise RuntimeError(f"importing profiles: {report.errors[:3]}")
            names = [str(d["name"]) for _, d in items]
            rate, cpu, machine = _fleet(cluster, names, [a.queue])
            one.append(rate)
            cpu_one.append(cpu)
            machine_one.append(machine)
            rate, cpu, machine = _fleet(cluster, names, [a.queue, b.queue])
            two.append(rate)
            cpu_two.append(cpu)
            machine_two.append(machine)
    fig = ab_ratio(
        two, one, unit="x", a_name="2 hosts", b_name="1 host", a_unit="sessions/min",
        sessions=n, concurrency_per_host=4,
        cpu_s_per_session_1host=_mean(cpu_one),
        cpu_s_per_session_2hosts=_mean(cpu_two),
        machine_busy_cpu_s_per_session_1host=_mean(machine_one),
        machine_busy_cpu_s_per_session_2hosts=_mean(machine_two),
        cores=psutil.cpu_count(),
    )  # fmt: skip
    return {"throughput_2hosts_over_1host": fig}

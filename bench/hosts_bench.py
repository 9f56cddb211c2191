"""Throughput of one fleet on two worker hosts over one, with the CPU each session costs.

fleetwright.testing.hosts builds the central stack (HA Prefect, Redis, Postgres through a
forwarder, an S3 server, the demo site) and two hosts in network namespaces. The same fleet
(storage mode, the demo site's fast page, concurrency 4 per host) runs on host a alone, then
split in two halves on hosts a and b at once. Sessions per minute are counted from the first
session's start to the last one's end (catalogue run rows), so worker pick-up is left out.
Both hosts share this machine's cores: the ratio says what a second host adds when the CPU is
already the limit, and the CPU seconds per session (the whole machine's busy time over the
span, divided by the sessions) say how much a host of its own would need.
"""

from __future__ import annotations

import asyncio
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


def _fleet(cluster: Any, names: list[str], queues: list[str]) -> tuple[float, float]:
    """Run `names` split over `queues` (one flow run each); (sessions/min, CPU s/session)."""
    parts = [names[i :: len(queues)] for i in range(len(queues))]
    busy = _busy_seconds()
    params = {"command": "bench-host-visit", "tags": [], "concurrency": 4,
              "params": {"base_url": cluster.site_url}}  # fmt: skip
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
    return ok / seconds * 60, cpu / ok


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
            rate, cpu = _fleet(cluster, names, [a.queue])
            one.append(rate)
            cpu_one.append(cpu)
            rate, cpu = _fleet(cluster, names, [a.queue, b.queue])
            two.append(rate)
            cpu_two.append(cpu)
    fig = ab_ratio(
        two, one, unit="x", a_name="2 hosts", b_name="1 host", a_unit="sessions/min",
        sessions=n, concurrency_per_host=4,
        cpu_s_per_session_1host=round(sum(cpu_one) / len(cpu_one), 4),
        cpu_s_per_session_2hosts=round(sum(cpu_two) / len(cpu_two), 4),
        cores=psutil.cpu_count(),
    )  # fmt: skip
    return {"throughput_2hosts_over_1host": fig}

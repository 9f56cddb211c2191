"""Worker hosts across a network: two hosts in network namespaces of their own, each with its
own home and Prefect worker, talking to the central stack (scripts/ha.sh's HA Prefect behind
nginx, Redis, Postgres, an S3 server, the demo site) over a bridge by address only.

A profile's state saved on host A is read on host B; an API server killed mid-run, the
stack's Redis restarted mid-run and host A SIGKILLed mid-run (its worker and every process
it started) each leave every profile with exactly one `ok` run row; a fleet run of 200
profiles in two shards runs one shard on each host.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fleetwright.testing.hosts import Cluster, namespaces_refused

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.browser]

PG_ADMIN_URL = os.environ.get(
    "FLEETWRIGHT_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)

COMMANDS = {
    "host-visit": """\
name: host-visit
version: "1"
params:
  base_url: {type: str}
  ms: {type: int, default: 0}
steps:
  - goto: "{{ params.base_url }}/slow?ms={{ params.ms }}"
  - goto: "{{ params.base_url }}/ip"
  - extract: {id: client, selector: "body", kind: text}
""",
    "state-set": """\
name: state-set
version: "1"
params:
  base_url: {type: str}
  value: {type: str}
steps:
  - goto: "{{ params.base_url }}/storage?write={{ params.value }}"
  - wait_for: {selector: "#status:has-text('ready')"}
  - goto: "{{ params.base_url }}/ip"
  - extract: {id: client, selector: "body", kind: text}
""",
    "state-get": """\
name: state-get
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/storage"
  - wait_for: {selector: "#status:has-text('ready')"}
  - extract: {id: local, selector: "#local", kind: text}
  - extract: {id: cookie, selector: "#cookie", kind: text}
  - goto: "{{ params.base_url }}/ip"
  - extract: {id: client, selector: "body", kind: text}
""",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    refused = namespaces_refused()
    if refused:
        pytest.skip(f"multi-host tests need Linux network namespaces: {refused}")
    from fleetwright.commands import load_commands

    pg = make_url(PG_ADMIN_URL)
    workdir = tmp_path_factory.mktemp("hosts")
    c = Cluster(workdir, pg_url=f"postgresql://{pg.username}@{pg.host}:{pg.port or 5432}")
    with c, c.use():
        commands = workdir / "commands"
        commands.mkdir()
        for name, text in COMMANDS.items():
            (commands / f"{name}.yaml").write_text(text)
        load_commands([commands])
        for host in c.hosts.values():
            host.start_worker()
        yield c


@pytest.fixture
def both_workers(cluster: Cluster) -> Cluster:
    for host in cluster.hosts.values():
        host.start_worker()
    return cluster


def _profiles(prefix: str, n: int) -> list[str]:
    from fleetwright.registry import import_profiles

    tag = f"{prefix}-{uuid.uuid4().hex[:6]}"
    items: list[tuple[str, dict[str, Any]]] = [
        (f"i{i}", {"name": f"{tag}-{i:03d}", "tags": [tag]}) for i in range(n)
    ]
    report = asyncio.run(import_profiles(items))
    assert not report.errors, report.errors
    return [d["name"] for _, d in items]


async def _state(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(uuid.UUID(run_id))
    return run.state.type.value if run.state else "PENDING"


def wait_state(run_id: str, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = asyncio.run(_state(run_id))
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(1)


async def _logs(run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
        )
    return "\n".join(log.message[:500] for log in logs[-15:])


def finish(run_id: str, timeout: float = 300) -> None:
    """Wait for the flow run to end; it must end Completed (its last logs otherwise)."""
    final = wait_state(run_id, {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, timeout)
    assert final == "COMPLETED", f"{final}:\n{asyncio.run(_logs(run_id))}"


def rows(*run_ids: str) -> list[Any]:
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Run

    with session_scope() as s:
        found = s.scalars(select(Run).where(Run.flow_run_id.in_(run_ids)).order_by(Run.id)).all()
        for r in found:
            s.expunge(r)
        return list(found)


def wait_ok(run_id: str, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len([r for r in rows(run_id) if r.status == "ok"]) < n:
        assert time.monotonic() < deadline, f"{n} sessions of {run_id} did not finish in time"
        time.sleep(0.3)


def client_of(row: Any) -> str:
    """The address the demo site saw the session come from (its /ip page, extracted)."""
    found = re.search(r'"ip":\s*"([0-9.]+)"', str(row.outputs))
    assert found, row.outputs
    return found.group(1)


def assert_exactly_once(names: list[str], found: list[Any]) -> None:
    ok = sorted(r.profile_name for r in found if r.status == "ok")
    assert ok == sorted(names), (len(ok), len(names))


def fleet(cluster: Cluster, command: str, names: list[str], queue: str | None, **kw: Any) -> str:
    params = {"base_url": cluster.site_url, **kw.pop("params", {})}
    return cluster.submit(
        {"command": command, "profiles": names, "tags": [], "params": params, **kw}, queue=queue
    )


def test_state_saved_on_host_a_is_read_on_host_b(both_workers: Cluster) -> None:
    cluster = both_workers
    a, b = cluster.hosts["a"], cluster.hosts["b"]
    [name] = _profiles("state", 1)
    value = f"from-a-{uuid.uuid4().hex[:8]}"
    saved = fleet(cluster, "state-set", [name], a.queue, params={"value": value}, concurrency=1)
    finish(saved, 180)
    read = fleet(cluster, "state-get", [name], b.queue, concurrency=1)
    finish(read, 180)

    [set_row] = rows(saved)
    [get_row] = rows(read)
    assert client_of(set_row) == a.address and client_of(get_row) == b.address
    assert get_row.outputs["local"]["text"] == value
    assert get_row.outputs["cookie"]["text"] == value
    # host B holds no state of its own, only what it fetched from the bucket into its cache
    files = [p for p in (b.home / "profiles").rglob("*") if p.is_file()]
    assert files and all("cache" in p.parts for p in files), files


def test_stack_redis_restarted_mid_run_loses_and_doubles_nothing(both_workers: Cluster) -> None:
    cluster = both_workers
    names = _profiles("redis", 16)
    run = fleet(cluster, "host-visit", names, None, params={"ms": 1200}, concurrency=4)
    wait_ok(run, 4)
    cluster.redis.restart(down_for=2)
    finish(run, 300)
    found = rows(run)
    assert_exactly_once(names, found)
    assert {r.status for r in found} == {"ok"}


def test_host_a_killed_mid_run_is_resumed_on_host_b(both_workers: Cluster) -> None:
    cluster = both_workers
    a, b = cluster.hosts["a"], cluster.hosts["b"]
    names = _profiles("crash", 16)
    crashed = fleet(cluster, "host-visit", names, a.queue, params={"ms": 1200}, concurrency=4)
    wait_ok(crashed, 4)
    killed = a.kill()
    assert killed and not a.pids()
    killed_at = time.monotonic()
    # no worker is left to report it: the heartbeat automation marks it Crashed (90 s)
    assert wait_state(crashed, {"CRASHED", "COMPLETED", "FAILED"}, 240) == "CRASHED"
    crashed_after = time.monotonic() - killed_at
    resumed = asyncio.run(_resumed(crashed, 120))
    finish(resumed, 240)
    found = rows(crashed, resumed)
    assert_exactly_once(names, found)
    assert {r.status for r in found} <= {"ok", "interrupted"}
    first = [r for r in found if r.flow_run_id == crashed and r.status == "ok"]
    second = [r for r in found if r.flow_run_id == resumed and r.status == "ok"]
    assert len(first) >= 4 and second
    assert {client_of(r) for r in first} == {a.address}
    assert {client_of(r) for r in second} == {b.address}
    print(f"crashed {crashed_after:.0f}s after the kill; resumed on host b")


async def _resumed(crashed_id: str, timeout: float) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=["run-command-resume"])
                )
            )
            for run in runs:
                if run.parameters.get("resume_from") == crashed_id:
                    return str(run.id)
            await asyncio.sleep(1)
    raise AssertionError(f"no run resumed {crashed_id} within {timeout}s")


def test_api_server_killed_mid_run_finishes_through_the_other(both_workers: Cluster) -> None:
    cluster = both_workers
    names = _profiles("api", 16)
    run = fleet(cluster, "host-visit", names, None, params={"ms": 1200}, concurrency=4)
    wait_ok(run, 4)
    killed = cluster.ha("kill-api", "1")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    finish(run, 300)
    found = rows(run)
    assert_exactly_once(names, found)
    assert {r.status for r in found} == {"ok"}
    status = cluster.ha("status")
    assert "api-1: stopped" in status.stdout and "api-2: running" in status.stdout


def test_sharded_fleet_of_200_completes_across_both_hosts(cluster: Cluster) -> None:
    """run-command with shards=2 (the parameters `run_command(..., shards=2, concurrency=4)`
    submits): the parent splits the selection into two child runs of the deployment, which
    the workers of both hosts take from the pool's default queue."""
    a, b = cluster.hosts["a"], cluster.hosts["b"]
    # The parent goes to host a, which then has room for one shard: the other is host b's.
    for host, limit in ((a, 2), (b, 1)):
        host.stop_worker()
        host.start_worker(limit=limit)
    names = _profiles("fleet", 200)
    started = time.monotonic()
    parent = fleet(cluster, "host-visit", names, a.queue, concurrency=4, shards=2)
    finish(parent, 600)
    took = time.monotonic() - started
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Run

    with session_scope() as s:
        found = list(s.scalars(select(Run).where(Run.profile_name.in_(names))).all())
        for r in found:
            s.expunge(r)
    assert_exactly_once(names, found)
    assert {r.status for r in found} == {"ok"}
    shards = {r.flow_run_id for r in found}
    assert len(shards) == 2 and parent not in shards
    by_shard = {sid: {client_of(r) for r in found if r.flow_run_id == sid} for sid in shards}
    assert sorted(next(iter(v)) for v in by_shard.values()) == [a.address, b.address], by_shard
    assert all(len(v) == 1 for v in by_shard.values()), by_shard
    counts = sorted(sum(1 for r in found if r.flow_run_id == sid) for sid in shards)
    assert counts == [100, 100]
    ended = max(r.ended_at for r in found if r.ended_at is not None)
    begun = min(r.started_at for r in found)
    rate = len(found) / (ended - begun).total_seconds() * 60
    print(f"200 profiles in 2 shards: {took:.0f}s end to end, {rate:.0f} sessions/min")


def test_namespace_probe_reports_a_reason_when_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `ip` the harness says why instead of failing half-way."""
    monkeypatch.setenv("PATH", str(Path("/nonexistent")))
    assert "iproute2" in (namespaces_refused() or "")

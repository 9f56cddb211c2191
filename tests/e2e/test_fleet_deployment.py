"""Fleet runs through the real stack: the run-command deployments from prefect.yaml on a real
Prefect server and process worker. A SIGKILLed flow-run process is resumed by the Crashed
trigger without redoing finished sessions; a schedule added with the CLI fires; `run --wait`
follows a deployment run to its summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import dispose_engines, session_scope
from fleetwright.catalogue.models import Profile, Run
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect, pytest.mark.browser, pytest.mark.slow]

SLOW = """\
name: slow-visit
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/slow?ms=900"
  - extract: {id: waited, selector: "#waited", kind: text}
"""


class Stack:
    def __init__(self, home: Path, site: SiteServer, worker: Any) -> None:
        self.home, self.site, self.worker = home, site, worker


def _flow_processes(flow_run_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def stack(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from fleetwright.commands import load_commands
    from fleetwright.embedded.stack import deploy_project, start_worker, stop_process
    from fleetwright.settings import reset_settings

    home = tmp_path_factory.mktemp("fleet-stack") / "home"
    saved = {k: os.environ.get(k) for k in ("FLEETWRIGHT_HOME", "FLEETWRIGHT_LEASE_TTL")}
    os.environ["FLEETWRIGHT_HOME"] = str(home)
    os.environ["FLEETWRIGHT_LEASE_TTL"] = "PT5S"  # a dead holder's lease frees itself in 5 s
    reset_settings()
    dispose_engines()
    commands = home.parent / "commands"
    commands.mkdir()
    (commands / "slow-visit.yaml").write_text(SLOW)
    load_commands()
    load_commands([commands])
    deploy_project({}, names=["run-command", "run-command-resume"])
    worker = start_worker({}, log_path=home / "worker.log")
    try:
        with serve_site() as site:
            yield Stack(home, site, worker)
    finally:
        stop_process(worker)
        for proc in psutil.process_iter(["pid"]):  # flow-run processes this test started
            try:
                if proc.environ().get("FLEETWRIGHT_HOME") == str(home) and proc.pid != os.getpid():
                    proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        dispose_engines()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


def _profiles(prefix: str, n: int, tag: str) -> list[str]:
    from fleetwright.embedded.demo import store_demo_passwords
    from fleetwright.registry import import_profiles

    items = [(f"i{i}", {"name": f"{prefix}{i:02d}", "tags": [tag]}) for i in range(n)]
    report = asyncio.run(import_profiles(items))
    assert not report.errors, report.errors
    names = [d["name"] for _, d in items]
    asyncio.run(store_demo_passwords(names))  # the demo command reads each one's password
    return names


async def _wait_state(flow_run_id: str, states: set[str], timeout: float) -> str:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(uuid.UUID(flow_run_id))
            state = run.state.type.value if run.state else "PENDING"
            if state in states or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.5)


async def _resumed_run(crashed_id: str, timeout: float) -> Any:
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
                    return run
            await asyncio.sleep(1)
    raise AssertionError(f"no run resumed {crashed_id} within {timeout}s")


def test_sigkill_mid_run_is_resumed_without_redoing_sessions(stack: Stack) -> None:
    from fleetwright.api import run_command

    names = _profiles("crash", 12, "crash")
    fleet = run_command(
        "slow-visit", tags=["crash"], params={"base_url": stack.site.url}, concurrency=2, wait=False
    )
    crashed_id = fleet.id
    # Kill the flow-run process (and only it) once a third of the sessions have finished.
    deadline = time.monotonic() + 120
    while True:
        with session_scope() as s:
            done = s.scalars(
                select(Run.profile_name).where(Run.flow_run_id == crashed_id, Run.status == "ok")
            ).all()
        if len(done) >= 4:
            break
        assert time.monotonic() < deadline, "the fleet run did not get going"
        time.sleep(0.2)
    procs = _flow_processes(crashed_id)
    assert procs, "flow-run process not found"
    for proc in procs:
        if proc.parent() is None or proc.parent().pid not in {p.pid for p in procs}:
            os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert asyncio.run(_wait_state(crashed_id, {"CRASHED"}, 60)) == "CRASHED"

    resumed = asyncio.run(_resumed_run(crashed_id, 60))
    final = asyncio.run(_wait_state(str(resumed.id), {"COMPLETED", "FAILED", "CRASHED"}, 150))
    assert final == "COMPLETED", final
    with session_scope() as s:
        runs = s.scalars(
            select(Run).where(Run.flow_run_id.in_([crashed_id, str(resumed.id)])).order_by(Run.id)
        ).all()
        leases = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    ok = [r.profile_name for r in runs if r.status == "ok"]
    assert sorted(ok) == names  # every profile ran exactly once to success
    first = {r.profile_name for r in runs if r.status == "ok" and r.flow_run_id == crashed_id}
    second = {r.profile_name for r in runs if r.status == "ok" and r.flow_run_id != crashed_id}
    assert len(first) >= 4 and first.isdisjoint(second) and first | second == set(names)
    assert {r.status for r in runs} <= {"ok", "interrupted"}
    interrupted = [r for r in runs if r.status == "interrupted"]
    assert all(r.flow_run_id == crashed_id for r in interrupted)
    assert all(holder is None for holder in leases)

    # the crashed run's task runs are closed: none stays Running in the UI
    crashed_tasks = asyncio.run(_task_states(crashed_id))
    assert crashed_tasks and not {"RUNNING", "PENDING"} & set(crashed_tasks.values()), crashed_tasks

    from fleetwright.api import get_run

    summary = get_run(str(resumed.id))
    assert (summary.ok, summary.failed, summary.skipped) == (len(second), 0, len(first))
    print(f"resumed {len(interrupted)} interrupted sessions; {time.monotonic() - killed_at:.1f}s")


async def _task_states(flow_run_id: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
        )
    return {t.name: t.state.type.value if t.state else "NONE" for t in runs}


def test_run_cancel_of_a_deployment_run(stack: Stack) -> None:
    """Prefect's cancellation: the worker ends the flow-run process; the run is Cancelled,
    what it left open is closed, and it is not resumed."""
    from fleetwright.api import run_command
    from fleetwright.cli.main import main

    names = _profiles("cancel", 8, "cancel-dep")
    fleet = run_command(
        "slow-visit", tags=["cancel-dep"], params={"base_url": stack.site.url}, concurrency=2,
        wait=False,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        with session_scope() as s:
            done = s.scalars(
                select(Run.id).where(Run.flow_run_id == fleet.id, Run.status == "ok")
            ).all()
        if len(done) >= 2:
            break
        assert time.monotonic() < deadline, "the fleet run did not get going"
        time.sleep(0.2)
    main(["run", "cancel", fleet.id])  # returns once the run has ended
    assert asyncio.run(_wait_state(fleet.id, {"CANCELLED", "CRASHED", "COMPLETED"}, 60)) == (
        "CANCELLED"
    )
    with session_scope() as s:
        runs = s.scalars(select(Run).where(Run.flow_run_id == fleet.id)).all()
        leases = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    assert {r.status for r in runs} <= {"ok", "cancelled"}, [
        (r.profile_name, r.status, r.error_type, r.error) for r in runs if r.status == "failed"
    ]
    assert all(holder is None for holder in leases)
    assert not {"RUNNING", "PENDING"} & set(asyncio.run(_task_states(fleet.id)).values())
    time.sleep(10)
    with pytest.raises(AssertionError):
        asyncio.run(_resumed_run(fleet.id, 1))


def test_schedule_added_with_the_cli_fires_on_the_worker(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetwright.cli.main import main
    from fleetwright.fleet.schedules import alist_schedules

    names = _profiles("sched", 2, "sched")
    main(
        [
            "schedule",
            "add",
            "demo",
            "--tag",
            "sched",
            "--interval",
            "10",
            "--name",
            "every10",
            "--timezone",
            "Europe/Berlin",
            "-p",
            f"base_url={stack.site.url}",
            "--json",
        ]
    )
    info = json.loads(capsys.readouterr().out)
    assert info["deployment"] == "run-command/schedule-every10" and info["active"] is True
    assert info["timezone"] == "Europe/Berlin"

    deadline = time.monotonic() + 120
    while True:
        with session_scope() as s:
            ok = s.scalars(select(Run).where(Run.profile_name.in_(names), Run.status == "ok")).all()
        if len(ok) == 2:
            break
        assert time.monotonic() < deadline, "the schedule did not fire"
        time.sleep(1)
    assert len({r.flow_run_id for r in ok}) == 1  # one scheduled fleet run covered both

    main(["schedule", "pause", "every10"])
    assert [(s.name, s.active) for s in asyncio.run(alist_schedules())] == [("every10", False)]
    main(["schedule", "resume", "every10"])
    assert [(s.name, s.active) for s in asyncio.run(alist_schedules())] == [("every10", True)]
    main(["schedule", "remove", "every10"])
    assert asyncio.run(alist_schedules()) == []


def test_run_wait_follows_a_deployment_run(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from fleetwright.api import get_run
    from fleetwright.cli.main import main

    names = _profiles("wait", 3, "wait")
    capsys.readouterr()
    triggered = datetime.now(UTC)
    try:
        main(
            ["run", "demo", "--tag", "wait", "-p", f"base_url={stack.site.url}", "--wait", "--json"]
        )
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out[out.index("{") :])
    assert (data["state"], data["ok"], data["failed"]) == ("COMPLETED", 3, 0)
    assert [s["profile"] for s in data["sessions"]] == names
    fleet = get_run(data["id"])
    kinds = sorted(a["type"] for a in fleet.artifacts)
    assert kinds == ["progress", "table"], kinds
    assert [a["data"] for a in fleet.artifacts if a["type"] == "progress"] == [100.0]
    with session_scope() as s:
        first = min(s.scalars(select(Run.started_at).where(Run.flow_run_id == data["id"])))
    first = first if first.tzinfo else first.replace(tzinfo=UTC)
    print(
        f"process worker: trigger → first session start {(first - triggered).total_seconds():.2f}s"
    )


def test_run_wait_bar_ends_on_the_runs_record(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar stops following events at the run's final state and ends on the counts of the
    run's record, not on whatever session events had arrived by then."""
    from fleetwright.cli.main import main

    _profiles("bar", 4, "bar")
    monkeypatch.setenv("FLEETWRIGHT_PROGRESS", "always")  # the bar, although not a terminal
    capsys.readouterr()
    try:
        main(["run", "demo", "--tag", "bar", "-p", f"base_url={stack.site.url}", "--wait"])
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    bars = [line for line in captured.err.splitlines() if "demo (" in line]
    assert bars, captured.err
    last = " ".join(bars[-1].split())
    assert "demo (completed)" in last and "4/4" in last and "4 ok 0 failed" in last, last


# --- sharded fleet runs -----------------------------------------------------------------------


def test_split_gives_every_name_once_in_near_equal_parts() -> None:
    from fleetwright.errors import ValidationError
    from fleetwright.fleet.shards import split

    names = [f"p{i}" for i in range(10)]
    parts = split(names, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert [n for p in parts for n in p] == names
    assert split(names[:2], 5) == [["p0"], ["p1"]]  # never an empty shard
    assert split([], 3) == []
    with pytest.raises(ValidationError, match="shards must be 1 or more"):
        split(names, 0)


async def _children(parent_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        return list(
            await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[uuid.UUID(parent_id)])
                )
            )
        )


def _ok_rows(names: list[str]) -> list[Run]:
    with session_scope() as s:
        return list(
            s.scalars(select(Run).where(Run.profile_name.in_(names), Run.status == "ok")).all()
        )


def test_sharded_run_splits_over_the_workers_and_adds_up(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetwright.cli.main import main

    names = _profiles("shard", 7, "shard")
    capsys.readouterr()
    try:
        main(
            ["run", "demo", "--tag", "shard", "-p", f"base_url={stack.site.url}", "--shards", "3",
             "--concurrency", "2", "--wait", "--json"]
        )  # fmt: skip
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out[out.index("{") :])
    assert (data["state"], data["ok"], data["failed"]) == ("COMPLETED", 7, 0)
    assert [s["profile"] for s in data["sessions"]] == names
    children = asyncio.run(_children(data["id"]))
    assert len(children) == 3
    assert sorted(len(c.parameters["profiles"]) for c in children) == [2, 2, 3]
    assert all(c.state and c.state.type.value == "COMPLETED" for c in children)
    assert {c.parameters["fleet_key"] for c in children} == {data["id"]}
    ok = _ok_rows(names)
    assert sorted(r.profile_name for r in ok) == names  # each profile once
    assert {r.flow_run_id for r in ok} == {str(c.id) for c in children}  # sessions ran in shards


def test_sharded_run_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwright.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "demo", "--tag", "x", "--shards", "2", "--now"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--shards splits a run over the deployment's workers" in err
    assert "Traceback" not in err


def _kill_flow_run(flow_run_id: str) -> None:
    procs = _flow_processes(flow_run_id)
    assert procs, f"no process runs flow run {flow_run_id}"
    for proc in procs:
        if proc.parent() is None or proc.parent().pid not in {p.pid for p in procs}:
            os.kill(proc.pid, signal.SIGKILL)


def test_sharded_run_survives_its_parent_and_a_shard_dying(stack: Stack) -> None:
    """SIGKILL one shard mid-way, then the parent: the Crashed trigger resumes both; the
    resumed parent adopts the shards (starts none again) and follows the crashed shard to the
    run resuming it; every profile ends ok exactly once."""
    from fleetwright.api import get_run, run_command

    names = _profiles("shardk", 8, "shardk")
    fleet = run_command(
        "slow-visit", tags=["shardk"], params={"base_url": stack.site.url}, concurrency=1,
        shards=2, wait=False,
    )  # fmt: skip
    parent = fleet.id
    deadline = time.monotonic() + 180
    while True:
        children = asyncio.run(_children(parent))
        ids = [str(c.id) for c in children]
        with session_scope() as s:
            done = s.scalars(
                select(Run.flow_run_id).where(Run.flow_run_id.in_(ids), Run.status == "ok")
            ).all()
        if len(children) == 2 and len(set(done)) == 2:
            break  # both shards are under way
        assert time.monotonic() < deadline, "the shards did not get going"
        time.sleep(0.3)
    victim = ids[0]
    _kill_flow_run(victim)
    assert asyncio.run(_wait_state(victim, {"CRASHED"}, 60)) == "CRASHED"
    _kill_flow_run(parent)
    assert asyncio.run(_wait_state(parent, {"CRASHED"}, 60)) == "CRASHED"

    resumed_parent = asyncio.run(_resumed_run(parent, 60))
    resumed_shard = asyncio.run(_resumed_run(victim, 60))
    final = asyncio.run(
        _wait_state(str(resumed_parent.id), {"COMPLETED", "FAILED", "CRASHED"}, 300)
    )
    assert final == "COMPLETED", final
    assert asyncio.run(_children(str(resumed_parent.id))) == []  # it adopted, started none
    ok = _ok_rows(names)
    assert sorted(r.profile_name for r in ok) == names  # every profile ok exactly once
    assert str(resumed_shard.id) in {r.flow_run_id for r in ok}
    summary = get_run(str(resumed_parent.id))
    assert (summary.ok, summary.failed) == (8, 0), summary.sessions
    with session_scope() as s:
        leases = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    assert all(holder is None for holder in leases)


def test_cancelling_a_sharded_run_cancels_its_shards(stack: Stack) -> None:
    from fleetwright.api import run_command
    from fleetwright.cli.main import main

    names = _profiles("shardc", 12, "shardc")
    fleet = run_command(
        "slow-visit", tags=["shardc"], params={"base_url": stack.site.url}, concurrency=1,
        shards=2, wait=False,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        children = asyncio.run(_children(fleet.id))
        states = {c.state.type.value if c.state else "" for c in children}
        if len(children) == 2 and states == {"RUNNING"}:
            break
        assert time.monotonic() < deadline, "the shards did not start"
        time.sleep(0.3)
    main(["run", "cancel", fleet.id])
    assert asyncio.run(_wait_state(fleet.id, {"CANCELLED", "COMPLETED", "FAILED"}, 60)) == (
        "CANCELLED"
    )
    for child in children:
        assert asyncio.run(_wait_state(str(child.id), {"CANCELLED", "COMPLETED"}, 60)) == (
            "CANCELLED"
        )
    time.sleep(5)
    assert len(_ok_rows(names)) < len(names)  # stopped before the end
    with session_scope() as s:
        leases = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    assert all(holder is None for holder in leases)

"""Stopping fleet runs, with real processes: `fleetwright run --local` in a subprocess against
the test Prefect server (with prefect.yaml's run-command-resume trigger and the heartbeat
automation in place). Ctrl-C ends the run Cancelled and nothing resumes it; a SIGKILLed run
ends Crashed — also when it is killed in its first second — and is resumed; a busy profile
fails in one line with the attempts it really made."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select, update

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Run, utcnow
from fleetwright.embedded.stack import PROJECT_DIR
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect, pytest.mark.browser, pytest.mark.slow]

SLOW = """\
name: slow-visit
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/slow?ms=1500"
  - extract: {id: waited, selector: "#waited", kind: text}
"""

CLI = str(Path(sys.executable).parent / "fleetwright")


@pytest.fixture
def site(prefect_api: str, home: Path, tmp_path: Path) -> Iterator[SiteServer]:
    """The slow-visit command, the run-command deployments (their Crashed trigger) and the
    heartbeat automation on the test server, and the demo site. No worker: a resume run is
    created, not run."""
    from fleetwright.commands import load_commands
    from fleetwright.deployments.automations import ensure_heartbeat_automation
    from fleetwright.embedded.stack import deploy_project

    commands = tmp_path / "commands"
    commands.mkdir()
    (commands / "slow-visit.yaml").write_text(SLOW)
    load_commands()
    load_commands([commands])
    deploy_project({}, names=["run-command", "run-command-resume"])
    asyncio.run(ensure_heartbeat_automation())
    with serve_site() as server:
        yield server


class Local:
    """`fleetwright run ... --local` in a process of its own (and what it starts)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        env = {**os.environ, "FLEETWRIGHT_LEASE_TTL": "PT5S"}
        env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)  # the CLI sets it itself
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [CLI, "run", *args, "--local"],
                cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.family: set[int] = set()

    def note_children(self) -> None:
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        self.family |= {k.pid for k in kids}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for pid in self.family:  # whatever of a SIGKILLed run is still up
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                continue


def _profiles(prefix: str, n: int, tag: str) -> list[str]:
    from fleetwright.registry import import_profiles

    items = [(f"i{i}", {"name": f"{prefix}{i:02d}", "tags": [tag]}) for i in range(n)]
    report = asyncio.run(import_profiles(items))
    assert not report.errors, report.errors
    return [d["name"] for _, d in items]


async def _flow_run_for(tag: str, timeout: float) -> Any:
    """The run-command flow run started for `tag`, as soon as it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["run-command"]))
            )
            for run in runs:
                if run.parameters.get("tags") == [tag] and not run.parameters.get("resume_from"):
                    return run
            await asyncio.sleep(0.1)
    raise AssertionError(f"no run-command flow run for tag {tag!r} within {timeout}s")


async def _state(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(uuid.UUID(flow_run_id))
    return run.state.type.value if run.state else "PENDING"


async def _wait_state(flow_run_id: str, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = await _state(flow_run_id)
        if state in states or time.monotonic() > deadline:
            return state
        await asyncio.sleep(1)


async def _resume_runs(flow_run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs()
    return [r for r in runs if r.parameters.get("resume_from") == flow_run_id]


async def _delete(runs: list[Any]) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for run in runs:
            await client.delete_flow_run(run.id)


async def _task_states(flow_run_id: str) -> dict[str, str]:
    """Task run name → state type, once no task run of the flow run is left open: the server
    records task-run states from events, in batches, shortly after they happen."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 20
    async with get_client() as client:
        while True:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
            )
            states = {t.name: t.state.type.value if t.state else "NONE" for t in runs}
            open_ = {"RUNNING", "PENDING", "SCHEDULED"}
            if not open_ & set(states.values()) or time.monotonic() > deadline:
                return states
            await asyncio.sleep(0.5)


def _ok_rows(flow_run_id: str | None, names: list[str]) -> int:
    with session_scope() as s:
        query = select(Run).where(Run.profile_name.in_(names), Run.status == "ok")
        if flow_run_id:
            query = query.where(Run.flow_run_id == flow_run_id)
        return len(s.scalars(query).all())


def test_ctrl_c_cancels_the_run_for_good(site: SiteServer, tmp_path: Path) -> None:
    names = _profiles("sigint", 6, "sigint")
    run = Local(
        ["slow-visit", "--tag", "sigint", "-p", f"base_url={site.url}", "-c", "2"],
        tmp_path / "sigint.log",
    )
    try:
        flow_run = asyncio.run(_flow_run_for("sigint", 60))
        flow_run_id = str(flow_run.id)
        deadline = time.monotonic() + 90
        while _ok_rows(flow_run_id, names) < 1:
            assert time.monotonic() < deadline, run.output()[-3000:]
            time.sleep(0.2)
        run.note_children()
        os.kill(run.proc.pid, signal.SIGINT)
        assert run.proc.wait(timeout=60) == 130, run.output()[-3000:]
    finally:
        run.cleanup()
    out = run.output()
    assert "Traceback" not in out, out[-3000:]
    assert "stopping:" in out and "Cancelled" in out

    assert asyncio.run(_state(flow_run_id)) == "CANCELLED"
    with session_scope() as s:
        rows = s.scalars(select(Run).where(Run.flow_run_id == flow_run_id)).all()
        holders = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    statuses = {r.status for r in rows}
    assert "ok" in statuses and statuses <= {"ok", "cancelled"}, statuses
    assert all(h is None for h in holders)
    tasks = asyncio.run(_task_states(flow_run_id))
    assert set(tasks.values()) <= {"COMPLETED", "CANCELLED"}, tasks
    assert "CANCELLED" in tasks.values()

    # The Crashed trigger resumed Ctrl-C'd runs 6 s later; a cancelled run is not resumed.
    time.sleep(15)
    assert asyncio.run(_resume_runs(flow_run_id)) == []


def test_sigkilled_local_runs_end_crashed_and_are_resumed(site: SiteServer, tmp_path: Path) -> None:
    early_names = _profiles("early", 4, "kill-early")
    late_names = _profiles("late", 6, "kill-late")
    early = Local(
        ["slow-visit", "--tag", "kill-early", "-p", f"base_url={site.url}", "-c", "2"],
        tmp_path / "early.log",
    )
    late = Local(
        ["slow-visit", "--tag", "kill-late", "-p", f"base_url={site.url}", "-c", "2"],
        tmp_path / "late.log",
    )
    resumes: list[Any] = []
    try:
        # killed in its first moments: as soon as its flow run exists
        early_run = asyncio.run(_flow_run_for("kill-early", 60))
        early.note_children()
        os.kill(early.proc.pid, signal.SIGKILL)
        killed_early = _ok_rows(None, early_names)
        # killed mid-run, after its first session finished
        late_run = asyncio.run(_flow_run_for("kill-late", 60))
        deadline = time.monotonic() + 90
        while _ok_rows(str(late_run.id), late_names) < 1:
            assert time.monotonic() < deadline, late.output()[-3000:]
            time.sleep(0.2)
        late.note_children()
        os.kill(late.proc.pid, signal.SIGKILL)

        # no process is left to say so: the heartbeat automation marks both Crashed
        states = [
            asyncio.run(_wait_state(str(r.id), {"CRASHED", "COMPLETED", "CANCELLED"}, 240))
            for r in (early_run, late_run)
        ]
        assert states == ["CRASHED", "CRASHED"], states
        deadline = time.monotonic() + 60
        while True:
            resumes = [
                x for r in (early_run, late_run) for x in asyncio.run(_resume_runs(str(r.id)))
            ]
            if len(resumes) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(r.parameters["resume_from"] for r in resumes) == sorted(
            [str(early_run.id), str(late_run.id)]
        )
        assert all(r.parameters["command"] == "slow-visit" for r in resumes)
    finally:
        early.cleanup()
        late.cleanup()
        asyncio.run(_delete(resumes))  # no worker here; nothing should pick them up later
    print(f"early kill after {killed_early} finished sessions; both crashed and resumed")


def test_busy_profile_fails_in_one_line_with_its_attempts(site: SiteServer, tmp_path: Path) -> None:
    (name,) = _profiles("busy", 1, "busy")
    with session_scope() as s:  # another run holds the profile for the whole test
        s.execute(
            update(Profile)
            .where(Profile.name == name)
            .values(lease_holder="elsewhere:1", lease_expires_at=utcnow().replace(year=2100))
        )
    env_wait = {"FLEETWRIGHT_LEASE_WAIT": "PT0.5S"}
    os.environ.update(env_wait)
    try:
        run = Local(["demo", name, "-p", f"base_url={site.url}", "--json"], tmp_path / "busy.log")
        code = run.proc.wait(timeout=120)
    finally:
        for key in env_wait:
            os.environ.pop(key, None)
        run.cleanup()
    out = run.output()
    assert code == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    summary = json.loads(out[out.index("{\n") :])
    (session,) = summary["sessions"]
    assert (session["status"], session["attempts"]) == ("failed", 3), session
    assert "busy" in (session["error"] or "")


def test_run_cancel_stops_a_local_run_for_good(site: SiteServer, tmp_path: Path) -> None:
    names = _profiles("cancel", 12, "cancel")  # ~20 s of sessions, one at a time
    run = Local(
        ["slow-visit", "--tag", "cancel", "-p", f"base_url={site.url}", "-c", "1"],
        tmp_path / "cancel.log",
    )
    try:
        flow_run_id = str(asyncio.run(_flow_run_for("cancel", 60)).id)
        deadline = time.monotonic() + 90
        while _ok_rows(flow_run_id, names) < 1:
            assert time.monotonic() < deadline, run.output()[-3000:]
            time.sleep(0.2)
        run.note_children()
        cancel = subprocess.run(
            [CLI, "run", "cancel", flow_run_id, "--json"],
            cwd=PROJECT_DIR, env=dict(os.environ), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        assert json.loads(cancel.stdout) == {flow_run_id: "Cancelled"}
        assert run.proc.wait(timeout=60) == 1  # the run it was running ended, not all ok
    finally:
        run.cleanup()
    assert "Traceback" not in run.output(), run.output()[-3000:]
    assert asyncio.run(_state(flow_run_id)) == "CANCELLED"
    with session_scope() as s:
        rows = s.scalars(select(Run).where(Run.flow_run_id == flow_run_id)).all()
        holders = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    assert {r.status for r in rows} <= {"ok", "cancelled"}
    assert all(h is None for h in holders)
    assert set(asyncio.run(_task_states(flow_run_id)).values()) <= {"COMPLETED", "CANCELLED"}
    time.sleep(10)
    assert asyncio.run(_resume_runs(flow_run_id)) == []


def test_run_cancel_of_a_run_whose_process_is_gone(site: SiteServer, tmp_path: Path) -> None:
    """Nobody is left to end it: the cancel itself sets Cancelled and closes what it left."""
    from datetime import timedelta

    from fleetwright.fleet.stop import acancel_run

    names = _profiles("gone", 4, "gone")
    run = Local(
        ["slow-visit", "--tag", "gone", "-p", f"base_url={site.url}", "-c", "2"],
        tmp_path / "gone.log",
    )
    try:
        flow_run_id = str(asyncio.run(_flow_run_for("gone", 60)).id)
        deadline = time.monotonic() + 90
        while _ok_rows(flow_run_id, names) < 1:
            assert time.monotonic() < deadline, run.output()[-3000:]
            time.sleep(0.2)
        run.note_children()
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=30)
    finally:
        run.cleanup()
    with session_scope() as s:  # the dead process left sessions open
        assert s.scalars(
            select(Run).where(Run.flow_run_id == flow_run_id, Run.status == "running")
        ).all()
    ended = asyncio.run(acancel_run(flow_run_id, wait=timedelta(seconds=3)))
    assert ended.state is not None and ended.state.type.value == "CANCELLED"
    with session_scope() as s:
        rows = s.scalars(select(Run).where(Run.flow_run_id == flow_run_id)).all()
        holders = s.scalars(select(Profile.lease_holder).where(Profile.name.in_(names))).all()
    assert {r.status for r in rows} <= {"ok", "cancelled"} and "cancelled" in {
        r.status for r in rows
    }
    assert all(h is None for h in holders)
    assert set(asyncio.run(_task_states(flow_run_id)).values()) <= {"COMPLETED", "CANCELLED"}


def test_run_cancel_bad_input_is_one_line(prefect_api: str, home: Path) -> None:
    for args, needle in (
        (["run", "cancel"], "give the id"),
        (["run", "cancel", "not-a-run"], "is not a flow run id"),
        (["run", "cancel", str(uuid.uuid4())], "no flow run"),
    ):
        done = subprocess.run(
            [CLI, *args], cwd=PROJECT_DIR, env=dict(os.environ), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr and "Traceback" not in done.stderr

"""A fleet run of 54 profiles on a real Prefect server, real Chromium and a local page where
some profiles time out on their first attempt (retryable) and some fail an assertion (not)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run
from fleetwright.commands import load_commands
from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.site import AppServer

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

N = 54
FLAKY = {"fl003", "fl017", "fl029", "fl041"}  # first request stalls past the goto timeout
BAD = {"fl008", "fl022", "fl050"}  # the page says "bad": the assert step fails

COMMAND = """\
name: fleet-check
version: "1"
timeout: 5
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/fleet/{{ profile.name }}"
    timeout: 5
  - assert: {text: {selector: "#state", equals: "ok"}}
    timeout: 4
"""
# The assert's timeout leaves room for a loaded machine: with 1 s, reading '#state' once took
# longer than the step under a whole-suite run, so the step ended StepError ("timed out"),
# not the AssertionStepError this test is about.


class FleetSite:
    """Per-profile pages: stall once for FLAKY names, say "bad" for BAD ones."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

        async def page(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            self.hits[name] += 1
            if name in FLAKY and self.hits[name] == 1:
                await asyncio.sleep(12)  # well past the goto timeout, even on a busy machine
            state = "bad" if name in BAD else "ok"
            return HTMLResponse(f"<p id=state>{state}</p>")

        self.app = Starlette(routes=[Route("/fleet/{name}", page)])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def fleet_site() -> Iterator[FleetSite]:
    site = FleetSite()
    with AppServer(site.app, port=site.port):
        yield site


async def _task_runs(flow_run_id: uuid.UUID, names: set[str]) -> list[Any]:
    """The flow run's task runs named in `names`, once each of them is recorded in a final
    state: the server records task runs from their state events in batches (flushed every
    second), so the last of them reach the API shortly after the flow run ends."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 30
    async with get_client() as client:
        while True:
            runs: list[Any] = []
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    offset=len(runs), limit=200,
                )  # fmt: skip
                runs.extend(page)
                if len(page) < 200:
                    break
            sessions = [t for t in runs if t.name in names]
            final = [t for t in sessions if t.state is not None and t.state.is_final()]
            if len(final) >= len(names) or time.monotonic() > deadline:
                return sessions
            await asyncio.sleep(0.5)


async def _events(name: str, since: float, *, want: int) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
    from prefect.types._datetime import from_timestamp

    deadline = time.monotonic() + 20
    async with get_client() as client:
        while True:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[name]),
                    occurred=EventOccurredFilter(since=from_timestamp(since)),
                ),
                limit=50,
            )
            if len(page.events) >= want or time.monotonic() > deadline:
                return list(page.events)
            await asyncio.sleep(0.5)


def test_fleet_run_retries_only_retryable_failures(
    fleet_site: FleetSite, make_profiles, home: Path, tmp_path: Path
) -> None:
    from fleetwright.flows.run_command import run_command

    (tmp_path / "fleet-check.yaml").write_text(COMMAND)
    load_commands([tmp_path])
    names = make_profiles(N, prefix="fl", tags=["fleet50"])
    assert set(names) >= FLAKY | BAD
    started = time.time()
    t0 = time.monotonic()
    state = asyncio.run(
        run_command(
            command="fleet-check",
            tags=["fleet50"],
            params={"base_url": fleet_site.url},
            concurrency=6,
            return_state=True,
        )
    )
    elapsed = time.monotonic() - t0
    summary = state.result(raise_on_failure=False)
    assert state.is_failed() and state.message == f"{N - len(BAD)} ok, {len(BAD)} failed, 0 skipped"
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (N - len(BAD), len(BAD), 0)
    by_profile = {r["profile"]: r for r in summary["sessions"]}
    assert {p for p, r in by_profile.items() if r["status"] == "failed"} == BAD
    assert all(by_profile[p]["error_type"] == "AssertionStepError" for p in BAD)

    # The page saw two requests from each flaky profile and one from everyone else.
    assert {p for p, c in fleet_site.hits.items() if c == 2} == FLAKY
    assert all(fleet_site.hits[p] == 1 for p in set(names) - FLAKY)

    # Prefect: one task run per profile; flaky ones ran twice, assertion failures once.
    sessions = asyncio.run(_task_runs(state.state_details.flow_run_id, set(names)))
    assert len(sessions) == N
    counts = {t.name: t.run_count for t in sessions}
    assert {p for p, c in counts.items() if c == 2} == FLAKY
    assert all(counts[p] == 1 for p in set(names) - FLAKY)
    assert {t.name for t in sessions if t.state.is_failed()} == BAD

    # Catalogue: one row per attempt, with the attempt number and the error class.
    flow_run_id = str(state.state_details.flow_run_id)
    with session_scope() as s:
        runs = s.scalars(select(Run).where(Run.flow_run_id == flow_run_id)).all()
    rows: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        rows.setdefault(run.profile_name, []).append(run)
    assert set(rows) == set(names)
    for p in FLAKY:
        assert [(r.status, r.attempts, r.error_type) for r in rows[p]] == [
            ("failed", 1, "NavigationTimeoutError"), ("ok", 2, None)]  # fmt: skip
    for p in BAD:
        assert [(r.status, r.attempts, r.error_type) for r in rows[p]] == [
            ("failed", 1, "AssertionStepError")]  # fmt: skip
    for p in set(names) - FLAKY - BAD:
        assert [(r.status, r.attempts) for r in rows[p]] == [("ok", 1)]

    # Events: one session.failed per failed session (not per retried attempt), one run.finished.
    failed = asyncio.run(_events("fleetwright.session.failed", started, want=len(BAD)))
    assert sorted(e.resource["prefect.resource.name"] for e in failed) == sorted(BAD)
    finished = asyncio.run(_events("fleetwright.run.finished", started, want=1))
    assert [e.payload["ok"] for e in finished] == [N - len(BAD)]
    print(f"{N} sessions with retries in {elapsed:.1f}s")

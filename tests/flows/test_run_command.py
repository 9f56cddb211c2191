"""The run-command flow on a real Prefect server, real Chromium and the demo site."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run
from fleetwright.commands import load_commands

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


def test_demo_command_on_two_profiles(site, make_profiles, home: Path) -> None:
    from fleetwright.flows.run_command import run_command

    load_commands()
    names = make_profiles(2, prefix="demo")
    state = asyncio.run(
        run_command(
            command="demo",
            tags=["fleet"],
            params={"base_url": site.url},
            concurrency=2,
            return_state=True,
        )
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["ok"] == 2 and summary["failed"] == 0
    with session_scope() as s:
        runs = s.scalars(select(Run).order_by(Run.profile_name)).all()
        assert [r.profile_name for r in runs] == names
        assert all(r.status == "ok" and r.flow_run_id for r in runs)
        assert runs[0].outputs["greeting"]["text"] == f"Signed in as {names[0]}"
        assert Path(runs[0].artifacts["demo-summary.png"]).exists()


def test_bad_selection_fails_before_anything_runs(site, make_profiles, home: Path) -> None:
    from fleetwright.errors import NotFoundError, ValidationError
    from fleetwright.flows.run_command import run_command

    load_commands()
    make_profiles(1)
    with pytest.raises(NotFoundError, match="unknown command 'nope'"):
        asyncio.run(run_command(command="nope", tags=["fleet"]))
    with pytest.raises(NotFoundError, match="no profile has tag 'ghost'"):
        asyncio.run(run_command(command="demo", tags=["ghost"]))
    with pytest.raises(NotFoundError, match="unknown profile 'zed'"):
        asyncio.run(run_command(command="demo", profiles=["zed"]))
    with pytest.raises(ValidationError, match="select profiles"):
        asyncio.run(run_command(command="demo"))
    with pytest.raises(ValidationError, match="unknown"):
        asyncio.run(run_command(command="demo", tags=["fleet"], params={"colour": "x"}))
    with pytest.raises(ValidationError, match="resume_from 'garbage' is not a flow run id"):
        asyncio.run(run_command(command="demo", resume_from="garbage"))
    with pytest.raises(NotFoundError, match="resume_from: no flow run"):
        asyncio.run(run_command(command="demo", resume_from=str(uuid.uuid4())))
    with session_scope() as s:
        assert s.scalars(select(Run)).all() == []

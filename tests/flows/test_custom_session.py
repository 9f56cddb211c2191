"""The example flow that composes the session tasks by hand runs end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


def test_custom_flow(site, make_profiles, home: Path) -> None:
    from fleetwright.flows.custom_session import sign_in_and_check

    (name,) = make_profiles(1, prefix="custom")
    outputs = asyncio.run(sign_in_and_check(name, site.url))
    assert outputs["who"]["text"] == f"Signed in as {name}"
    with session_scope() as s:
        run = s.scalar(select(Run))
        assert run is not None and run.status == "ok" and run.profile_name == name

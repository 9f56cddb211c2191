"""Failover in a real run: off a quarantined proxy onto another of its pool, visible on the
run's page in Prefect, on the profile, as an event, and kept by the reconcile after it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy, Run, utcnow
from fleetwright.commands import load_commands
from fleetwright.registry import add_profile, add_proxy, get_profile
from fleetwright.registry.sync import reconcile_edits, sync_catalogue
from fleetwright.specs import validate_profile
from fleetwright.testing.proxies import TinyProxy

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


@pytest.fixture
def two_proxies(tmp_path: Path) -> Iterator[tuple[TinyProxy, TinyProxy]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        TinyProxy(password="fo-a-secret", workdir=tmp_path / "a") as a,
        TinyProxy(password="fo-b-secret", workdir=tmp_path / "b") as b,
    ):
        yield a, b


async def _logs(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))  # type: ignore[arg-type]
        )
    return [log.message for log in logs]


async def _failover_events() -> list[dict]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client._client.post(
            "/events/filter",
            json={
                "filter": {
                    "event": {"name": ["fleetwright.profile.failover"]},
                    "resource": {"id": ["fleetwright.profile.mover"]},
                },
                "limit": 10,
            },
        )
        response.raise_for_status()
        return list(response.json()["events"])


def test_failover_is_logged_on_the_run_and_survives_reconciles(
    site, prefect_api: str, home: Path, two_proxies: tuple[TinyProxy, TinyProxy]
) -> None:
    from fleetwright.flows.run_command import run_command

    a, b = two_proxies
    for name, server in (("fo-a", a), ("fo-b", b)):
        spec = server.spec(name, pool="fo")
        asyncio.run(add_proxy(spec))
    from fleetwright.embedded.demo import store_demo_passwords

    profile = validate_profile({"name": "mover", "proxy": "fo-a", "proxy_failover": True})
    asyncio.run(add_profile(profile))
    asyncio.run(store_demo_passwords(["mover"]))  # the demo command reads its site password
    with session_scope() as s:
        bad = s.scalar(select(Proxy).where(Proxy.name == "fo-a"))
        assert bad is not None
        bad.health, bad.quarantined_until = "quarantined", utcnow() + timedelta(minutes=5)
    load_commands()

    def run() -> str:
        state = asyncio.run(
            run_command(
                command="demo", profiles=["mover"], params={"base_url": site.url},
                return_state=True,
            )
        )  # fmt: skip
        assert state.is_completed(), state.message
        assert state.result()["ok"] == 1
        return str(state.state_details.flow_run_id)

    flow_run_id = run()
    with session_scope() as s:
        row = s.scalar(select(Run).where(Run.flow_run_id == flow_run_id))
        assert row is not None and row.status == "ok" and row.proxy_name == "fo-b"
    assert f"GET {site.url}" in b.log_text() and f"GET {site.url}" not in a.log_text()
    deadline = time.monotonic() + 15
    while True:
        lines = asyncio.run(_logs(flow_run_id))
        found = [m for m in lines if "fails over from quarantined proxy fo-a to fo-b" in m]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found, lines
    # one line per session, with the state version the session saved (no line of its own)
    while not [m for m in lines if m.startswith("session on mover ok")]:
        assert time.monotonic() < deadline + 15, lines
        time.sleep(0.5)
        lines = asyncio.run(_logs(flow_run_id))
    assert [
        m for m in lines if re.fullmatch(r"session on mover ok in \d+ ms \(run \d+, state v1\)", m)
    ], lines
    assert not [m for m in lines if "Saved state version" in m], lines
    record = get_profile("mover")
    assert (record["proxy"], record["bound_proxy"]) == ("fo-a", "fo-b")
    deadline = time.monotonic() + 15
    while not (events := asyncio.run(_failover_events())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert events and events[0]["payload"] == {"from": "fo-a", "to": "fo-b", "pool": "fo"}

    asyncio.run(sync_catalogue())
    asyncio.run(reconcile_edits(record["block_document_id"]))
    assert get_profile("mover")["bound_proxy"] == "fo-b"
    second = run()
    with session_scope() as s:
        row = s.scalar(select(Run).where(Run.flow_run_id == second))
        assert row is not None and row.proxy_name == "fo-b"

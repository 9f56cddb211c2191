"""A profile opened for another tool counts on the host's metrics as a session of its own:
command "profile open", its phases, its outcome, open now in `fleetwright_sessions_active`."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from fleetwright.sessions.opener import open_session

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(home: Path) -> Samples:
    from fleetwright.observability.serve import host_registry

    out = {}
    for family in host_registry(home / "metrics", catalogue=False).collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sessions(got: Samples, status: str, error_type: str = "") -> float:
    key = (
        "fleetwright_sessions_total",
        (("command", "profile open"), ("error_type", error_type), ("status", status)),
    )
    return got.get(key, 0.0)


def _phase_count(got: Samples, phase: str) -> float:
    return got.get(("fleetwright_session_phase_seconds_count", (("phase", phase),)), 0.0)


def test_open_sessions_show_in_the_hosts_metrics(make_profile, site, home: Path) -> None:
    kept = make_profile("met-kept")
    crashing = make_profile("met-crash", state_mode="persistent")
    while_open: list[float] = []

    async def session(name: str, *, crash: bool = False, fail: bool = False) -> None:
        async with open_session(name) as opened:
            page = await opened.context.new_page()
            await page.goto(f"{site.url}/storage?write=m")
            await page.wait_for_selector("#status:text('ready')")
            while_open.append(_samples(home)[("fleetwright_sessions_active", ())])
            if fail:
                raise RuntimeError("the tool's script failed")
            if crash:
                assert opened.browser_pid is not None
                os.kill(opened.browser_pid, signal.SIGKILL)
            else:
                opened.request_close()
            opened.reason = await opened.wait()

    asyncio.run(session(kept))
    got = _samples(home)
    assert _sessions(got, "ok") == 1
    assert got[("fleetwright_sessions_active", ())] == 0
    for phase in ("lease_wait", "launch", "steps", "save", "record"):
        assert _phase_count(got, phase) == 1, phase

    asyncio.run(session(crashing, crash=True))
    with pytest.raises(RuntimeError, match="script failed"):
        asyncio.run(session(kept, fail=True))
    got = _samples(home)
    assert _sessions(got, "ok") == 1
    assert _sessions(got, "failed", "BrowserCrashError") == 1
    assert _sessions(got, "failed", "Other") == 1  # the caller's own error, by its class
    assert got[("fleetwright_sessions_active", ())] == 0
    assert while_open == [1, 1, 1]


def test_open_sessions_send_no_prefect_events() -> None:
    """Opening a profile needs no Prefect server: its observer set has no events observer."""
    from fleetwright.observability.sessions import observe_events
    from fleetwright.sessions.observers import OPEN_COMMAND, SessionStart

    start = SessionStart(
        profile="p", command=OPEN_COMMAND, run_id=None, flow_run_id=None, task_run_id=None,
        attempt=1, proxy=None, lease_wait=0.0, pool=None, kind="open",
    )  # fmt: skip
    assert observe_events(start) is None

"""The session engine tells the installed `fleetwright.session_observer` observers when a
session began, when each phase ended and how it finished; a failing observer never fails a
session. The installed ones record the host's Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetwright.commands import parse_command
from fleetwright.errors import StepError
from fleetwright.listeners import installed
from fleetwright.registry import add_profile
from fleetwright.sessions import SessionEngine, SessionRequest
from fleetwright.sessions import observers as observers_module
from fleetwright.sessions.observers import PHASES, SESSION_OBSERVERS, SessionStart
from fleetwright.specs import validate_profile
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

LOGIN = parse_command(
    {
        "name": "obs-login",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/login"},
            {"fill": {"selector": "#user", "value": "{{ profile.name }}"}},
            {"fill": {"selector": "#password", "value": "pw"}},
            {"click": "#submit"},
        ],
    }
)
BROKEN = parse_command(
    {
        "name": "obs-broken",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/account"},
            {"click": {"selector": "#no-such-button", "timeout": 1}},
        ],
    }
)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


class Recorder:
    """An observer that writes down what it was told."""

    def __init__(self, start: SessionStart, heard: list[tuple[str, Any]]) -> None:
        self.heard = heard
        heard.append(("start", start))

    def phase(self, name: str, seconds: float) -> None:
        from fleetwright.observability.context import current_session_ids

        assert seconds >= 0
        self.heard.append(("phase", name))
        if name == "steps":  # what the JSON log format adds to the session's records
            self.heard.append(("ids", current_session_ids()))

    async def finished(self, result: Any) -> None:
        self.heard.append(("finished", (result.status, result.error_type)))


def test_the_metrics_and_event_observers_are_installed() -> None:
    from fleetwright.observability.sessions import observe_events, observe_metrics

    installed.cache_clear()
    found = installed(SESSION_OBSERVERS)
    assert observe_metrics in found and observe_events in found


def test_observers_hear_every_phase_and_the_outcome(
    prefect_api: str,
    home: Path,
    site: SiteServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fleetwright.observability.serve import host_registry

    heard: list[tuple[str, Any]] = []

    def broken(start: SessionStart) -> Any:
        raise RuntimeError("observer down")

    real = installed(SESSION_OBSERVERS)
    monkeypatch.setattr(
        observers_module,
        "installed",
        lambda group: (broken, lambda start: Recorder(start, heard), *real),
    )
    asyncio.run(add_profile(validate_profile({"name": "obs-p"})))

    async def go() -> None:
        async with SessionEngine() as engine:
            ok = await engine.run(
                SessionRequest(profile="obs-p", command=LOGIN, params={"base_url": site.url})
            )
            assert ok.status == "ok"
            with pytest.raises(StepError):
                await engine.run(
                    SessionRequest(profile="obs-p", command=BROKEN, params={"base_url": site.url})
                )

    with caplog.at_level(logging.WARNING, logger="fleetwright.sessions.observers"):
        asyncio.run(go())
    assert "failed to start" in caplog.text  # the broken observer, only logged

    starts = [v for k, v in heard if k == "start"]
    assert [(s.profile, s.command, s.proxy) for s in starts] == [
        ("obs-p", "obs-login", None),
        ("obs-p", "obs-broken", None),
    ]
    assert all(s.lease_wait >= 0 and s.run_id for s in starts)
    first = heard[: heard.index(("start", starts[1]))]
    second = heard[len(first) :]
    assert [v for k, v in first if k == "phase"] == ["launch", "steps", "save", "record"]
    ids = {"profile": "obs-p", "session": starts[0].run_id, "command": "obs-login"}
    assert [v for k, v in first if k == "ids"] == [ids]
    assert first[-1] == ("finished", ("ok", None))
    assert [v for k, v in second if k == "phase"] == ["launch", "record"]
    assert second[-1] == ("finished", ("failed", "StepError"))
    assert set(PHASES) == {"lease_wait", "launch", "steps", "save", "record"}

    # the installed metrics observer wrote the host's metrics folder
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in host_registry(home / "metrics", catalogue=False).collect()
        for s in family.samples
    }
    ok = (("command", "obs-login"), ("error_type", ""), ("status", "ok"))
    failed = (("command", "obs-broken"), ("error_type", "StepError"), ("status", "failed"))
    assert samples[("fleetwright_sessions_total", ok)] == 1.0
    assert samples[("fleetwright_sessions_total", failed)] == 1.0
    for phase, n in (("lease_wait", 2), ("launch", 2), ("steps", 1), ("save", 1), ("record", 2)):
        assert samples[("fleetwright_session_phase_seconds_count", (("phase", phase),))] == n
    assert samples[("fleetwright_sessions_active", ())] == 0.0

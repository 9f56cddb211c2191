"""SessionEngine on real Chromium, the demo site and the catalogue: leases, failures, state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Run
from fleetwright.commands import parse_command
from fleetwright.errors import ProfileBusyError, StepError
from fleetwright.registry import add_profile
from fleetwright.sessions import SessionEngine, SessionRequest, lease
from fleetwright.specs import validate_profile
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

LOGIN = parse_command(
    {
        "name": "login",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/login"},
            {"fill": {"selector": "#user", "value": "{{ profile.name }}"}},
            {"fill": {"selector": "#password", "value": "pw"}},
            {"click": "#submit"},
            {"extract": {"id": "who", "selector": "#who", "kind": "text"}},
        ],
    }
)
BROKEN_YAML = {
    "name": "broken",
    "version": "1",
    "params": {"base_url": {"type": "str"}},
    "steps": [
        {"goto": "{{ params.base_url }}/account"},
        {"click": {"selector": "#no-such-button", "timeout": 1}},
    ],
}
BROKEN = parse_command(BROKEN_YAML)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


def _profile(name: str) -> int:
    return int(asyncio.run(add_profile(validate_profile({"name": name})))["id"])


def _run_rows() -> list[Run]:
    with session_scope() as s:
        return list(s.scalars(select(Run).order_by(Run.id)))


def test_session_records_run_and_saves_state(prefect_api: str, home: Path, site) -> None:
    _profile("eng-ok")

    async def go() -> None:
        async with SessionEngine() as engine:
            result = await engine.run(
                SessionRequest(profile="eng-ok", command=LOGIN, params={"base_url": site.url})
            )
            assert result.status == "ok"
            assert result.outputs["who"]["text"] == "Signed in as eng-ok"
            assert result.state_version == 1
            # the saved login cookie comes back in the next session
            again = await engine.run(
                SessionRequest(profile="eng-ok", command=BROKEN, params={"base_url": site.url})
            )
            raise AssertionError(f"expected a failure, got {again}")

    with pytest.raises(StepError, match="#no-such-button"):
        asyncio.run(go())
    ok, failed = _run_rows()
    assert ok.status == "ok" and ok.ended_at is not None and ok.duration_ms
    assert failed.status == "failed" and failed.error_type == "StepError"
    assert "#no-such-button" in (failed.error or "")
    shots = [p for p in failed.artifacts.values() if p.endswith(".png")]
    assert shots and Path(shots[0]).exists()
    with session_scope() as s:
        row = s.scalar(select(Profile).where(Profile.name == "eng-ok"))
        assert row is not None
        assert row.state_version == 1  # the failed session did not save state
        assert row.lease_holder is None  # and gave its lease back


def test_busy_profile_waits_then_names_the_holder(
    prefect_api: str, home: Path, site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetwright.settings import reset_settings

    monkeypatch.setenv("FLEETWRIGHT_LEASE_WAIT", "1")
    reset_settings()
    profile_id = _profile("eng-busy")
    assert lease.acquire(profile_id, "flow-run-1234", timedelta(seconds=60))

    async def go() -> None:
        async with SessionEngine() as engine:
            await engine.run(
                SessionRequest(profile="eng-busy", command=LOGIN, params={"base_url": site.url})
            )

    with pytest.raises(ProfileBusyError, match="in use by run flow-run-1234"):
        asyncio.run(go())
    assert _run_rows() == []  # nothing started
    lease.release(profile_id, "flow-run-1234")


def test_expired_lease_of_a_dead_holder_is_taken_over(prefect_api: str, home: Path, site) -> None:
    profile_id = _profile("eng-dead")
    assert lease.acquire(profile_id, "dead-process", timedelta(milliseconds=200))
    assert not lease.acquire(profile_id, "someone-else", timedelta(seconds=5))

    async def go() -> str:
        await asyncio.sleep(0.3)
        async with SessionEngine() as engine:
            result = await engine.run(
                SessionRequest(profile="eng-dead", command=LOGIN, params={"base_url": site.url})
            )
            return result.status

    assert asyncio.run(go()) == "ok"


def test_two_sessions_on_one_profile_never_overlap(prefect_api: str, home: Path, site) -> None:
    _profile("eng-serial")

    async def go() -> list[Run]:
        async with SessionEngine() as engine:
            req = SessionRequest(profile="eng-serial", command=LOGIN, params={"base_url": site.url})
            await asyncio.gather(engine.run(req), engine.run(req))
        return _run_rows()

    first, second = asyncio.run(go())
    assert first.status == second.status == "ok"
    assert first.ended_at is not None
    assert second.started_at >= first.ended_at  # the second waited for the first's lease


def test_trace_modes_record_when_asked(prefect_api: str, home: Path, site) -> None:
    """Default on-retry: a first attempt records no trace (a failure still gets its
    screenshot), a retried attempt keeps one; on-failure keeps the failing session's trace;
    a command's own `trace:` setting is the default a request can override."""
    _profile("eng-trace")
    traced_command = parse_command({**BROKEN_YAML, "trace": "on-failure"})
    assert BROKEN.trace == "on-retry" and traced_command.trace == "on-failure"

    async def failed(req: SessionRequest) -> dict[str, str]:
        with pytest.raises(StepError) as caught:
            await engine.run(req)
        return caught.value.session_result.artifacts  # type: ignore[attr-defined,no-any-return]

    async def go() -> None:
        params = {"base_url": site.url}
        first = await failed(SessionRequest(profile="eng-trace", command=BROKEN, params=params))
        assert "failure" in first and "trace" not in first
        retried = await failed(
            SessionRequest(profile="eng-trace", command=BROKEN, params=params, attempt=2)
        )
        assert {"failure", "trace"} <= set(retried)
        own = await failed(
            SessionRequest(profile="eng-trace", command=traced_command, params=params)
        )
        assert {"failure", "trace"} <= set(own)
        off = await failed(
            SessionRequest(profile="eng-trace", command=traced_command, params=params, trace="off")
        )
        assert "trace" not in off
        ok = await engine.run(
            SessionRequest(profile="eng-trace", command=LOGIN, params=params, trace="on-failure")
        )
        assert "trace" not in ok.artifacts
        kept = await engine.run(SessionRequest(profile="eng-trace", command=LOGIN,
                                               params=params, trace="on"))  # fmt: skip
        assert Path(kept.artifacts["trace"]).stat().st_size > 0

    engine = SessionEngine()

    async def main() -> None:
        async with engine:
            await go()

    asyncio.run(main())
    rows = [r for r in _run_rows() if r.profile_name == "eng-trace"]
    assert [r.status for r in rows] == ["failed"] * 4 + ["ok"] * 2
    assert "trace" in rows[1].artifacts and "trace" not in rows[0].artifacts


def test_corrupt_saved_state_fails_the_run_and_frees_the_lease(
    prefect_api: str, home: Path, site
) -> None:
    from fleetwright.browser.state import StateStore
    from fleetwright.errors import StateError

    _profile("eng-corrupt")
    params = {"base_url": site.url}

    async def session() -> None:
        async with SessionEngine() as engine:
            await engine.run(SessionRequest(profile="eng-corrupt", command=LOGIN, params=params))

    asyncio.run(session())
    store = StateStore()
    current = store.versions("eng-corrupt")[0].path
    current.write_bytes(current.read_bytes()[:-3])
    with pytest.raises(StateError, match="version 1 of profile 'eng-corrupt' is corrupt"):
        asyncio.run(session())
    row = [r for r in _run_rows() if r.profile_name == "eng-corrupt"][-1]
    assert row.status == "failed" and row.error_type == "StateError" and row.ended_at
    with session_scope() as s:
        profile = s.scalar(select(Profile).where(Profile.name == "eng-corrupt"))
        assert profile is not None and profile.lease_holder is None
        assert profile.state_version == 1


def test_a_wrong_socks5_password_fails_naming_profile_and_proxy_and_counts(
    prefect_api: str, home: Path, site, microsocks: Any
) -> None:
    from fleetwright.catalogue.models import Proxy
    from fleetwright.errors import ProxyAuthError
    from fleetwright.registry import add_proxy

    spec = microsocks.spec("bad-socks").model_copy(update={"password": "not-the-password"})
    asyncio.run(add_proxy(spec))
    asyncio.run(add_profile(validate_profile({"name": "eng-auth", "proxy": "bad-socks"})))

    async def go() -> None:
        async with SessionEngine() as engine:
            await engine.run(
                SessionRequest(profile="eng-auth", command=LOGIN, params={"base_url": site.url})
            )

    with pytest.raises(ProxyAuthError) as info:
        asyncio.run(go())
    assert "'eng-auth'" in info.value.message and "'bad-socks'" in info.value.message
    assert "not-the-password" not in info.value.message
    (row,) = _run_rows()
    assert row.status == "failed" and row.error_type == "ProxyAuthError"
    with session_scope() as s:
        proxy = s.scalar(select(Proxy).where(Proxy.name == "bad-socks"))
        assert proxy is not None and proxy.error_score >= 3.0 and proxy.health == "quarantined"

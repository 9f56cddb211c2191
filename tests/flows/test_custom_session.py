"""A flow composed from the fine-grained session tasks gets what run-command gets: the proxy
the profile's pool chooses (the site sees the proxy's exit address), the SOCKS5 relay
released after the session, the proxy's health reported, and a failed run row (with the
lease given back) when a step fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from sqlalchemy import select, update

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, Run
from fleetwright.testing.proxies import MicroSocks, TinyProxy, free_port

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


@pytest.fixture(autouse=True)
def _prefect(prefect_api: str) -> str:
    """Profiles and proxies are blocks on the test Prefect server."""
    return prefect_api


def _add_proxy(spec: Any) -> None:
    from fleetwright.registry.proxies import add_proxy

    asyncio.run(add_proxy(spec))


def _profile(name: str, **fields: Any) -> str:
    from fleetwright.registry import import_profiles

    report = asyncio.run(import_profiles([("item", {"name": name, **fields})]))
    assert not report.errors, report.errors
    return name


def _runs(name: str) -> list[Run]:
    with session_scope() as s:
        return list(s.scalars(select(Run).where(Run.profile_name == name).order_by(Run.id)))


def _lease_holder(name: str) -> str | None:
    with session_scope() as s:
        return s.scalar(select(Profile.lease_holder).where(Profile.name == name))


def test_custom_flow_without_proxy(site, home: Path) -> None:
    from fleetwright.flows.custom_session import sign_in_and_check

    name = _profile("custom-direct")
    outputs = asyncio.run(sign_in_and_check(name, site.url))
    assert outputs["who"]["text"] == f"Signed in as {name}"
    assert outputs["client"]["text"] == "127.0.0.1"  # no proxy: the machine's own address
    (run,) = _runs(name)
    assert (run.status, run.proxy_name, run.command_name) == ("ok", None, "sign-in")
    assert run.flow_run_id is not None and run.task_run_id is not None
    assert _lease_holder(name) is None


def test_custom_flow_pool_profile_goes_through_the_pool_proxy(
    site, home: Path, tinyproxy: TinyProxy
) -> None:
    from fleetwright.flows.custom_session import sign_in_and_check

    _add_proxy(tinyproxy.spec("custom-tiny", pool="custom-pool"))
    with session_scope() as s:  # earlier failures the next good session clears
        s.execute(update(Proxy).where(Proxy.name == "custom-tiny").values(consecutive_failures=2))
    name = _profile("custom-pooled", proxy_pool="custom-pool")

    outputs = asyncio.run(sign_in_and_check(name, site.url))
    assert outputs["who"]["text"] == f"Signed in as {name}"
    assert outputs["client"]["text"] == "127.0.0.2"  # tinyproxy's exit address
    assert f"GET {site.url}/account" in tinyproxy.log_text()
    (run,) = _runs(name)
    assert (run.status, run.proxy_name) == ("ok", "custom-tiny")
    with session_scope() as s:
        proxy = s.scalar(select(Proxy).where(Proxy.name == "custom-tiny"))
        assert proxy is not None and proxy.consecutive_failures == 0  # health reported
    assert _lease_holder(name) is None


def test_custom_flow_socks5_relay_is_released(site, home: Path, microsocks: MicroSocks) -> None:
    from fleetwright.flows.custom_session import SIGN_IN
    from fleetwright.sessions import SessionEngine
    from fleetwright.tasks.sessions import (
        apply_proxy,
        begin_session,
        launch_profile,
        record_run,
        run_command_steps,
        save_profile_state,
        use_engine,
    )

    spec = microsocks.spec("custom-socks")
    _add_proxy(spec)
    name = _profile("custom-socks5", proxy="custom-socks")
    seen: dict[str, Any] = {}

    @flow
    async def through_socks() -> dict[str, Any]:
        engine = SessionEngine()
        use_engine(engine)
        try:
            session = await begin_session(name, SIGN_IN, {"base_url": site.url})
            config = await apply_proxy(session)
            seen["server"] = config.server if config else None
            seen["relay_user"] = config.username if config else None
            seen["during"] = engine.relays.users(spec)
            await launch_profile(session)
            result = await run_command_steps(session)
            await save_profile_state(session)
            record = await record_run(session)
            seen["after"] = engine.relays.users(spec)
            return {"client": result.outputs["client"]["text"], **record}
        finally:
            await engine.close()

    out = asyncio.run(through_socks())
    assert out["client"] == "127.0.0.3"  # microsocks' exit address, through the relay
    # the loopback relay: an HTTP proxy with credentials of its own, not the upstream's
    assert str(seen["server"]).startswith("http://127.0.0.1:")
    assert seen["relay_user"] and seen["relay_user"] != "fleet"
    assert (seen["during"], seen["after"]) == (1, 0)  # released when the session ended
    assert out["status"] == "ok" and out["proxy"] == "custom-socks"
    assert out["state_version"] is not None
    (run,) = _runs(name)
    assert (run.status, run.proxy_name) == ("ok", "custom-socks")


def test_custom_flow_failure_is_recorded_and_the_lease_released(site, home: Path) -> None:
    from fleetwright.flows.custom_session import sign_in_and_check

    name = _profile("custom-fails")
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: the goto step fails
    with pytest.raises(Exception) as raised:
        asyncio.run(sign_in_and_check(name, nowhere))
    (run,) = _runs(name)
    assert run.status == "failed" and run.ended_at is not None
    assert run.error and run.error_type and run.error_type != "Cancelled"
    assert str(raised.value).splitlines()[0] in run.error or run.error in str(raised.value)
    assert _lease_holder(name) is None


def test_custom_flow_own_check_failing_is_recorded(site, home: Path) -> None:
    """A failure in the flow's own code (not a step) is recorded the same way."""
    from fleetwright.flows.custom_session import SIGN_IN
    from fleetwright.sessions import SessionEngine
    from fleetwright.tasks.sessions import begin_session, record_run, run_command_steps, use_engine

    name = _profile("custom-own-check")

    @flow
    async def strict() -> None:
        engine = SessionEngine()
        use_engine(engine)
        try:
            session = await begin_session(name, SIGN_IN, {"base_url": site.url})
            try:
                await run_command_steps(session)  # launches the profile itself
                raise AssertionError("the page is not what this flow wanted")
            except BaseException as exc:
                await record_run(session, exc)
                raise
        finally:
            await engine.close()

    with pytest.raises(AssertionError):
        asyncio.run(strict())
    (run,) = _runs(name)
    assert (run.status, run.error_type) == ("failed", "AssertionError")
    assert "not what this flow wanted" in (run.error or "")
    assert run.outputs["who"]["text"] == f"Signed in as {name}"  # outputs kept
    assert _lease_holder(name) is None

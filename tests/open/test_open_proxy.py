"""An opened profile goes out through its proxy: a SOCKS5 proxy with credentials through the
loopback relay, the password never in the browser's argv; a fixed CDP port when asked; and
nothing of Chromium's own goes through it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwright.browser.procs import descendants
from fleetwright.sessions.opener import open_session
from fleetwright.testing.proxies import IPEchoServer, MicroSocks, TinyProxy, free_port
from fleetwright.testing.site import SiteServer

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


@pytest.fixture
def echo() -> Iterator[IPEchoServer]:
    with IPEchoServer() as server:
        yield server


@pytest.fixture
def microsocks() -> Iterator[MicroSocks]:
    with MicroSocks(username="fleet", password="socks-secret") as server:
        yield server


def test_socks5_relay_and_a_fixed_port(
    make_profile, echo: IPEchoServer, microsocks: MicroSocks
) -> None:
    from fleetwright.registry.proxies import add_proxy

    asyncio.run(add_proxy(microsocks.spec("socks")))
    name = make_profile("proxied", proxy="socks")
    port = free_port()

    async def visit() -> tuple[str, str, list[bytes]]:
        async with open_session(name, port=port) as opened:
            assert opened.proxy == "socks"
            page = await opened.context.new_page()
            await page.goto(echo.url + "/")
            seen = await page.inner_text("#ip")
            assert opened.browser_pid is not None
            argv = [
                Path(f"/proc/{pid}/cmdline").read_bytes()
                for pid in [opened.browser_pid, *descendants(opened.browser_pid)]
                if Path(f"/proc/{pid}/cmdline").exists()
            ]
            return seen, opened.ws_endpoint, argv

    before = echo.hits["127.0.0.1"]
    seen, ws, argv = asyncio.run(visit())
    assert seen == "127.0.0.3"  # microsocks' outgoing address: through the proxy
    assert echo.hits["127.0.0.1"] == before  # nothing went direct
    assert ws.startswith(f"ws://127.0.0.1:{port}/devtools/browser/")
    assert argv and not any(b"socks-secret" in a for a in argv)
    assert any(b"--remote-debugging-port" in a for a in argv)


def test_an_opened_profile_fails_over_as_a_run_does(
    make_profile, echo: IPEchoServer, microsocks: MicroSocks, tmp_path: Path
) -> None:
    """`profile open` claims a profile the way a run does: off a quarantined proxy onto
    another of its pool, the binding kept for the next run."""
    from datetime import timedelta

    from sqlalchemy import select

    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Proxy, utcnow
    from fleetwright.registry import get_profile
    from fleetwright.registry.proxies import add_proxy
    from fleetwright.testing.proxies import TinyProxy

    with TinyProxy(password="open-a-secret", workdir=tmp_path) as dead:
        asyncio.run(add_proxy(dead.spec("open-a", pool="open-fo")))
    asyncio.run(add_proxy(microsocks.spec("open-b", pool="open-fo")))
    name = make_profile("opened-mover", proxy="open-a", proxy_failover=True)
    with session_scope() as s:
        bad = s.scalar(select(Proxy).where(Proxy.name == "open-a"))
        assert bad is not None
        bad.health, bad.quarantined_until = "quarantined", utcnow() + timedelta(minutes=5)

    async def visit() -> tuple[str | None, str]:
        async with open_session(name) as opened:
            page = await opened.context.new_page()
            await page.goto(echo.url + "/")
            return opened.proxy, await page.inner_text("#ip")

    proxy, seen = asyncio.run(visit())
    assert (proxy, seen) == ("open-b", "127.0.0.3")  # through microsocks, the pool's other one
    record = get_profile(name)
    assert (record["proxy"], record["bound_proxy"]) == ("open-a", "open-b")
    # and, as for a run, the failover is an event on the profile (fleetwright.profile.failover)

    async def failover_events() -> list[dict]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            response = await client._client.post(
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["fleetwright.profile.failover"]},
                        "resource": {"id": [f"fleetwright.profile.{name}"]},
                    },
                    "limit": 10,
                },
            )
            response.raise_for_status()
            return list(response.json()["events"])

    deadline = time.monotonic() + 20
    while not (events := asyncio.run(failover_events())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert events and events[0]["payload"] == {"from": "open-a", "to": "open-b", "pool": "open-fo"}


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    (tmp_path / "tp").mkdir()
    with TinyProxy(username="fleet", password="open-bg-pw", workdir=tmp_path / "tp") as server:
        yield server


def test_an_opened_profile_sends_only_the_page_through_its_proxy(
    make_profile, site: SiteServer, tinyproxy: TinyProxy
) -> None:
    """Login form filled, then 15 s idle, then a reopen: the proxy logs only the site's host."""
    from fleetwright.registry.proxies import add_proxy

    asyncio.run(add_proxy(tinyproxy.spec("tiny")))
    name = make_profile("quiet-open", proxy="tiny", state_mode="persistent")
    own = f"127.0.0.1:{site.port}"

    async def visit() -> None:
        async with open_session(name) as opened:
            page = await opened.context.new_page()
            await page.goto(f"{site.url}/login")
            await page.fill("#user", "ada")
            await page.fill("#password", "pw")
            await page.click("#submit")
            await page.wait_for_url(f"{site.url}/account")
            await page.wait_for_timeout(15_000)

    for launch in ("first", "reopen"):
        asyncio.run(visit())
        hosts = re.findall(
            r"Request \(file descriptor \d+\): \S+ (?:https?://)?([^/\s]+)", tinyproxy.log_text()
        )
        assert own in hosts, (launch, hosts)
        assert set(hosts) == {own}, (launch, sorted(set(hosts) - {own}))

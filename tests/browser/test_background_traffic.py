"""Chromium's own background traffic through a profile's proxy, read from the proxy's log on
first launch and on relaunch: none for storage profiles; for persistent profiles, no
network-time queries (what remains is listed in docs/browser.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetwright.browser import BrowserPool, LaunchSpec, ProxyConfig
from fleetwright.testing.proxies import TinyProxy
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    (tmp_path / "tp").mkdir()
    with TinyProxy(username="fleet", password="bg-pw", workdir=tmp_path / "tp") as proxy:
        yield proxy


def _foreign(log: str, site: SiteServer) -> list[str]:
    """Lines of the proxy's log that are not the test site's own requests."""
    own = (f"127.0.0.1:{site.port}", f"http://127.0.0.1:{site.port}/")
    lines = [line for line in log.splitlines() if "Request (" in line]
    return [line for line in lines if not any(o in line for o in own)]


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_background_traffic_through_the_proxy(
    make_profile: Callable[..., str], site: SiteServer, tinyproxy: TinyProxy, mode: str
) -> None:
    proxy = ProxyConfig.build(
        server=f"http://127.0.0.1:{tinyproxy.port}", username="fleet", password="bg-pw"
    )
    name = make_profile(f"quiet-{mode}", state_mode=mode)
    spec = LaunchSpec(profile_name=name, state_mode=mode, proxy=proxy)
    pool = BrowserPool(browsers=1)
    try:
        for launch in ("first", "relaunch"):
            async with pool.session(spec) as s:
                await s.page.goto(f"{site.url}/login")
                await s.page.fill("#user", "ada")
                await s.page.fill("#password", "pw")
                await s.page.click("#submit")
                await s.page.wait_for_url(f"{site.url}/account")
                await s.page.wait_for_timeout(3000)  # give background requests time to start
                await s.save_state()
            log = tinyproxy.log_text()
            assert f"127.0.0.1:{site.port}" in log, launch  # the page did use the proxy
            foreign = _foreign(log, site)
            if mode == "storage":
                assert foreign == [], (launch, foreign)
            else:
                # Persistent profiles: the network-time query is gone; sign-in (accounts.google
                # .com) and an on-demand component check (update.googleapis.com) remain, see
                # docs/browser.md.
                assert not [line for line in foreign if "clients2.google.com" in line], foreign
    finally:
        await pool.close()

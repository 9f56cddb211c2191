"""Launch settings reach the page: fingerprint options and the proxy (a real tinyproxy with
BasicAuth); the proxy password never appears in any Chromium process's arguments."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwright.browser import BrowserPool, LaunchSpec, ProxyConfig
from fleetwright.browser.procs import descendants
from fleetwright.errors import ProxyAuthError, ProxyError
from fleetwright.specs import Fingerprint, Geolocation
from fleetwright.testing.proxies import TinyProxy
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser
SECRET = "s3cret-Proxy-pw"


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    (tmp_path / "tp").mkdir()
    with TinyProxy(username="fleet", password=SECRET, workdir=tmp_path / "tp") as proxy:
        yield proxy


def proxy_config(proxy: TinyProxy, *, password: str = SECRET) -> ProxyConfig:
    return ProxyConfig.build(
        server=f"http://127.0.0.1:{proxy.port}", username="fleet", password=password
    )


async def echo(pool: BrowserPool, spec: LaunchSpec, site: SiteServer) -> dict[str, object]:
    async with pool.session(spec) as s:
        await s.page.goto(f"{site.url}/ip")
        data: dict[str, object] = json.loads(await s.page.inner_text("body"))
        return data


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_fingerprint_applied(pool: BrowserPool, site: SiteServer, mode: str) -> None:
    fp = Fingerprint(
        user_agent="FleetwrightTest/1.0",
        viewport_width=1024,
        viewport_height=700,
        locale="de-DE",
        timezone="Asia/Tokyo",
        geolocation=Geolocation(latitude=48.1, longitude=11.6),
        color_scheme="dark",
        extra_headers={"X-Fleet": "yes"},
    )
    spec = LaunchSpec(
        profile_name=f"fp-{mode}", fingerprint=fp, state_mode=mode, restore_state=False
    )
    async with pool.session(spec) as s:
        await s.page.goto(f"{site.url}/ip")
        headers = json.loads(await s.page.inner_text("body"))["headers"]
        seen = await s.page.evaluate(
            """async () => {
              const pos = await new Promise((ok, bad) =>
                navigator.geolocation.getCurrentPosition(ok, bad, {timeout: 5000}));
              return {
                ua: navigator.userAgent, lang: navigator.language,
                tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
                w: innerWidth, h: innerHeight,
                dark: matchMedia('(prefers-color-scheme: dark)').matches,
                lat: pos.coords.latitude, lon: pos.coords.longitude,
              };
            }"""
        )
    assert headers["user-agent"] == "FleetwrightTest/1.0"
    assert headers["x-fleet"] == "yes"
    assert headers["accept-language"].startswith("de-DE")
    assert seen == {
        "ua": "FleetwrightTest/1.0",
        "lang": "de-DE",
        "tz": "Asia/Tokyo",
        "w": 1024,
        "h": 700,
        "dark": True,
        "lat": 48.1,
        "lon": 11.6,
    }


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_proxy_is_used_and_password_stays_out_of_argv(
    pool: BrowserPool, site: SiteServer, tinyproxy: TinyProxy, mode: str
) -> None:
    direct = LaunchSpec(profile_name=f"direct-{mode}", state_mode=mode, restore_state=False)
    proxied = direct.model_copy(
        update={"profile_name": f"proxied-{mode}", "proxy": proxy_config(tinyproxy)}
    )
    assert (await echo(pool, direct, site))["ip"] == "127.0.0.1"
    async with pool.session(proxied) as s:
        await s.page.goto(f"{site.url}/ip")
        assert json.loads(await s.page.inner_text("body"))["ip"] == "127.0.0.2"
        args = []
        for main in pool.browser_pids():
            for pid in [main, *descendants(main)]:
                with contextlib.suppress(OSError):
                    args.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        assert args and not any(SECRET.encode() in a for a in args)
    assert f"127.0.0.1:{site.port}" in tinyproxy.log_text()
    assert SECRET not in repr(proxied) and SECRET not in str(proxied.model_dump())


async def test_proxy_per_context_in_one_browser(
    home: object, site: SiteServer, tinyproxy: TinyProxy
) -> None:
    pool = BrowserPool(browsers=1)
    try:
        a = LaunchSpec(profile_name="via-proxy", proxy=proxy_config(tinyproxy), restore_state=False)
        b = LaunchSpec(profile_name="no-proxy", restore_state=False)
        async with pool.session(a) as sa, pool.session(b) as sb:
            assert sa.context.browser is sb.context.browser
            await sa.page.goto(f"{site.url}/ip")
            await sb.page.goto(f"{site.url}/ip")
            ips = [json.loads(await p.inner_text("body"))["ip"] for p in (sa.page, sb.page)]
        assert ips == ["127.0.0.2", "127.0.0.1"]
    finally:
        await pool.close()


async def test_wrong_proxy_password_fails_clearly(
    pool: BrowserPool, site: SiteServer, tinyproxy: TinyProxy
) -> None:
    spec = LaunchSpec(
        profile_name="badpw", proxy=proxy_config(tinyproxy, password="wrong"), restore_state=False
    )
    with pytest.raises(ProxyAuthError, match="refused the credentials of profile 'badpw'") as info:
        async with pool.session(spec) as s:
            await s.page.goto(f"{site.url}/ip")
    assert not info.value.retryable
    assert "wrong" not in str(info.value)


async def test_proxy_down_is_a_retryable_proxy_error(
    pool: BrowserPool, site: SiteServer, tinyproxy: TinyProxy
) -> None:
    tinyproxy.stop()
    spec = LaunchSpec(profile_name="down", proxy=proxy_config(tinyproxy), restore_state=False)
    with pytest.raises(ProxyError, match="check the proxy is up") as info:
        async with pool.session(spec) as s:
            await s.page.goto(f"{site.url}/ip")
    assert info.value.retryable


async def test_only_the_pages_own_requests_use_the_proxy(
    pool: BrowserPool, site: SiteServer, tinyproxy: TinyProxy
) -> None:
    spec = LaunchSpec(profile_name="quiet", proxy=proxy_config(tinyproxy), restore_state=False)
    async with pool.session(spec) as s:
        await s.page.goto(f"{site.url}/login")
        await s.page.fill("#user", "ada")  # filling forms used to wake autofill's servers
        await s.page.fill("#password", "pw")
        await s.page.click("#submit")
        await s.page.wait_for_url(f"{site.url}/account")
        await s.page.wait_for_timeout(1000)
    requests = [line for line in tinyproxy.log_text().splitlines() if "Request (" in line]
    assert any("POST" in line for line in requests)
    for line in requests:
        assert f" http://127.0.0.1:{site.port}/" in line, line

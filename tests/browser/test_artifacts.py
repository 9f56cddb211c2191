"""Artifacts: screenshots on request and on failure, traces on request or kept on failure only."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest

from fleetwright.browser import BrowserPool, LaunchSpec, ProxyConfig
from fleetwright.testing.proxies import TinyProxy
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser


def spec(name: str, **extra: object) -> LaunchSpec:
    return LaunchSpec.model_validate({"profile_name": name, "restore_state": False, **extra})


def assert_trace(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert "trace.trace" in names and "trace.network" in names


async def test_screenshot_and_trace_on_request(
    pool: BrowserPool, site: SiteServer, home: Path
) -> None:
    async with pool.session(spec("traced", trace=True, run_key="run-42")) as s:
        await s.page.goto(f"{site.url}/table")
        shot = await s.screenshot("table")
    assert shot == home / "artifacts" / "run-42" / "table.png"
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert_trace(s.artifact_paths["trace"])
    assert set(s.artifact_paths) == {"table", "trace"}


async def test_trace_on_failure_kept_only_when_failing(pool: BrowserPool, site: SiteServer) -> None:
    async with pool.session(spec("fine", trace_on_failure=True)) as ok:
        await ok.page.goto(f"{site.url}/")
    assert ok.artifact_paths == {}
    assert not ok.artifacts.root.exists(), "nothing written, no folder"
    with pytest.raises(ValueError):
        async with pool.session(spec("broken", trace_on_failure=True)) as bad:
            await bad.page.goto(f"{site.url}/flow/1")
            await bad.page.fill("#name", "Ada")
            raise ValueError("step failed")
    assert set(bad.artifact_paths) == {"failure", "trace"}
    assert_trace(bad.artifact_paths["trace"])


async def test_no_failure_screenshot_when_disabled(pool: BrowserPool, site: SiteServer) -> None:
    with pytest.raises(KeyError):
        async with pool.session(spec("quiet", screenshot_on_failure=False)) as s:
            await s.page.goto(f"{site.url}/")
            raise KeyError("x")
    assert s.artifact_paths == {}


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_a_trace_through_an_authenticated_proxy_keeps_no_credentials(
    pool: BrowserPool, site: SiteServer, tinyproxy: TinyProxy, mode: str
) -> None:
    """Playwright records each request's headers, Proxy-Authorization (Basic, base64 of
    user:password) included: the trace keeps `***` in its place."""
    proxy = ProxyConfig.build(
        server=f"http://127.0.0.1:{tinyproxy.port}", username="fleet", password="tiny-secret"
    )
    basic = base64.b64encode(b"fleet:tiny-secret")
    traced = spec(f"proxied-{mode}", trace=True, proxy=proxy, state_mode=mode)
    async with pool.session(traced) as s:
        await s.page.goto(f"{site.url}/table")
        await s.page.goto(f"{site.url}/login")  # sent with the credentials the 407 asked for
    assert f"127.0.0.1:{site.port}" in tinyproxy.log_text()  # it did go through the proxy
    with zipfile.ZipFile(s.artifact_paths["trace"]) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    assert any(b"Basic ***" in data for data in files.values())
    for name, data in files.items():
        assert basic not in data and b"tiny-secret" not in data, name

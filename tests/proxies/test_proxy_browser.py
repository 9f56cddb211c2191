"""Chromium through real proxies: tinyproxy with credentials, microsocks through the relay."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetwright.proxies.browser import browser_proxy, release_browser_proxy
from fleetwright.proxies.relay import RelayRegistry
from fleetwright.testing.proxies import IPEchoServer, MicroSocks, TinyProxy

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=os.environ["FLEETWRIGHT_CHROMIUM_EXECUTABLE"], args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def _visit(browser: Any, proxy: dict[str, str], url: str) -> str | None:
    context = await browser.new_context(proxy=proxy)
    try:
        page = await context.new_page()
        await page.goto(url)
        return await page.text_content("#ip")  # type: ignore[no-any-return]
    finally:
        await context.close()


async def test_chromium_through_tinyproxy_with_basic_auth(
    browser: Any, tinyproxy: TinyProxy, echo: IPEchoServer
) -> None:
    registry = RelayRegistry()
    spec = tinyproxy.spec("tiny")
    proxy = await browser_proxy(spec, registry=registry)
    assert proxy == {
        "server": f"http://127.0.0.1:{tinyproxy.port}",
        "username": "fleet",
        "password": "tiny-secret",
    }
    before = echo.hits
    assert await _visit(browser, proxy, echo.url) == "127.0.0.2"
    assert echo.hits["127.0.0.1"] == before["127.0.0.1"]  # nothing went direct
    assert f"GET {echo.url}" in tinyproxy.log_text()
    assert registry.users(spec) == 0


async def test_chromium_through_the_socks5_relay(
    browser: Any, microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    registry = RelayRegistry()
    spec = microsocks.spec("socks")
    first = await browser_proxy(spec, registry=registry)
    second = await browser_proxy(spec, registry=registry)  # a second session shares it
    assert first == second and set(first) == {"server", "username", "password"}
    assert registry.users(spec) == 2
    assert first["server"].startswith("http://127.0.0.1:")
    assert first["password"] != "socks-secret"  # the relay's own, not the upstream's
    before = echo.hits
    assert await _visit(browser, first, echo.url) == "127.0.0.3"
    after = echo.hits
    assert after["127.0.0.3"] > before["127.0.0.3"]
    assert after["127.0.0.1"] == before["127.0.0.1"]  # nothing went direct
    await release_browser_proxy(spec, registry=registry)
    await release_browser_proxy(spec, registry=registry)
    assert registry.users(spec) == 0

"""The loopback SOCKS5 relay: upstream authentication, sharing, a taken port, Chromium."""

from __future__ import annotations

import socket
from datetime import timedelta

import httpx
import pytest

from fleetwright.errors import ProxyError
from fleetwright.proxies.relay import RelayRegistry, SocksRelay, needs_relay
from fleetwright.testing.proxies import IPEchoServer, MicroSocks


def _via(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=url, timeout=5, trust_env=False)


async def test_direct_unauthenticated_connection_to_microsocks_is_refused(
    microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    before = echo.hits["127.0.0.3"]
    async with _via(f"socks5://127.0.0.1:{microsocks.port}") as client:
        with pytest.raises(httpx.ProxyError, match="NO ACCEPTABLE METHODS"):
            await client.get(echo.ip_url)
    assert echo.hits["127.0.0.3"] == before


async def test_relay_authenticates_upstream(microsocks: MicroSocks, echo: IPEchoServer) -> None:
    spec = microsocks.spec("socks")
    assert needs_relay(spec)
    relay = SocksRelay(spec)
    url = await relay.start()
    try:
        assert url.startswith("socks5://127.0.0.1:") and "@" not in url
        before = echo.hits["127.0.0.3"]
        async with _via(url) as client:  # no credentials on the local side
            response = await client.get(echo.ip_url)
        assert response.json() == {"ip": "127.0.0.3"}
        assert echo.hits["127.0.0.3"] == before + 1
        assert relay.stats.connections == 1 and relay.stats.failures == 0
    finally:
        await relay.stop()


async def test_relay_with_wrong_upstream_password_fails_the_connection(
    microsocks: MicroSocks, echo: IPEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    spec = microsocks.spec("socks").model_copy(update={"password": "not-the-password"})
    relay = SocksRelay(spec, connect_timeout=timedelta(seconds=3))
    url = await relay.start()
    try:
        async with _via(url) as client:
            with pytest.raises(httpx.ProxyError):
                await client.get(echo.ip_url)
        assert relay.stats.failures == 1
        assert "could not open" in caplog.text
        assert "not-the-password" not in caplog.text
    finally:
        await relay.stop()


async def test_relay_port_taken_is_a_clear_error(microsocks: MicroSocks) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ProxyError, match=f"relay port {port} on 127.0.0.1 is already in use"):
            await SocksRelay(microsocks.spec("socks"), port=port).start()


async def test_registry_shares_one_relay_per_upstream(
    microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    registry = RelayRegistry()
    spec = microsocks.spec("socks")
    first = await registry.acquire(spec)
    second = await registry.acquire(spec)
    assert first == second and registry.users(spec) == 2
    other = await registry.acquire(spec.model_copy(update={"name": "socks-2"}))
    assert other != first
    await registry.release(spec)
    async with _via(first) as client:  # still served for the remaining user
        assert (await client.get(echo.ip_url)).json() == {"ip": "127.0.0.3"}
    await registry.release(spec)
    assert registry.users(spec) == 0
    async with _via(first) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(echo.ip_url)
    await registry.close()

"""The loopback relay: upstream authentication, its own credentials (other local clients are
refused), sharing, a taken port, keep-alive for plain HTTP."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from fleetwright.errors import ProxyAuthError, ProxyError
from fleetwright.proxies.relay import RelayRegistry, SocksRelay, needs_relay
from fleetwright.testing.proxies import IPEchoServer, MicroSocks
from fleetwright.testing.site import serve_site


def _via(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=url, timeout=5, trust_env=False)


def _with_credentials(relay: SocksRelay) -> str:
    settings = relay.browser_proxy()
    host = settings["server"].removeprefix("http://")
    return f"http://{settings['username']}:{settings['password']}@{host}"


async def _raw(port: int, request: bytes) -> bytes:
    """Send `request` to the relay as any local process could; the reply's first bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    finally:
        writer.close()


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
        assert url.startswith("http://127.0.0.1:") and "@" not in url
        before = echo.hits["127.0.0.3"]
        async with _via(_with_credentials(relay)) as client:
            response = await client.get(echo.ip_url)
        assert response.json() == {"ip": "127.0.0.3"}
        assert echo.hits["127.0.0.3"] == before + 1
        # A CONNECT tunnel, as Chromium opens for https and websockets.
        target = echo.ip_url.removeprefix("http://").split("/", 1)[0]
        auth = base64.b64encode(f"{relay.username}:{relay.browser_proxy()['password']}".encode())
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n".encode()
            + b"Proxy-Authorization: Basic "
            + auth
            + b"\r\n\r\n"
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(f"GET /ip HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode())
        assert b'"127.0.0.3"' in await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        assert echo.hits["127.0.0.3"] == before + 2
        assert relay.stats.connections == 2 and relay.stats.failures == 0
    finally:
        await relay.stop()


async def test_another_local_client_is_refused(microsocks: MicroSocks, echo: IPEchoServer) -> None:
    """Without the relay's own credentials nothing reaches the authenticated upstream."""
    relay = SocksRelay(microsocks.spec("socks"))
    await relay.start()
    try:
        before = echo.hits["127.0.0.3"]
        target = echo.ip_url.removeprefix("http://").split("/", 1)[0]
        wrong = base64.b64encode(f"{relay.username}:guess".encode())
        for request in (
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(),
            f"GET {echo.ip_url} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(),
            f"CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Basic ".encode()
            + wrong
            + b"\r\n\r\n",
            b"\x05\x01\x00",  # a SOCKS5 greeting: the relay no longer speaks SOCKS5
        ):
            reply = await _raw(relay.port, request)
            assert not reply or reply.startswith((b"HTTP/1.1 407", b"HTTP/1.1 400")), reply
        async with _via(relay.url) as client:
            with pytest.raises(httpx.ProxyError):
                await client.get(echo.ip_url.replace("http://", "https://"))
            assert (await client.get(echo.ip_url)).status_code == 407
        assert echo.hits["127.0.0.3"] == before
        assert relay.stats.refused >= 4 and relay.stats.connections == 0
        # Every relay has credentials of its own.
        other = SocksRelay(microsocks.spec("socks"))
        await other.start()
        assert other.browser_proxy()["password"] != relay.browser_proxy()["password"]
        await other.stop()
    finally:
        await relay.stop()


async def test_relay_with_wrong_upstream_password_fails_the_connection(
    microsocks: MicroSocks, echo: IPEchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    spec = microsocks.spec("socks").model_copy(update={"password": "not-the-password"})
    relay = SocksRelay(spec, connect_timeout=timedelta(seconds=3))
    await relay.start()
    try:
        async with _via(_with_credentials(relay)) as client:
            assert (await client.get(echo.ip_url)).status_code == 502
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
    assert first is second and registry.users(spec) == 2
    other = await registry.acquire(spec.model_copy(update={"name": "socks-2"}))
    assert other is not first and other.port != first.port
    await registry.release(spec)
    async with _via(_with_credentials(first)) as client:  # still served for the remaining user
        assert (await client.get(echo.ip_url)).json() == {"ip": "127.0.0.3"}
    url = _with_credentials(first)
    await registry.release(spec)
    assert registry.users(spec) == 0
    async with _via(url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(echo.ip_url)
    await registry.close()


async def test_wrong_upstream_credentials_fail_up_front_as_proxy_auth_error(
    microsocks: MicroSocks,
) -> None:
    registry = RelayRegistry(connect_timeout=timedelta(seconds=3))
    spec = microsocks.spec("socks").model_copy(update={"password": "not-the-password"})
    with pytest.raises(
        ProxyAuthError, match=r"proxy 'socks' \(socks5://.*\) refused the credent"
    ) as auth:
        await registry.acquire(spec)
    assert "not-the-password" not in auth.value.message and not auth.value.retryable
    assert registry.users(spec) == 0
    microsocks.stop()
    with pytest.raises(ProxyError, match="is unreachable") as info:
        await registry.acquire(microsocks.spec("socks"))
    assert not isinstance(info.value, ProxyAuthError)


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = "fwboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"x" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def test_plain_http_keeps_one_upstream_connection_per_host(
    microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    """Requests on one browser connection to the same host:port share one upstream connection
    (one SOCKS5 handshake), bodies framed by Content-Length or chunks arrive whole, another
    host gets a connection of its own, and the relay's credentials never reach the site."""
    relay = SocksRelay(microsocks.spec("socks"))
    await relay.start()
    try:
        with serve_site() as site:
            async with _via(_with_credentials(relay)) as client:
                for _ in range(3):
                    seen = (await client.get(f"{site.url}/ip")).json()
                    assert seen["ip"] == "127.0.0.3"
                    assert not {"proxy-authorization", "proxy-connection"} & set(seen["headers"])
                body, content_type = _multipart(70_000)
                sent = await client.post(
                    f"{site.url}/upload", content=body, headers={"content-type": content_type}
                )
                assert "<span id=size>70000</span>" in sent.text

                async def chunks() -> AsyncIterator[bytes]:
                    for i in range(0, len(body), 9_000):
                        yield body[i : i + 9_000]

                chunked = client.build_request(
                    "POST", f"{site.url}/upload", content=chunks(),
                    headers={"content-type": content_type},
                )  # fmt: skip
                assert chunked.headers["transfer-encoding"] == "chunked"
                assert "<span id=size>70000</span>" in (await client.send(chunked)).text
                assert relay.stats.connections == 1  # one browser connection throughout
                assert (relay.stats.upstreams, relay.stats.reused) == (1, 4)
                # another host (httpx opens another proxy connection for it), then back again
                assert (await client.get(echo.ip_url)).json() == {"ip": "127.0.0.3"}
                assert (await client.get(f"{site.url}/ip")).json()["ip"] == "127.0.0.3"
                assert (relay.stats.upstreams, relay.stats.reused) == (2, 5)
                assert relay.stats.failures == 0
    finally:
        await relay.stop()


async def test_plain_http_the_upstream_hanging_up_closes_the_browser_connection(
    microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    """The IP echo answers HTTP/1.0 and hangs up: the relay hangs up too (the response ends
    with the connection), and the next request opens a fresh one."""
    relay = SocksRelay(microsocks.spec("socks"))
    await relay.start()
    try:
        async with _via(_with_credentials(relay)) as client:
            for _ in range(3):
                assert (await client.get(echo.ip_url)).json() == {"ip": "127.0.0.3"}
        assert relay.stats.upstreams == 3 and relay.stats.reused == 0
        assert relay.stats.connections == 3
    finally:
        await relay.stop()


async def test_plain_http_to_two_hosts_then_a_tunnel_on_one_connection(
    microsocks: MicroSocks,
) -> None:
    """One browser connection: a request to one site, one to another (a new upstream
    connection), one to the first again, then a CONNECT tunnel."""
    relay = SocksRelay(microsocks.spec("socks"))
    await relay.start()
    auth = base64.b64encode(f"{relay.username}:{relay.browser_proxy()['password']}".encode())
    try:
        with serve_site() as site, serve_site() as other:
            target = site.url.removeprefix("http://").rstrip("/")
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            for url in (site.url, other.url, site.url):
                writer.write(
                    f"GET {url}/ip HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n".encode()
                    + b"Proxy-Authorization: Basic "
                    + auth
                    + b"\r\n\r\n"
                )
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                assert b"127.0.0.3" in await reader.readexactly(length)
            assert relay.stats.upstreams == 3 and relay.stats.connections == 1
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.write(
                f"GET /ip HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()
            )
            assert b'"127.0.0.3"' in await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            assert relay.stats.upstreams == 4 and relay.stats.connections == 1
    finally:
        await relay.stop()


async def test_plain_http_a_bad_chunked_body_is_a_400_and_the_relay_keeps_serving(
    microsocks: MicroSocks,
) -> None:
    relay = SocksRelay(microsocks.spec("socks"))
    await relay.start()
    auth = base64.b64encode(f"{relay.username}:{relay.browser_proxy()['password']}".encode())
    try:
        with serve_site() as site:
            target = site.url.removeprefix("http://").rstrip("/")
            reply = await _raw(
                relay.port,
                f"POST {site.url}/upload HTTP/1.1\r\nHost: {target}\r\n".encode()
                + b"Proxy-Authorization: Basic "
                + auth
                + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            )
            assert reply.startswith(b"HTTP/1.1 400"), reply
            for _ in range(50):  # the connection's task ends and its upstream is closed
                if relay.stats.active == 0:
                    break
                await asyncio.sleep(0.05)
            assert relay.stats.active == 0
            async with _via(_with_credentials(relay)) as client:
                assert (await client.get(f"{site.url}/ip")).json()["ip"] == "127.0.0.3"
    finally:
        await relay.stop()

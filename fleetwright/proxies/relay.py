"""A loopback SOCKS5 relay for upstream proxies that need credentials Chromium cannot send.

Chromium refuses SOCKS5 with username/password. The relay listens on 127.0.0.1 without
authentication, and opens each connection through the upstream proxy with python-socks,
which does the upstream handshake and authentication. Sessions using the same upstream
share one relay (RelayRegistry, reference counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import struct
from dataclasses import dataclass
from datetime import timedelta

from python_socks import ProxyError as SocksProxyError
from python_socks import ProxyTimeoutError as SocksTimeoutError
from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy as SocksClient

from fleetwright.errors import ProxyError, redact_url
from fleetwright.specs import ProxySpec

__all__ = ["RelayRegistry", "SocksRelay", "needs_relay"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_TYPES = {"socks5": ProxyType.SOCKS5, "http": ProxyType.HTTP}
# SOCKS5 reply codes (RFC 1928)
_OK, _FAILURE, _REFUSED, _UNREACHABLE, _UNSUPPORTED = 0, 1, 5, 4, 7


def needs_relay(spec: ProxySpec) -> bool:
    """Whether Chromium needs the relay for this proxy (SOCKS5 with credentials)."""
    return spec.scheme == "socks5" and bool(spec.username)


@dataclass
class _Stats:
    connections: int = 0
    failures: int = 0
    active: int = 0


class SocksRelay:
    """One relay: a no-auth SOCKS5 server on 127.0.0.1 that tunnels through `upstream`."""

    def __init__(
        self,
        upstream: ProxySpec,
        *,
        port: int = 0,
        connect_timeout: timedelta = timedelta(seconds=15),
    ) -> None:
        if upstream.scheme not in _TYPES:
            raise ProxyError(
                f"proxy {upstream.name!r}: the relay speaks to socks5 or http upstreams, "
                f"not {upstream.scheme}",
                retryable=False,
            )
        self.upstream = upstream
        self._port = port
        self._timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = _Stats()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the relay is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """What the browser uses: socks5://127.0.0.1:PORT, no credentials."""
        return f"socks5://{_HOST}:{self.port}"

    async def start(self) -> str:
        if self._server is not None:
            return self.url
        try:
            self._server = await asyncio.start_server(
                self._handle, host=_HOST, port=self._port, reuse_address=True
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ProxyError(
                    f"relay port {self._port} on {_HOST} is already in use; free it, choose "
                    "another port, or leave the port unset for a random free one",
                    retryable=False,
                ) from None
            raise ProxyError(
                f"cannot open the relay on {_HOST}:{self._port}: {exc.strerror}",
                retryable=False,
            ) from None
        logger.info(
            "SOCKS5 relay on %s for proxy %s (%s)",
            self.url,
            self.upstream.name,
            self.upstream.server,
        )
        return self.url

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=2)
        logger.info("SOCKS5 relay for proxy %s stopped", self.upstream.name)

    def _client(self) -> SocksClient:
        spec = self.upstream
        return SocksClient(
            _TYPES[spec.scheme],
            spec.host,
            spec.port,
            username=spec.username,
            password=spec.password,
            rdns=True,
        )

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self.stats.active += 1
        try:
            target = await asyncio.wait_for(self._greet(reader, writer), timeout=10)
            if target is not None:
                await self._tunnel(target, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            self.stats.active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _greet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        """The no-auth SOCKS5 handshake with the browser; the requested (host, port)."""
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            await writer.drain()
            return None
        writer.write(b"\x05\x00")
        version, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("idna")
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            await self._reply(writer, _UNSUPPORTED)
            return None
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:  # CONNECT only
            await self._reply(writer, _UNSUPPORTED)
            return None
        return host, port

    async def _reply(self, writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
        await writer.drain()

    async def _tunnel(
        self, target: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = target
        try:
            sock = await self._client().connect(host, port, timeout=self._timeout.total_seconds())
        except (SocksProxyError, SocksTimeoutError, OSError) as exc:
            self.stats.failures += 1
            code = _UNREACHABLE if isinstance(exc, SocksTimeoutError) else _FAILURE
            if isinstance(exc, SocksProxyError) and exc.error_code in (_REFUSED, _UNREACHABLE):
                code = exc.error_code
            logger.warning(
                "Relay for proxy %s could not open %s:%s upstream: %s",
                self.upstream.name,
                host,
                port,
                redact_url(str(exc)),
            )
            await self._reply(writer, code)
            return
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        try:
            await self._reply(writer, _OK)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()


class RelayRegistry:
    """Relays shared by every session going through the same upstream, reference counted.

    Relays belong to the event loop that started them: use one registry per loop (worker).
    """

    def __init__(self, *, connect_timeout: timedelta = timedelta(seconds=15)) -> None:
        self._relays: dict[tuple[object, ...], tuple[SocksRelay, int]] = {}
        self._lock = asyncio.Lock()
        self._timeout = connect_timeout

    @staticmethod
    def _key(spec: ProxySpec) -> tuple[object, ...]:
        return (spec.name, spec.scheme, spec.host, spec.port, spec.username, spec.password)

    async def acquire(self, spec: ProxySpec, *, port: int = 0) -> str:
        """The local relay URL for `spec`, starting the relay on first use."""
        key = self._key(spec)
        async with self._lock:
            if key in self._relays:
                relay, refs = self._relays[key]
                self._relays[key] = (relay, refs + 1)
                return relay.url
            relay = SocksRelay(spec, port=port, connect_timeout=self._timeout)
            await relay.start()
            self._relays[key] = (relay, 1)
            return relay.url

    async def release(self, spec: ProxySpec) -> None:
        """Drop one user of the relay for `spec`; the last one stops it."""
        key = self._key(spec)
        async with self._lock:
            if key not in self._relays:
                return
            relay, refs = self._relays[key]
            if refs > 1:
                self._relays[key] = (relay, refs - 1)
                return
            del self._relays[key]
        await relay.stop()

    def users(self, spec: ProxySpec) -> int:
        """How many sessions hold the relay for `spec`."""
        entry = self._relays.get(self._key(spec))
        return entry[1] if entry else 0

    async def close(self) -> None:
        """Stop every relay (worker shutdown)."""
        async with self._lock:
            relays = [relay for relay, _ in self._relays.values()]
            self._relays.clear()
        for relay in relays:
            await relay.stop()

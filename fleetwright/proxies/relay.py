"""A loopback relay for upstream proxies that need credentials Chromium cannot send.

Chromium refuses SOCKS5 with username/password, but takes an HTTP proxy with them. So the relay
is an HTTP proxy on 127.0.0.1 (CONNECT tunnels and plain `GET http://...` requests) that
opens each connection through the upstream with python-socks, which does the upstream
handshake and authentication. Every relay makes up its own random username and password and
refuses any client without them (407): another local process cannot ride the authenticated
upstream through the loopback port. The browser gets them as Playwright proxy credentials,
over the driver pipe, never in argv. Sessions using the same upstream share one relay
(RelayRegistry, reference counted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from python_socks import ProxyError as SocksProxyError
from python_socks import ProxyTimeoutError as SocksTimeoutError
from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy as SocksClient

from fleetwright.errors import ProxyAuthError, ProxyError, redact_url
from fleetwright.specs import ProxySpec

__all__ = ["RelayRegistry", "SocksRelay", "check_socks_credentials", "needs_relay"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_TYPES = {"socks5": ProxyType.SOCKS5, "http": ProxyType.HTTP}
_HEAD_LIMIT = 64 * 1024
_AUTH_TRIES = 3
_DRAIN_S = 5.0
_HOP_HEADERS = frozenset(
    {b"proxy-authorization", b"proxy-connection", b"connection", b"keep-alive", b"te", b"trailer"}
)


def needs_relay(spec: ProxySpec) -> bool:
    """Whether Chromium needs the relay for this proxy (SOCKS5 with credentials)."""
    return spec.scheme == "socks5" and bool(spec.username)


@dataclass
class _Stats:
    connections: int = 0
    failures: int = 0
    active: int = 0
    refused: int = 0
    #: connections opened through the upstream, and plain-HTTP requests sent on one already open
    upstreams: int = 0
    reused: int = 0


class _BadRequest(Exception):
    """A client request the relay cannot serve (answered with `status`)."""

    def __init__(self, status: bytes) -> None:
        super().__init__(status.decode())
        self.status = status


def _response(status: bytes, *extra: bytes, close: bool = True) -> bytes:
    lines = [b"HTTP/1.1 " + status, *extra, b"Content-Length: 0"]
    lines.append(b"Connection: close" if close else b"Connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _split_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """Method, target and headers of a request head."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _BadRequest(b"400 Bad Request")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise _BadRequest(b"400 Bad Request")
        headers.append((name.strip(), value.strip()))
    return parts[0], parts[1], headers


def _host_port(authority: str, default: int) -> tuple[str, int]:
    parsed = urlsplit(f"//{authority}")
    try:
        port = parsed.port or default
    except ValueError:
        raise _BadRequest(b"400 Bad Request") from None
    if not parsed.hostname:
        raise _BadRequest(b"400 Bad Request")
    return parsed.hostname, port


class SocksRelay:
    """One relay: an HTTP proxy on 127.0.0.1, with credentials of its own, that tunnels every
    connection through `upstream` (SOCKS5 or HTTP, authenticated by python-socks)."""

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
        #: The relay's own credentials: random per relay, only ever handed to its browsers.
        self.username = f"relay-{secrets.token_hex(4)}"
        self._password = secrets.token_urlsafe(24)
        self._expected = b"Basic " + base64.b64encode(f"{self.username}:{self._password}".encode())

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the relay is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """The relay's address: http://127.0.0.1:PORT (credentials go separately)."""
        return f"http://{_HOST}:{self.port}"

    def browser_proxy(self) -> dict[str, str]:
        """Playwright `proxy=` settings for this relay, with its credentials."""
        return {"server": self.url, "username": self.username, "password": self._password}

    async def start(self) -> str:
        if self._server is not None:
            return self.url
        try:
            self._server = await asyncio.start_server(
                self._handle, host=_HOST, port=self._port, reuse_address=True, limit=_HEAD_LIMIT
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
            "Relay on %s for proxy %s (%s)",
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
        logger.info("Relay for proxy %s stopped", self.upstream.name)

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
        self.stats.active += 1
        try:
            request = await asyncio.wait_for(self._authenticate(reader, writer), timeout=10)
            if request is not None:
                self.stats.connections += 1
                method, target, headers = request
                if method == b"CONNECT":
                    await self._tunnel(target, reader, writer)
                else:
                    await self._forward_http(method, target, headers, reader, writer)
        except _BadRequest as exc:
            with contextlib.suppress(Exception):
                writer.write(_response(exc.status))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that hung up mid-request, or sent an oversized head
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self.stats.active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name.lower() == b"proxy-authorization":
                return hmac.compare_digest(value, self._expected)
        return False

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
        """Read requests until one carries the relay's credentials (407 to the others)."""
        for attempt in range(_AUTH_TRIES):
            first = await reader.readexactly(1)
            if not first.isalpha():  # not HTTP (a SOCKS greeting, TLS): answer at once
                raise _BadRequest(b"400 Bad Request")
            head = first + await reader.readuntil(b"\r\n\r\n")
            method, target, headers = _split_head(head)
            if self._authorized(headers):
                return method, target, headers
            self.stats.refused += 1
            last = attempt == _AUTH_TRIES - 1
            writer.write(
                _response(
                    b"407 Proxy Authentication Required",
                    b'Proxy-Authenticate: Basic realm="fleetwright-relay"',
                    close=last,
                )
            )
            await writer.drain()
            if _has_body(headers):
                return None  # a refused request with a body: do not read it, hang up
        logger.warning(
            "Relay for proxy %s refused a client without its credentials", self.upstream.name
        )
        return None

    async def _open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to host:port through the upstream; None (and 502/504 answered to the
        client) when the upstream cannot open it."""
        try:
            sock = await self._client().connect(host, port, timeout=self._timeout.total_seconds())
        except (SocksProxyError, SocksTimeoutError, OSError) as exc:
            self.stats.failures += 1
            logger.warning(
                "Relay for proxy %s could not open %s:%s upstream: %s",
                self.upstream.name,
                host,
                port,
                redact_url(str(exc)),
            )
            status = (
                b"504 Gateway Timeout"
                if isinstance(exc, SocksTimeoutError)
                else (b"502 Bad Gateway")
            )
            writer.write(_response(status))
            await writer.drain()
            return None
        self.stats.upstreams += 1
        return await asyncio.open_connection(sock=sock)

    async def _tunnel(
        self, target: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = _host_port(target.decode("latin-1"), 443)
        opened = await self._open(host, port, writer)
        if opened is None:
            return
        up_reader, up_writer = opened
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    async def _forward_http(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Pass plain-HTTP requests on, keeping the browser's connection and the upstream one
        open between requests to the same host:port (HTTP/1.1 keep-alive), as Chromium does
        with a SOCKS5 proxy of its own: one upstream handshake per connection, not per request.

        Responses are piped as they come; the browser sends its next request only once it has
        the whole response, so a request for another host:port closes the upstream connection
        and opens a new one. When the upstream hangs up, so does the relay (the response may
        end with the connection)."""
        up: tuple[tuple[str, int], asyncio.StreamWriter, asyncio.Future[None]] | None = None
        head: asyncio.Future[bytes] | None = None
        try:
            while True:
                if method == b"CONNECT":  # a tunnel asked for after plain requests
                    if up is not None:
                        await _close_upstream(up[1], up[2])
                        up = None
                    await self._tunnel(target, reader, writer)
                    return
                url = urlsplit(target.decode("latin-1"))
                if url.scheme != "http" or not url.netloc:
                    raise _BadRequest(b"400 Bad Request")
                where = _host_port(url.netloc, 80)
                if up is None or up[0] != where or up[2].done():
                    if up is not None:
                        await _close_upstream(up[1], up[2])
                        up = None
                    opened = await self._open(*where, writer)
                    if opened is None:
                        return
                    up_reader, up_writer = opened
                    up = (where, up_writer, asyncio.ensure_future(_pump(up_reader, writer)))
                else:
                    self.stats.reused += 1
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                kept = [(n, v) for n, v in headers if n.lower() not in _HOP_HEADERS]
                lines = [method + b" " + path.encode("latin-1") + b" HTTP/1.1"]
                lines += [n + b": " + v for n, v in kept]
                if _wants_close(headers):
                    lines.append(b"Connection: close")
                up[1].write(b"\r\n".join(lines) + b"\r\n\r\n")
                await _copy_body(headers, reader, up[1])
                await up[1].drain()
                # the next request on this connection, unless the upstream hangs up first
                head = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
                either: list[asyncio.Future[Any]] = [head, up[2]]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not head.done():
                    return  # the upstream hung up
                read, head = head, None
                try:
                    method, target, headers = _split_head(read.result())
                except asyncio.IncompleteReadError:
                    # the browser is done sending: let the upstream finish its answer
                    with contextlib.suppress(Exception):
                        if up[1].can_write_eof():
                            up[1].write_eof()
                    await asyncio.wait([up[2]], timeout=_DRAIN_S)
                    return
        finally:
            if head is not None:
                head.cancel()
                with contextlib.suppress(BaseException):
                    await head
            if up is not None:
                await _close_upstream(up[1], up[2])


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Upstream bytes to the browser, until the upstream hangs up (no EOF passed on: the
    relay closes the browser's connection itself)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()


async def _close_upstream(up_writer: asyncio.StreamWriter, pump: asyncio.Future[None]) -> None:
    pump.cancel()
    with contextlib.suppress(BaseException):
        await pump
    up_writer.close()
    with contextlib.suppress(Exception):
        await up_writer.wait_closed()


def _wants_close(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() in (b"connection", b"proxy-connection") and b"close" in value.lower():
            return True
    return False


async def _copy_body(
    headers: list[tuple[bytes, bytes]], src: asyncio.StreamReader, dst: asyncio.StreamWriter
) -> None:
    """A request's body from the browser to the upstream, framed by its Content-Length or
    chunked encoding (nothing when it has neither)."""
    length, chunked = 0, False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"content-length":
            if not value.isdigit():
                raise _BadRequest(b"400 Bad Request")
            length = int(value)
    if chunked:
        while True:
            line = await src.readuntil(b"\r\n")
            dst.write(line)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(b"400 Bad Request") from None
            if size == 0:
                while (trailer := await src.readuntil(b"\r\n")) != b"\r\n":
                    dst.write(trailer)
                dst.write(trailer)
                return
            await _copy_exactly(src, dst, size + 2)  # the chunk and its CRLF
    elif length:
        await _copy_exactly(src, dst, length)


async def _copy_exactly(src: asyncio.StreamReader, dst: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        data = await src.read(min(n, 65536))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        dst.write(data)
        await dst.drain()
        n -= len(data)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length" and value != b"0"):
            return True
    return False


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


async def check_socks_credentials(spec: ProxySpec, *, timeout: timedelta) -> None:
    """Authenticate to the SOCKS5 upstream and hang up (RFC 1928/1929: greeting and
    username/password only, no CONNECT), so wrong credentials fail the session up front as a
    ProxyAuthError naming the proxy instead of as a failed tunnel later."""
    if spec.scheme != "socks5" or not spec.username:
        return
    where = f"proxy {spec.name!r} ({spec.server})"
    if len(spec.username.encode()) > 255 or len((spec.password or "").encode()) > 255:
        raise ProxyAuthError(f"{where}: SOCKS5 usernames and passwords are at most 255 bytes")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(spec.host, spec.port), timeout.total_seconds()
        )
    except (OSError, TimeoutError):
        raise ProxyError(
            f"{where} is unreachable; check that it is running and the host/port are right"
        ) from None
    try:
        user, password = spec.username.encode(), (spec.password or "").encode()
        writer.write(b"\x05\x01\x02")
        await writer.drain()
        _, method = await asyncio.wait_for(reader.readexactly(2), timeout.total_seconds())
        if method != 2:
            raise ProxyAuthError(
                f"{where} does not accept username/password authentication (SOCKS5); "
                "fix the proxy's settings or its Proxy block"
            )
        writer.write(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
        await writer.drain()
        _, status = await asyncio.wait_for(reader.readexactly(2), timeout.total_seconds())
        if status != 0:
            raise ProxyAuthError(
                f"{where} refused the credentials for user {spec.username!r} (SOCKS5); "
                "fix the username/password in its Proxy block"
            )
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        raise ProxyError(
            f"{where} dropped the SOCKS5 handshake; check that it is a SOCKS5 proxy"
        ) from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


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

    async def acquire(self, spec: ProxySpec, *, port: int = 0) -> SocksRelay:
        """The local relay for `spec`, started on first use."""
        key = self._key(spec)
        async with self._lock:
            if key in self._relays:
                relay, refs = self._relays[key]
                self._relays[key] = (relay, refs + 1)
                return relay
            await check_socks_credentials(spec, timeout=self._timeout)
            relay = SocksRelay(spec, port=port, connect_timeout=self._timeout)
            await relay.start()
            self._relays[key] = (relay, 1)
            return relay

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

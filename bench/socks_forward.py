"""What a user without Fleetwright runs so that Chromium (which cannot authenticate to SOCKS5)
can use an authenticated SOCKS5 proxy: a local SOCKS5 server without authentication that
forwards every connection through the upstream proxy with username and password (RFC 1929).
The bare side of the bench's SOCKS5 variant points `new_context(proxy=...)` at it.

    FW_UPSTREAM_USER=... FW_UPSTREAM_PASSWORD=... \\
        python -m bench.socks_forward --port 1081 --upstream 127.0.0.1:1080

The credentials come from the environment, never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import struct

__all__ = ["main"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()


async def _serve_one(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
    user: bytes,
    password: bytes,
) -> None:
    try:
        _, n = await reader.readexactly(2)
        await reader.readexactly(n)
        writer.write(b"\x05\x00")  # no authentication towards the browser
        head = await reader.readexactly(4)
        atyp = head[3]
        if atyp == 1:
            addr = await reader.readexactly(4)
        elif atyp == 3:
            addr = bytes([(await reader.readexactly(1))[0]])
            addr += await reader.readexactly(addr[0])
        else:
            addr = await reader.readexactly(16)
        port = await reader.readexactly(2)
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        up_writer.write(b"\x05\x01\x02")
        await up_reader.readexactly(2)
        up_writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        if (await up_reader.readexactly(2))[1] != 0:
            raise ConnectionError("upstream refused the credentials")
        up_writer.write(b"\x05\x01\x00" + bytes([atyp]) + addr + port)
        reply = await up_reader.readexactly(4)
        skip = {1: 4, 4: 16}.get(reply[3])
        if skip is None:
            skip = (await up_reader.readexactly(1))[0]
        await up_reader.readexactly(skip + 2)
        writer.write(reply[:2] + b"\x00\x01" + bytes(4) + struct.pack("!H", 0))
        await writer.drain()
        if reply[1] != 0:
            raise ConnectionError("upstream could not connect")
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _main(port: int, upstream: tuple[str, int]) -> None:
    user = os.environ["FW_UPSTREAM_USER"].encode()
    password = os.environ["FW_UPSTREAM_PASSWORD"].encode()
    server = await asyncio.start_server(
        lambda r, w: _serve_one(r, w, upstream, user, password), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Unauthenticated local SOCKS5 forwarder.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port of the SOCKS5 proxy")
    args = parser.parse_args(argv)
    host, _, up_port = args.upstream.rpartition(":")
    asyncio.run(_main(args.port, (host, int(up_port))))


if __name__ == "__main__":
    main()

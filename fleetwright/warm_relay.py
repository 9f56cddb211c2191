"""`run --now` through a warm worker on the same host, without importing Prefect in the CLI.

Submitting a session to warm workers takes Prefect's client (`apply_async`), and importing
Prefect costs a new process 1.3–5 s on 2 cores: more than the session itself. A warm worker
already has Prefect, the catalogue and the session task imported, so it also listens on a Unix
socket in a private folder of the Fleetwright home; `fleetwright run NAME --now` on the same
host sends it the run as typed (command, selection, parameters) and reads the outcomes back,
one JSON line per session. The worker plans the run as the CLI would (same checks, same
one-line errors) and submits the sessions with `apply_async` exactly as the CLI's own warm path
does: every session is still a `run-profile-session` task run on the Prefect server, taken by
any warm worker, visible in the UI.

The CLI uses a worker's socket only when that worker talks to the same Prefect API and the
same catalogue as the CLI would (the worker checks both and declines otherwise), and falls back
to submitting through Prefect itself when no worker on this host answers. The socket folder is
0700 and each socket 0600: only the home's owner can connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwright.errors import FleetwrightError

__all__ = [
    "PROTOCOL",
    "RelayDeclined",
    "WarmRelayServer",
    "relay_dir",
    "relay_sockets",
    "run_via_relay",
]

logger = logging.getLogger("fleetwright.worker")

PROTOCOL = 1
# sun_path holds 108 bytes on Linux (104 on macOS); keep well below both
_MAX_SOCKET_PATH = 100
_LINE_LIMIT = 1 << 24  # one session's outcome (outputs included) per line


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def relay_dir(home: Path) -> Path:
    """Where this host's warm workers put their sockets for `home`: `<home>/run`, or a private
    folder in the temp dir named after the home when that path would be too long for a socket."""
    folder = home / "run"
    if len(str(folder / f"warm-{_host_tag()}-9999999.sock")) <= _MAX_SOCKET_PATH:
        return folder
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fleetwright-{os.getuid()}-{digest}"


def _socket_path(home: Path) -> Path:
    return relay_dir(home) / f"warm-{_host_tag()}-{os.getpid()}.sock"


def relay_sockets(home: Path) -> list[Path]:
    """This host's warm-worker sockets for `home`, newest first."""
    folder = relay_dir(home)
    try:
        found = list(folder.glob(f"warm-{_host_tag()}-*.sock"))
    except OSError:
        return []
    return sorted(found, key=lambda p: _mtime(p), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def catalogue_key(url: str) -> str:
    """What the two sides compare to tell they use one catalogue (the URL may hold a password,
    so it never goes over the socket itself)."""
    return hashlib.sha256(url.encode()).hexdigest()


# -- the CLI side ---------------------------------------------------------------------------


class RelayDeclined(Exception):
    """No warm worker on this host can take the run: submit it through Prefect instead."""


@dataclass(kw_only=True)
class RelayStart:
    """What the worker accepted: the fleet id and how many sessions will follow."""

    fleet_id: str
    command: str
    profiles: int


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        from fleetwright.observability.processes import alive  # only on this rare path

        pid = _pid_of(path)
        if pid is not None and not alive(str(pid)):
            with contextlib.suppress(OSError):
                path.unlink()  # a worker that was killed left it behind
        return None
    return sock


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    reader = sock.makefile("rb")
    try:
        for raw in reader:
            if raw.strip():
                yield json.loads(raw)
    finally:
        reader.close()


def run_via_relay(
    home: Path,
    *,
    api_url: str,
    catalogue_url: str,
    command: str,
    profiles: list[str],
    tags: list[str],
    all_active: bool,
    params: list[str],
    version: str | None,
    concurrency: int,
    trace: str | None,
) -> Iterator[RelayStart | dict[str, Any]]:
    """Send the run to a warm worker on this host: yields a RelayStart, then each session's
    outcome (a SessionRow as a dict) as it ends. RelayDeclined (before anything is yielded)
    when no worker here can take it; the run's own one-line error as a FleetwrightError."""
    body = {
        "fleetwright": PROTOCOL,
        "api_url": api_url,
        "catalogue": catalogue_key(catalogue_url),
        "command": command,
        "profiles": profiles,
        "tags": tags,
        "all_active": all_active,
        "params": params,
        "version": version,
        "concurrency": concurrency,
        "trace": trace,
    }
    payload = (json.dumps(body) + "\n").encode()
    reasons: list[str] = []
    for path in relay_sockets(home):
        sock = _connect(path)
        if sock is None:
            continue
        with sock:
            try:
                sock.sendall(payload)
                lines = _lines(sock)
                first = next(lines, None)
            except (OSError, ValueError) as exc:
                reasons.append(f"{path.name}: {exc}")
                continue
            if first is None:
                reasons.append(f"{path.name}: closed")
                continue
            if "decline" in first:
                reasons.append(str(first["decline"]))
                continue
            if "error" in first:
                raise FleetwrightError(str(first["error"]))
            accepted = first["accepted"]
            yield RelayStart(
                fleet_id=str(accepted["fleet_id"]),
                command=str(accepted["command"]),
                profiles=int(accepted["profiles"]),
            )
            seen = 0
            for message in lines:
                if "row" in message:
                    seen += 1
                    yield dict(message["row"])
                elif "error" in message:
                    raise FleetwrightError(str(message["error"]))
                elif message.get("done"):
                    return
            raise FleetwrightError(
                f"the warm worker stopped before the run ended ({seen} of "
                f"{accepted['profiles']} sessions reported); its task runs are in the Prefect UI"
            )
    raise RelayDeclined("; ".join(reasons) or "no warm worker listens on this host")


# -- the worker side ------------------------------------------------------------------------


class WarmRelayServer:
    """The warm worker's socket: takes runs from `run --now` on this host (see the module)."""

    def __init__(self, *, home: Path, api_url: str, catalogue_url: str) -> None:
        self.home = home
        self.api_url = api_url
        self.catalogue = catalogue_key(catalogue_url)
        self.path = _socket_path(home)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> WarmRelayServer:
        from fleetwright.private import private_dir

        private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # this pid's socket from a worker that was killed
        previous = os.umask(0o177)  # the socket is created 0600
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, path=str(self.path), limit=_LINE_LIMIT
            )
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        logger.info("taking `run --now` from this host on %s", self.path)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                body = json.loads(line)
            except ValueError:
                await _send(writer, {"decline": "not a Fleetwright run request"})
                return
            reason = self._mismatch(body)
            if reason:
                await _send(writer, {"decline": reason})
                return
            serve = asyncio.ensure_future(self._serve(body, writer))
            gone = asyncio.ensure_future(reader.read())  # EOF: the CLI was stopped
            await asyncio.wait({serve, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not serve.done():
                serve.cancel()
            gone.cancel()
            outcome, _ = await asyncio.gather(serve, gone, return_exceptions=True)
            if isinstance(outcome, Exception) and not isinstance(outcome, ConnectionError):
                logger.error(
                    "a `run --now` from this host failed in the worker: %s: %s",
                    type(outcome).__name__, outcome,
                )  # fmt: skip
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _mismatch(self, body: dict[str, Any]) -> str | None:
        if body.get("fleetwright") != PROTOCOL:
            return f"protocol {body.get('fleetwright')!r}, this worker speaks {PROTOCOL}"
        if body.get("api_url") != self.api_url:
            return "this warm worker uses another Prefect API"
        if body.get("catalogue") != self.catalogue:
            return "this warm worker uses another catalogue"
        return None

    async def _serve(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from fleetwright.commands.models import check_trace_mode
        from fleetwright.fleet.plan import parse_params, plan_run
        from fleetwright.fleet.warm import astream_warm

        try:
            check_trace_mode(body.get("trace"))
            plan = await asyncio.to_thread(
                plan_run,
                str(body["command"]),
                profiles=[str(p) for p in body.get("profiles") or []],
                tags=[str(t) for t in body.get("tags") or []],
                all_active=bool(body.get("all_active")),
                params=parse_params([str(p) for p in body.get("params") or []]),
                version=body.get("version"),
            )
        except FleetwrightError as exc:
            await _send(writer, {"error": exc.message, "type": type(exc).__name__})
            return
        import uuid

        fleet_id = str(uuid.uuid4())
        count = len(plan.profiles)
        await _send(
            writer,
            {"accepted": {"fleet_id": fleet_id, "command": plan.command.name, "profiles": count}},
        )
        stream: AsyncIterator[Any] = astream_warm(
            plan,
            concurrency=max(1, int(body.get("concurrency") or 4)),
            fleet_id=fleet_id,
            trace=body.get("trace"),
        )
        try:
            async for row in stream:
                await _send(writer, {"row": row.as_dict()})
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        await _send(writer, {"done": True})


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write((json.dumps(message, default=str) + "\n").encode())
    await writer.drain()

"""`fleetwright profile open NAME` / `profile close NAME`: hand a managed profile to any tool."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import timedelta
from typing import Annotated

import typer

from fleetwright.cli.output import err_console, print_json

__all__ = ["close", "open_"]


def open_(
    name: Annotated[str, typer.Argument(help="The profile to open.")],
    headed: Annotated[
        bool, typer.Option("--headed", help="Show a window (needs a display, e.g. Xvfb).")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="CDP port on 127.0.0.1; default a random one.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Close (and save) after this many seconds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines for scripts.")] = False,
) -> None:
    """Open a profile (fingerprint, proxy, saved state) and print its CDP websocket endpoint.

    Stays open until the browser is closed, Ctrl-C, `fleetwright profile close NAME` or the
    timeout; then saves the state as a new version and releases the profile. The endpoint has
    no authentication: it listens on 127.0.0.1 only.
    """
    from fleetwright.sessions.opener import open_session

    limit = timedelta(seconds=timeout) if timeout is not None else None

    async def run() -> dict[str, object]:
        async with open_session(name, headed=headed, port=port, timeout=limit) as opened:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, opened.request_close)
            if as_json:
                sys.stdout.write(json.dumps({"event": "opened", **opened.as_dict()}) + "\n")
            else:
                sys.stdout.write(opened.ws_endpoint + "\n")
                err_console.print(
                    f"profile {name} is open ({opened.state_mode}"
                    f"{', headed' if headed else ''}); CDP on 127.0.0.1:{opened.port} — "
                    f"close the browser, press Ctrl-C or run `fleetwright profile close {name}`",
                    highlight=False,
                    soft_wrap=True,
                )
            sys.stdout.flush()
            opened.reason = await opened.wait(limit)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return {"event": "closed", **opened.as_dict(), "reason": opened.reason}

    result = asyncio.run(run())
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        err_console.print(_summary(result), highlight=False, soft_wrap=True)
    if result.get("outcome") != "saved":
        raise typer.Exit(1)


def _summary(result: dict[str, object]) -> str:
    name, reason = result["profile"], result.get("reason")
    if result.get("outcome") == "saved":
        return f"profile {name} closed ({reason}); state saved as version {result['saved_version']}"
    return f"profile {name} closed ({reason}); state not saved ({result.get('outcome')})"


def close(
    name: Annotated[str, typer.Argument(help="The open profile to close.")],
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the save.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Close a profile opened on this machine: its opener saves the state and releases it."""
    from fleetwright.sessions.open_control import request_close

    result = request_close(name, wait=timedelta(seconds=wait))
    if as_json:
        print_json(result)
    else:
        print(_summary({**result, "reason": "requested"}))
    if result.get("outcome") != "saved":
        raise typer.Exit(1)

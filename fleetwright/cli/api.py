"""`fleetwright api serve`: the local HTTP API (token auth, loopback by default)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from fleetwright.cli.output import err_console
from fleetwright.errors import ValidationError
from fleetwright.settings import get_settings

__all__ = ["api_token", "app"]

app = typer.Typer(no_args_is_help=True, help="The local HTTP API.")


@app.callback()
def _group() -> None:
    """The local HTTP API: open profiles and start runs from any tool."""


def api_token() -> tuple[str, Path | None]:
    """The API token: FLEETWRIGHT_API_TOKEN, else the one in <home>/api-token (made once,
    readable by its owner only). Returns it and the file it came from."""
    settings = get_settings()
    if settings.api_token is not None:
        return settings.api_token.get_secret_value(), None
    path = settings.home / "api-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip(), path


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8777,
) -> None:
    """Serve the local API: open/close profiles for any tool, start and read fleet runs.

    Clients send `Authorization: Bearer <token>`; the OpenAPI document is at /openapi.json.
    """
    import uvicorn

    from fleetwright.localapi import create_app

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValidationError(f"--host {host!r} is not an IP address, e.g. 127.0.0.1") from None
    if not 1 <= port <= 65535:
        raise ValidationError(f"--port {port} is outside 1–65535")
    token, source = api_token()
    api = create_app(token)
    if not address.is_loopback:
        err_console.print(
            f"warning: listening on {host}, beyond this machine; the token guards the API, "
            "the CDP endpoints it opens stay on 127.0.0.1",
            highlight=False,
        )
    where = f"in {source}" if source is not None else "from FLEETWRIGHT_API_TOKEN"
    err_console.print(
        f"Fleetwright API on http://{host}:{port} (token {where}; docs at /docs)", highlight=False
    )
    uvicorn.run(api, host=host, port=port, log_level="warning")

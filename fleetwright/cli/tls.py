"""`fleetwright tls ...`: HTTPS for the local Prefect server and the webhook receiver."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetwright.cli.output import console

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """HTTPS for the local Prefect server (API and UI) and the webhook receiver."""


@app.command("init")
def init_cmd(
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="Another name or IP address the certificate is for (repeatable)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the CA and certificate already there.")
    ] = False,
) -> None:
    """Create a local CA and a server certificate it signs, in <home>/tls: from then on
    `fleetwright up` serves the Prefect API and UI over HTTPS only, and Fleetwright's clients
    trust that CA."""
    from fleetwright.errors import ValidationError
    from fleetwright.settings import get_settings
    from fleetwright.tls import DEFAULT_HOSTS, create_local_ca, local_tls_files

    settings = get_settings()
    folder = settings.tls_dir
    if local_tls_files(folder) is not None and not force:
        raise ValidationError(
            f"{folder} already holds a certificate; pass --force to replace it (browsers that "
            "trust the old CA must be given the new one)"
        )
    files = create_local_ca(folder, hosts=host or [])
    names = ", ".join(dict.fromkeys([*DEFAULT_HOSTS, *(host or [])]))
    console.print(
        f"✓ local CA {files.ca} and a certificate for {names} in {folder}\n"
        "`fleetwright up` now serves https://127.0.0.1:<port>; restart it if it runs. "
        "Browsers trust the CA once it is imported (docs/security.md, HTTPS).",
        highlight=False,
        soft_wrap=True,  # paths stay whole for copying
    )

"""`fleetwright webhooks serve`: receive signed GitHub webhooks and emit Prefect events."""

from __future__ import annotations

import asyncio
import os

import typer

from fleetwright.errors import FleetwrightError

__all__ = ["app"]

app = typer.Typer(help="GitHub webhooks into Prefect events.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """GitHub webhooks into Prefect events."""


@app.command("serve")
def serve(
    account: str | None = typer.Option(
        None, help="GitHub account whose block holds the webhook secret."
    ),
    secret_env: str | None = typer.Option(
        None, help="Env var with the webhook secret (instead of --account)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8780, help="Port to listen on."),
    path: str = typer.Option("/github", help="URL path GitHub posts to."),
) -> None:
    """Serve the webhook receiver (ASGI, uvicorn) until interrupted."""
    import uvicorn

    from fleetwright.integrations.services import load_credentials
    from fleetwright.integrations.webhooks import (
        CatalogueDeliveryLog,
        DeliveryLog,
        RedisDeliveryLog,
        create_app,
    )
    from fleetwright.settings import get_settings

    try:
        if secret_env:
            secret = os.environ.get(secret_env, "")
            if not secret:
                raise FleetwrightError(f"environment variable {secret_env} is empty or unset")
        else:
            block = asyncio.run(load_credentials("github", account))
            if block.webhook_secret is None:
                raise FleetwrightError(
                    f"GitHub account {block.account!r} has no webhook secret; add the service "
                    "again with --webhook-secret-env, or pass --secret-env"
                )
            secret = block.webhook_secret.get_secret_value()
    except FleetwrightError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    redis_url = get_settings().redis_url
    if not redis_url:
        from fleetwright.catalogue.db import get_engine

        try:
            get_engine()  # reachable and migrated before the first delivery
        except FleetwrightError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
    log: DeliveryLog = RedisDeliveryLog(redis_url) if redis_url else CatalogueDeliveryLog()
    typer.echo("delivery ids kept in Redis" if redis_url else "delivery ids kept in the catalogue")
    try:
        tls = get_settings().tls_files
        if tls is not None:
            tls.check()
    except FleetwrightError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    # with a certificate (FLEETWRIGHT_TLS_* or `fleetwright tls init`) HTTPS only
    scheme = "https" if tls is not None else "http"
    typer.echo(f"listening on {scheme}://{host}:{port}{path}")
    uvicorn.run(
        create_app(secret, deliveries=log, path=path),
        host=host,
        port=port,
        log_level="info",
        ssl_certfile=str(tls.cert) if tls is not None else None,
        ssl_keyfile=str(tls.key) if tls is not None else None,
    )

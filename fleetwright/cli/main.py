"""The root `fleetwright` app: mounts the command groups and turns errors into one line."""

from __future__ import annotations

import os
import sys

import click
import typer

from fleetwright.settings import get_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="fleetwright",
    help="Run browser automations over a fleet of managed Chrome profiles, on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


_mounted = False


def _mount() -> None:
    global _mounted
    if _mounted:
        return
    _mounted = True
    from fleetwright.cli import db, profile, proxy, service, status, sync, up, webhooks

    app.add_typer(profile.app, name="profile", help="Browser profiles.")
    app.add_typer(proxy.app, name="proxy", help="Proxies, pools and health.")
    app.add_typer(service.app, name="service", help="GitHub and OpenAI service accounts.")
    app.add_typer(db.app, name="db", help="The catalogue database.")
    app.add_typer(webhooks.app, name="webhooks", help="Receive GitHub webhooks as Prefect events.")
    app.command("status")(status.status)
    app.command("sync")(sync.sync)
    app.command("up")(up.up)
    for name in ("run", "schedule", "commands", "worker", "metrics", "watch"):
        try:
            module = __import__(f"fleetwright.cli.{name}", fromlist=["x"])
        except ImportError:
            continue
        if isinstance(getattr(module, "app", None), typer.Typer):
            app.add_typer(module.app, name=name)
        elif callable(getattr(module, name, None)):
            app.command(name)(getattr(module, name))


def configure_prefect_env() -> None:
    """Point Prefect clients at Fleetwright's server before Prefect is imported.

    FLEETWRIGHT_PREFECT_API_URL wins, then the user's PREFECT_API_URL, then the local server
    that `fleetwright up` runs.
    """
    settings = get_settings()
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    elif not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{settings.prefect_port}/api"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Warm workers read task parameters from result storage: share the worker's folder.
    os.environ.setdefault(
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(settings.prefect_home / "storage")
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from fleetwright.errors import FleetwrightError

    configure_prefect_env()
    _mount()
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except FleetwrightError as exc:
        from fleetwright.cli.output import fail
        from fleetwright.errors import redact_url

        fail(redact_url(exc.message), code=2)
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None

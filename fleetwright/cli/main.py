"""The root `fleetwright` app: mounts the command groups and turns errors into one line.

Command groups are imported when they are used, not at start: `fleetwright --help` lists them
from the table below without importing any of them (several import Prefect, which alone takes
seconds on a loaded machine). Usage errors (unknown option, bad value, missing argument) are
one line on stderr and exit code 2, whichever click the installed typer uses: typer ≥ 0.22
ships its own copy of click, whose exceptions are not click's.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import sys
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["COMMANDS", "app", "main"]

# name -> (module, attribute, short help). The attribute is a typer.Typer (a group) or a
# function (a single command).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "profile": ("fleetwright.cli.profile", "app", "Browser profiles."),
    "proxy": ("fleetwright.cli.proxy", "app", "Proxies, pools and health."),
    "service": ("fleetwright.cli.service", "app", "GitHub and OpenAI service accounts."),
    "secret": ("fleetwright.cli.secret", "app", "Secrets for command parameters."),
    "api": ("fleetwright.cli.api", "app", "The local HTTP API for opening profiles and runs."),
    "db": ("fleetwright.cli.db", "app", "The catalogue database."),
    "auth": ("fleetwright.cli.auth", "app", "The Prefect API credential of the local server."),
    "tls": ("fleetwright.cli.tls", "app", "HTTPS for the local Prefect server and webhooks."),
    "webhooks": ("fleetwright.cli.webhooks", "app", "Receive GitHub webhooks as Prefect events."),
    "commands": ("fleetwright.cli.commands", "app", "Declarative and Python commands."),
    "schedule": ("fleetwright.cli.schedule", "app", "Fleet runs on a schedule (cron, interval)."),
    "worker": ("fleetwright.cli.worker", "app", "Warm workers for on-demand sessions."),
    "run": ("fleetwright.cli.run", "run", "Run a command on profiles (names, --tag or --all)."),
    "watch": ("fleetwright.cli.watch", "watch", "Follow fleet runs live from Prefect's events."),
    "metrics": ("fleetwright.cli.metrics", "app", "Prometheus metrics and monitoring files."),
    "status": ("fleetwright.cli.status", "status", "Show the catalogue, Prefect API and counts."),
    "sync": ("fleetwright.cli.sync", "sync", "Bring the catalogue in line with edited blocks."),
    "up": ("fleetwright.cli.up", "up", "Start Fleetwright locally: Prefect server, UI, worker."),
}


class _Listed:
    """What `--help` shows for a command that is not imported yet."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.short_help = help_text
        self.hidden = False
        self.deprecated = False
        self.rich_help_panel = None

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.help


class LazyGroup(TyperGroup):
    """The root group: subcommands are imported on first use; help lists them from COMMANDS."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if ctx.resilient_parsing or _formatting_help(ctx):
            return _Listed(cmd_name, COMMANDS[cmd_name][2])
        return load_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        ctx.meta["fleetwright.help"] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta.pop("fleetwright.help", None)


def _formatting_help(ctx: Any) -> bool:
    return bool(getattr(ctx, "meta", {}).get("fleetwright.help"))


_loaded: dict[str, Any] = {}


def load_command(name: str) -> Any:
    """The click command for `name`, importing its module (once)."""
    if name in _loaded:
        return _loaded[name]
    module_name, attr, help_text = COMMANDS[name]
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, typer.Typer):
        if obj.info.help is None:
            obj.info.help = help_text
        command = typer.main.get_command(obj)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(obj)
        command = typer.main.get_command(single)
    command.name = name
    _loaded[name] = command
    return command


app = typer.Typer(
    name="fleetwright",
    cls=LazyGroup,
    help="Run browser automations over a fleet of managed Chrome profiles, on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Run browser automations over a fleet of managed Chrome profiles, on Prefect."""
    from fleetwright.settings import apply_prefect_settings

    apply_prefect_settings()


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """(usage errors, other click errors, Abort, Exit) of every click the CLI may raise.

    Found by name in click and in typer (which, from 0.22 on, raises exceptions of a click
    copy of its own, and has Abort and Exit in typer.exceptions), so that any combination of
    versions that pyproject allows is covered.
    """
    modules: list[Any] = [importlib.import_module("click.exceptions"), typer]
    for name in ("typer._click.exceptions", "typer.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue

    def found(attr: str) -> tuple[type[BaseException], ...]:
        classes = [getattr(m, attr, None) for m in modules]
        return tuple(dict.fromkeys(c for c in classes if isinstance(c, type)))

    return found("UsageError"), found("ClickException"), found("Abort"), found("Exit")


def usage_line(exc: Any) -> str:
    """One line for a usage error: the message and where to read how the command is used."""
    message = " ".join(str(exc.format_message()).split())
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "fleetwright"
    return f"{message} (see `{path} --help`)"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    What a command and the processes it starts (server, workers, flow runs, browsers) create —
    databases, logs, states with cookies, artifacts, exports — is its owner's only (umask 077
    while it runs; the caller's umask is back afterwards, for a caller that is not a shell).
    """
    import os

    from fleetwright.private import PRIVATE_UMASK

    global _exit_hooked
    if not _exit_hooked:
        atexit.register(_quick_exit)
        _exit_hooked = True
    previous = os.umask(PRIVATE_UMASK)
    try:
        _main(argv)
    finally:
        os.umask(previous)


_exit_hooked = False


def _quick_exit() -> None:
    """The last thing before the interpreter tears itself down: the catalogue's connections
    closed, then every object left out of the interpreter's final garbage collection.

    That collection walks every object the process holds. After Prefect's imports it took
    0.37–0.59 s of each command's run on a 2-core machine, to free memory the operating system
    takes back at once anyway (bench/cli_bench.py times whole processes). Atexit handlers run
    last-registered first, so Prefect's own (its event and log workers sending what is left)
    have run before this one; stdout and stderr are still flushed after it. The connections
    are closed here because a connection pool lives in reference cycles, which only that
    collection would have closed.
    """
    db = sys.modules.get("fleetwright.catalogue.db")
    if db is not None:
        try:
            db.dispose_engines()
        except Exception:  # a database gone away: the process ends all the same
            logging.getLogger(__name__).debug("closing the catalogue failed", exc_info=True)
    gc.freeze()


def _main(argv: list[str] | None) -> None:
    from fleetwright.errors import FleetwrightError

    usage_errors, click_errors, aborts, exits = _click_exceptions()
    # A command that wrote a block or emitted an event leaves Prefect's event worker sending
    # it at exit, and that worker warns "Still processing items: 1 items remaining..." while
    # it does. The CLI has already said what it did: keep the warning out of its output.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
    command = typer.main.get_command(app)
    try:
        code = command.main(
            args=sys.argv[1:] if argv is None else argv,
            prog_name="fleetwright",
            standalone_mode=False,
        )
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except FleetwrightError as exc:
        from fleetwright.cli.output import fail
        from fleetwright.errors import redact_url
        from fleetwright.inputs import one_line

        fail(one_line(redact_url(exc.message), limit=500), code=2)
    except usage_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            sys.stdout.write((ctx.get_help() if ctx is not None else "") + "\n")
            raise SystemExit(2) from None
        from fleetwright.cli.output import fail

        fail(usage_line(exc), code=2)
    except aborts:
        sys.stderr.write("aborted\n")
        raise SystemExit(130) from None
    except click_errors as exc:
        from fleetwright.cli.output import fail

        fail(" ".join(str(exc.format_message()).split()), code=2)  # type: ignore[attr-defined]
    except exits as exc:
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        raise SystemExit(130) from None

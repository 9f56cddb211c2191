"""`fleetwright up`: the whole embedded stack on this machine, in the foreground.

Local Prefect server (SQLite in the home, telemetry off, its own PREFECT_HOME so the user's
Prefect profiles are untouched), catalogue migrations, block registration, prefect.yaml
deployed to a local process work pool, a worker, the demo site, demo profiles and a demo run.
Ctrl-C stops everything it started. Running it again reuses what is already there.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from fleetwright.cli.output import console

if TYPE_CHECKING:
    from fleetwright.settings import Settings

__all__ = ["up"]


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def up(
    demo: Annotated[bool, typer.Option(help="Serve the demo site and run the demo.")] = True,
    port: Annotated[int | None, typer.Option(help="Prefect server port.")] = None,
    warm_worker: Annotated[
        bool, typer.Option(help="Also start a warm worker (browser pool kept open).")
    ] = True,
) -> None:
    """Start Fleetwright locally: Prefect server + UI, worker, deployments, demo."""
    import signal

    from fleetwright.catalogue.db import safe_url, upgrade
    from fleetwright.embedded import LocalPrefectServer
    from fleetwright.embedded.prefect_server import prefect_env
    from fleetwright.embedded.stack import (
        deploy_project,
        register_blocks,
        start_process,
        start_worker,
        stop_process,
    )
    from fleetwright.prefect_auth import auth_path, ensure_auth, hint
    from fleetwright.private import PRIVATE_UMASK, private_dir, secure_tree
    from fleetwright.settings import get_settings

    # Ctrl-C (SIGINT) and SIGTERM (`timeout`, systemd, docker stop) stop everything. While
    # starting, the first one interrupts what is running; once up, it only wakes the wait
    # below, so that no KeyboardInterrupt can land half-way through the bookkeeping of the
    # children (Popen.poll() and wait() hold a lock of their own). Any further one is
    # ignored, from the first on: it must not cut the stopping short.
    stop_requested = threading.Event()
    waiting = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        if stop_requested.is_set():
            return
        stop_requested.set()
        if not waiting.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    settings = get_settings()
    # the home is its owner's only, and so is everything in it and everything `up` starts
    os.umask(PRIVATE_UMASK)
    private_dir(settings.home)
    fixed = secure_tree(settings.home)
    auth, new_auth = ensure_auth(settings.home)
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    tls = settings.tls_files
    server = LocalPrefectServer(
        prefect_home=settings.prefect_home,
        port=port or settings.prefect_port,
        extra_env={"PREFECT_SERVER_ENCRYPTION_KEY": key} if key else None,
        auth_string=auth,
        tls=tls,
    )
    os.environ["PREFECT_API_URL"] = server.api_url
    # this process's clients and every child's (deploy, workers, flow runs) authenticate with
    # the server's credential; children get it through their environment, never their argv
    os.environ["PREFECT_API_AUTH_STRING"] = auth
    env = {
        **prefect_env(settings.prefect_home),
        "PREFECT_API_URL": server.api_url,
        "PREFECT_API_AUTH_STRING": auth,
        "FLEETWRIGHT_HOME": str(settings.home),
    }
    if tls is not None and tls.ca is not None:
        # clients verify the server's certificate with this CA (Prefect's client, websockets)
        os.environ["PREFECT_API_SSL_CERT_FILE"] = env["PREFECT_API_SSL_CERT_FILE"] = str(tls.ca)
    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_HOME")})
    started_server = False
    worker = None
    warm = None
    metrics = None
    site = None
    try:
        console.print(
            f"✓ home {settings.home} readable by its owner only"
            + (f" ({fixed} permissions tightened)" if fixed else "")
        )
        where = auth_path(settings.home)
        console.print(
            f"✓ Prefect API credential {hint(auth)} "
            + ("generated into " if new_auth else "in ")
            + f"{where} (the UI's login asks for it)"
        )
        with console.status("Applying catalogue migrations"):
            revision = upgrade()
        console.print(f"✓ catalogue {safe_url(settings.catalogue_url)} at revision {revision}")
        if server.is_healthy():
            server.check_auth()
            if demo and _port_taken(settings.demo_site_port):
                console.print(
                    f"Fleetwright is already up: Prefect UI at [link]{server.url}[/link], "
                    f"demo site on port {settings.demo_site_port}. Stop that one with Ctrl-C first "
                    "to restart it."
                )
                return
            console.print(f"✓ Prefect server already running at {server.url}")
        else:
            with console.status("Starting the Prefect server"):
                server.start(timeout=settings.prefect_start_timeout)
            started_server = True
            console.print(f"✓ Prefect server at {server.url} (data in {settings.prefect_home})")
        slugs = asyncio.run(register_blocks())
        console.print(f"✓ blocks registered: {', '.join(slugs)}")
        if demo:
            from fleetwright.embedded.demo import prepare_demo, start_demo_site

            site = start_demo_site(settings)
            console.print(f"✓ demo site at {site.url}")
            for line in asyncio.run(prepare_demo(settings, site.url)):
                console.print(f"✓ {line}")
        with console.status("Deploying prefect.yaml to work pool 'fleetwright'"):
            deploy_project(env)
        console.print("✓ deployments created from prefect.yaml")
        from fleetwright.deployments.automations import ensure_heartbeat_automation

        asyncio.run(ensure_heartbeat_automation())
        logs = settings.home / "logs"
        worker = start_worker(
            {**env, "PREFECT_RUNNER_HEARTBEAT_FREQUENCY": "30"}, log_path=logs / "worker.log"
        )
        console.print(f"✓ process worker started (log {logs / 'worker.log'})")
        if warm_worker:
            warm = start_process(
                [sys.executable, "-m", "fleetwright.deployments.warm_worker", "--limit", "8"],
                env,
                log_path=logs / "warm-worker.log",
            )
            console.print(f"✓ warm worker for `run --now` (log {logs / 'warm-worker.log'})")
        if settings.metrics and not _port_taken(settings.metrics_port):
            metrics = start_process(
                [sys.executable, "-m", "fleetwright.cli", "metrics", "serve"],
                env,
                log_path=logs / "metrics.log",
            )
            console.print(
                f"✓ Prometheus metrics at http://127.0.0.1:{settings.metrics_port}/metrics"
            )
        if demo:
            from fleetwright.embedded.demo import trigger_demo_run

            assert site is not None
            run_url = asyncio.run(trigger_demo_run(server.url, site.url))
            if run_url:
                console.print(f"✓ demo run started: {run_url}")
        console.print(
            f"\n[bold green]Fleetwright is up.[/] Prefect UI: [link]{server.url}[/link] "
            f"(log in with the contents of {auth_path(settings.home)})\n"
            "Profiles: `fleetwright profile list`; runs: the UI's Runs page. Ctrl-C stops."
        )
        other_shell = _other_shell_env(settings, server.port)
        if other_shell:
            console.print(f"In another shell, first: export {other_shell}")
        waiting.set()
        while not stop_requested.wait(1):
            for name, proc in (("process worker", worker), ("warm worker", warm)):
                if proc is not None and proc.poll() is not None:
                    console.print(f"[red]the {name} exited; see its log in {logs}[/]")
                    raise typer.Exit(1)
        console.print("\nStopping…")
    except KeyboardInterrupt:
        console.print("\nStopping…")
    finally:
        stop_requested.set()  # from here on every Ctrl-C / SIGTERM is ignored
        stops: list[Callable[[], object]] = [
            lambda: stop_process(warm),
            lambda: stop_process(metrics),
            lambda: stop_process(worker),
        ]
        if site is not None:
            stops.append(site.stop)
        if started_server:
            stops.append(server.stop)
        for stop in stops:
            try:
                stop()
            except Exception as exc:  # stop the others whatever happens to one
                console.print(f"[red]could not stop everything: {type(exc).__name__}: {exc}[/]")
        console.print("Stopped everything `fleetwright up` started.")


def _other_shell_env(settings: Settings, port: int) -> str:
    """The variables another shell needs to reach this stack when they are not the defaults
    (without them the CLI looks at ~/.fleetwright and port 4200)."""
    import shlex

    from fleetwright.settings import Settings

    needed = []
    if "home" in settings.model_fields_set:
        needed.append(f"FLEETWRIGHT_HOME={shlex.quote(str(settings.home))}")
    if port != Settings.model_fields["prefect_port"].default:
        needed.append(f"FLEETWRIGHT_PREFECT_PORT={port}")
    return " ".join(needed)

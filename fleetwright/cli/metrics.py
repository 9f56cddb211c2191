"""`fleetwright metrics`: the host's Prometheus endpoint and the shipped monitoring files."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from fleetwright.cli.output import console

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Prometheus metrics and monitoring files.")


@app.command("serve")
def serve(
    port: Annotated[
        int | None,
        typer.Option(help="Port (default FLEETWRIGHT_METRICS_PORT, 9464)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    catalogue: Annotated[
        bool, typer.Option(help="Also expose the catalogue's gauges (one host is enough).")
    ] = True,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve /metrics for every Fleetwright process on this host (Ctrl-C stops)."""
    import logging
    import signal

    from prometheus_client import start_http_server

    from fleetwright.errors import ConfigurationError, ValidationError
    from fleetwright.observability.logformat import apply_log_format
    from fleetwright.observability.serve import host_registry
    from fleetwright.settings import get_settings

    if port is not None and not 1 <= port <= 65535:
        raise ValidationError(f"--port {port} is not a port; give 1-65535")
    if timeout is not None and timeout < 0:
        raise ValidationError(f"--timeout {timeout:g} is negative; give seconds, or leave it out")
    settings = get_settings()
    if not apply_log_format():
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = port or settings.metrics_port
    registry = host_registry(settings.metrics_dir, catalogue=catalogue)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
        ) from None
    console.print(
        f"✓ metrics of {settings.metrics_dir} at http://{host}:{port}/metrics", highlight=False
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(timeout)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@app.command("config")
def config(
    out: Annotated[Path, typer.Argument(help="Folder to write the monitoring files into.")],
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write the Prometheus config and rules and the Grafana provisioning and dashboard."""
    from fleetwright.observability.config import export_monitoring

    for path in export_monitoring(out, force=force):
        console.print(f"✓ {path}", highlight=False)


@app.command("dashboard")
def dashboard(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Print (or write) the Grafana dashboard JSON, generated with grafanalib."""
    import sys

    from fleetwright.observability.dashboard import dashboard_json

    text = dashboard_json()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"✓ {out}", highlight=False)

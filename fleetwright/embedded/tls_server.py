"""Prefect's server (API, UI and services) over HTTPS: `python -m fleetwright.embedded.tls_server`.

`prefect server start` has no TLS options; it runs Prefect's ASGI app under uvicorn. This runs
the same app, the same way (`create_app(final=True)`, one process; or uvicorn's workers with
the services elsewhere), with uvicorn's TLS. Settings come from the environment as for
`prefect server start`; the key file is named on the command line, never its contents.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    import prefect
    import uvicorn
    from prefect.settings import get_current_settings

    server = get_current_settings().server
    options = {
        "host": args.host,
        "port": args.port,
        "ssl_certfile": args.certfile,
        "ssl_keyfile": args.keyfile,
        "timeout_keep_alive": server.api.keepalive_timeout,
        "ws_ping_interval": server.api.websocket_ping_interval,
        "ws_ping_timeout": server.api.websocket_ping_timeout,
        "log_level": server.logging_level.lower(),
        "app_dir": str(prefect.__module_path__.parent),
    }
    if args.workers == 1:
        from prefect.server.api.server import create_app

        uvicorn.run(create_app(final=True), **options)
    else:
        # as `prefect server start --workers N`: the API only, in N processes
        os.environ["PREFECT__SERVER_FINAL"] = "1"
        os.environ["PREFECT__SERVER_WEBSERVER_ONLY"] = "1"
        uvicorn.run(
            "prefect.server.api.server:create_app",
            factory=True,
            workers=args.workers,
            **options,
        )


if __name__ == "__main__":
    main()

"""A warm Fleetwright worker: a Prefect task worker serving `run-profile-session` with a browser
pool that stays open between sessions.

    python -m deployments.warm_worker --limit 8        (or: fleetwright worker start)

Sessions reach it through `run_profile_session.apply_async(...)` — `fleetwright run --now` and
`fleetwright.api.run_command(..., via="warm")`. It also takes `run --now` from the same host on
a Unix socket in the home (`fleetwright.warm_relay`), so that the command need not import
Prefect to submit. Run as many as you like, on any machine that
reaches the Prefect API, the catalogue and the result storage (PREFECT_LOCAL_STORAGE_PATH or a
shared default result storage block).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

from prefect.task_worker import aserve

from fleetwright.sessions import SessionEngine
from fleetwright.settings import get_settings
from fleetwright.tasks.sessions import run_profile_session, use_engine
from fleetwright.warm_relay import WarmRelayServer

__all__ = ["main", "serve_warm"]

logger = logging.getLogger("fleetwright.worker")


async def serve_warm(
    *,
    limit: int = 8,
    status_port: int | None = None,
    timeout: float | None = None,
    relay: bool = True,
) -> None:
    """Start the browser pool, then serve sessions until stopped (or `timeout` seconds).

    With `relay` (the default) it also takes `run --now` from this host on its socket."""
    started = time.perf_counter()
    engine = SessionEngine()
    use_engine(engine)
    await engine.pool.start()
    server = await _relay_server() if relay else None
    logger.info(
        "warm worker ready in %.2f s (limit %d); serving run-profile-session",
        time.perf_counter() - started, limit,
    )  # fmt: skip
    try:
        await aserve(
            run_profile_session, limit=limit, status_server_port=status_port, timeout=timeout
        )
    finally:
        if server is not None:
            await server.close()
        await engine.close()


async def _relay_server() -> WarmRelayServer | None:
    settings = get_settings()
    server = WarmRelayServer(
        home=settings.home,
        api_url=os.environ.get("PREFECT_API_URL", ""),
        catalogue_url=settings.catalogue_url,
    )
    try:
        return await server.start()
    except OSError as exc:  # a read-only home, say: `run --now` submits through Prefect then
        logger.warning("not taking `run --now` on a socket (%s): %s", server.path, exc)
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a warm Fleetwright worker.")
    parser.add_argument("--limit", type=int, default=8, help="concurrent sessions")
    parser.add_argument("--status-port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="exit after N seconds")
    parser.add_argument(
        "--no-relay", action="store_true", help="don't take `run --now` on a local socket"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        serve_warm(
            limit=args.limit,
            status_port=args.status_port,
            timeout=args.timeout,
            relay=not args.no_relay,
        )
    )


if __name__ == "__main__":
    main()

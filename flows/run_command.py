"""The `run-command` flow: one command over a selection of profiles, one task run each.

Everything is checked before any browser starts (command, parameters, selection). Sessions run
with bounded concurrency on one shared browser pool; sessions that already succeeded in this
flow run (a retried or resumed run) are skipped, so none is done twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.context import get_run_context
from prefect.states import Completed, Failed, State

from fleetwright.commands import get_command, validate_params
from fleetwright.errors import FleetwrightError
from fleetwright.sessions import SessionEngine
from fleetwright.sessions.engine import TraceMode
from fleetwright.sessions.selection import finished_profiles, resolve_selection
from tasks.sessions import run_profile_session, use_engine

__all__ = ["run_command"]


@flow(name="run-command", flow_run_name="{command}")
async def run_command(
    command: str,
    profiles: list[str] | None = None,
    tags: list[str] | None = None,
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    concurrency: int = 4,
    trace: TraceMode = "on-failure",
    session_timeout_s: float | None = 300,
) -> State[dict[str, Any]]:
    """Run `command` on the selected profiles (names and/or tags, or every active one)."""
    logger = get_run_logger()
    spec = get_command(command, version=version)
    values = validate_params(spec, params or {})
    names = resolve_selection(names=profiles or [], tags=tags or [], all_active=all_active)
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    fleet_id = str(flow_run.id) if flow_run else ""
    done = finished_profiles(fleet_id, spec.name, spec.version) if fleet_id else set()
    todo = [n for n in names if n not in done]
    logger.info(
        "%s v%s on %d profiles (%d already done in this run), concurrency %d",
        spec.name, spec.version, len(names), len(done), concurrency,
    )  # fmt: skip
    progress_id = await acreate_progress_artifact(
        progress=100.0 * len(done) / max(len(names), 1),
        key=None,
        description=f"{spec.name}: sessions finished",
    )
    results: dict[str, dict[str, Any]] = {n: {"profile": n, "status": "skipped",
                                               "error": "finished earlier in this run"}
                                           for n in done}  # fmt: skip
    sem = asyncio.Semaphore(max(1, concurrency))
    finished = len(done)
    timeout = timedelta(seconds=session_timeout_s) if session_timeout_s else None

    async def one(name: str) -> None:
        nonlocal finished
        async with sem:
            try:
                results[name] = await run_profile_session(
                    name, spec, values, trace=trace, timeout=timeout
                )
            except FleetwrightError as exc:
                results[name] = {"profile": name, "status": "failed", "error": exc.message,
                                 "error_type": type(exc).__name__}  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one session never stops the fleet
                results[name] = {"profile": name, "status": "failed",
                                 "error": f"{type(exc).__name__}: {exc}"[:500],
                                 "error_type": type(exc).__name__}  # fmt: skip
            finished += 1
            if progress_id and (finished % 10 == 0 or finished == len(names)):
                await aupdate_progress_artifact(progress_id, 100.0 * finished / len(names))

    engine = SessionEngine()
    use_engine(engine)
    try:
        await engine.pool.start()
        await asyncio.gather(*(one(n) for n in todo))
    finally:
        await engine.close()

    counts = Counter(r["status"] for r in results.values())
    rows = [
        {k: r.get(k) for k in ("profile", "status", "run_id", "duration_ms", "error")}
        for r in sorted(results.values(), key=lambda r: r["profile"])
    ]
    await acreate_table_artifact(
        table=rows, key=None, description=f"{spec.name} v{spec.version}: {dict(counts)}"
    )
    summary = {
        "command": spec.name,
        "version": spec.version,
        "ok": counts.get("ok", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "sessions": rows,
    }
    message = f"{summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped"
    logger.info(message)
    if summary["failed"]:
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)

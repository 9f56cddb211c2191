"""The `run-command` flow: one command over a selection of profiles, one task run each.

Everything is checked before any browser starts (command, parameters, selection). Sessions run
with bounded concurrency on one shared browser pool; sessions that already succeeded in this
flow run — or, for a run resuming a crashed one (`resume_from`), in any run it resumes — are
skipped, so none is done twice. The end emits `fleetwright.run.finished` with the counts.

With `shards` > 1 the run is split into child runs of its deployment that the workers of every
host share (fleetwright/fleet/shards.py); the parent follows them and adds up their sessions.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.context import get_run_context
from prefect.exceptions import CancelledRun
from prefect.states import Cancelled, Completed, Failed
from prefect.utilities.annotations import quote

from fleetwright.commands import CommandSpec, get_command, validate_params
from fleetwright.errors import FleetwrightError, ValidationError
from fleetwright.fleet.resume import fleet_chain, mark_interrupted
from fleetwright.fleet.runs import session_rows
from fleetwright.fleet.shards import (
    Shard,
    adopt_shards,
    cancel_shards,
    follow_shard,
    split,
    start_shard,
)
from fleetwright.fleet.stop import CANCELLED, StopWatch, close_task_runs, stop_requested
from fleetwright.observability import record as observe
from fleetwright.registry.events import emit
from fleetwright.sessions import SessionEngine
from fleetwright.sessions.engine import TraceMode
from fleetwright.sessions.selection import finished_profiles, resolve_selection
from fleetwright.tasks.sessions import run_profile_session, use_engine

__all__ = ["run_command"]

_INHERITED = ("profiles", "tags", "all_active", "params", "version", "concurrency", "trace",
              "session_timeout_s", "shards", "fleet_key")  # fmt: skip


_ROW_FIELDS = ("profile", "status", "run_id", "attempts", "duration_ms", "error_type", "error")


@flow(name="run-command", flow_run_name="{command}")
async def run_command(
    command: str,
    profiles: list[str] | None = None,
    tags: list[str] | None = None,
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    concurrency: int = 4,
    trace: TraceMode | None = None,
    session_timeout_s: float | None = 300,
    resume_from: str | None = None,
    max_resumes: int = 3,
    shards: int = 1,
    fleet_key: str | None = None,
) -> State[dict[str, Any]]:
    """Run `command` on the selected profiles (names and/or tags, or every active one).

    With `resume_from` (set by the Crashed trigger in prefect.yaml) the run takes the crashed
    run's selection and parameters and skips the sessions that already succeeded there; the
    crashed run's leftover task runs are marked Crashed. Ctrl-C in the process running the
    flow, or its flow run set to Cancelling, stops the sessions and ends the run Cancelled
    (never resumed).

    `shards` > 1 splits the selection into that many child runs of this run's deployment
    (each with `concurrency`), taken by any worker of the work pool, on any host; a crashed
    shard is resumed by the Crashed trigger and this run follows it. `fleet_key` is set by a
    sharded parent on its shards: the sessions' idempotency keys stay the fleet's.
    """
    logger = get_run_logger()
    if shards < 1:
        raise ValidationError(f"shards must be 1 or more, not {shards}")
    if stop_requested():  # Ctrl-C before the flow started: nothing ran
        return Cancelled(message=f"stopped before any session started: {stop_requested()}")
    earlier: list[str] = []
    if resume_from:
        chain = await fleet_chain(resume_from, max_depth=max_resumes)
        earlier = chain.run_ids
        original = chain.parameters
        if original.get("command", command) != command:
            raise ValidationError(
                f"resume_from: run {earlier[-1]} ran {original.get('command')!r}, not {command!r}"
            )
        inherited = {k: original[k] for k in _INHERITED if k in original}
        profiles, tags = inherited.get("profiles"), inherited.get("tags")
        all_active = bool(inherited.get("all_active", False))
        params, version = inherited.get("params"), inherited.get("version")
        concurrency = int(inherited.get("concurrency", concurrency))
        trace = inherited.get("trace", trace)
        session_timeout_s = inherited.get("session_timeout_s", session_timeout_s)
        shards = int(inherited.get("shards", shards))
        fleet_key = inherited.get("fleet_key", fleet_key)
        stale = mark_interrupted(earlier)
        leftover = await close_task_runs(
            earlier, "CRASHED", "the process running this task died; the fleet run was resumed"
        )
        logger.info(
            "resuming fleet run %s (%d interrupted sessions, %d task runs marked crashed)",
            earlier[0], stale, leftover,
        )  # fmt: skip

    spec = get_command(command, version=version)
    values = validate_params(spec, params or {})
    names = resolve_selection(names=profiles or [], tags=tags or [], all_active=all_active)
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    fleet_id = str(flow_run.id) if flow_run else ""
    # the sessions' idempotency keys come from the first run of a resumed chain
    fleet_key = fleet_key or (earlier[-1] if earlier else fleet_id or None)
    done: set[str] = set()
    for run_id in [fleet_id, *earlier] if fleet_id else earlier:
        done |= finished_profiles(run_id, spec.name, spec.version)
    todo = [n for n in names if n not in done]
    if shards > 1:
        return await _run_sharded(
            spec, names=names, todo=todo, earlier=earlier, fleet_id=fleet_id,
            fleet_key=fleet_key or fleet_id, shards=shards,
            child={"command": command, "params": params, "version": version,
                   "concurrency": concurrency, "trace": trace,
                   "session_timeout_s": session_timeout_s},
        )  # fmt: skip
    logger.info(
        "%s v%s on %d profiles (%d already done), concurrency %d",
        spec.name, spec.version, len(names), len(done & set(names)), concurrency,
    )  # fmt: skip
    observe.fleet_run_started(spec.name, fleet_id, profiles=len(names), todo=len(todo))
    progress_id = await acreate_progress_artifact(
        progress=100.0 * (len(names) - len(todo)) / max(len(names), 1),
        key=None,
        description=f"{spec.name}: sessions finished",
    )
    results: dict[str, dict[str, Any]] = {n: {"profile": n, "status": "skipped",
                                               "error": "finished earlier in this fleet run"}
                                           for n in names if n in done}  # fmt: skip
    sem = asyncio.Semaphore(max(1, concurrency))
    finished = len(results)
    timeout = timedelta(seconds=session_timeout_s) if session_timeout_s else None

    async def one(name: str) -> None:
        nonlocal finished
        async with sem:
            try:
                # quote: Prefect would otherwise walk the whole command (every step) per task
                # run, twice, looking for futures; it unwraps the value before the task runs
                # the final state: an expected failure ends the task run Failed without
                # raising there; its result raises it here
                state: State[dict[str, Any]] = await run_profile_session(  # type: ignore[misc]
                    name, cast(CommandSpec, quote(spec)), values, trace=trace, timeout=timeout,
                    fleet_key=fleet_key, return_state=True,
                )  # fmt: skip
                results[name] = await state.aresult()
            except CancelledRun:  # the fleet run is stopping; the flow records why below
                return
            except FleetwrightError as exc:
                results[name] = _failure(name, exc.message, exc)
            except Exception as exc:  # one session never stops the fleet
                results[name] = _failure(name, f"{type(exc).__name__}: {exc}"[:500], exc)
            finished += 1
            if progress_id and (finished % 10 == 0 or finished == len(names)):
                await aupdate_progress_artifact(progress_id, 100.0 * finished / len(names))

    engine = SessionEngine()
    use_engine(engine)
    stopped: str | None = None
    try:
        async with StopWatch(fleet_id or None) as watch:
            if todo:
                await engine.pool.start()
            sessions: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*(one(n) for n in todo))
            )
            stopping: asyncio.Future[Any] = asyncio.ensure_future(watch.event.wait())
            try:
                await asyncio.wait([sessions, stopping], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                if watch.reason is None:
                    raise  # not asked to stop: Prefect records a crash
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            stopping.cancel()
            stopped = watch.reason
            if stopped is not None and not sessions.done():
                logger.warning("stopping: %s", stopped)
                sessions.cancel()  # each session records its run row and gives its lease back
                await asyncio.gather(sessions, return_exceptions=True)
            elif stopped is None:
                await sessions
    finally:
        await engine.close()
    if stopped is not None:
        for name in names:
            results.setdefault(name, {"profile": name, "status": CANCELLED, "error": stopped})
        if fleet_id:
            await close_task_runs(
                [fleet_id], "CANCELLED", f"the fleet run was stopped: {stopped}", also=("CRASHED",)
            )

    counts = Counter(r["status"] for r in results.values())
    rows = [
        {k: r.get(k) for k in _ROW_FIELDS}
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
        "resumed_from": earlier,
        "sessions": rows,
    }
    message = f"{summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped"
    if stopped is not None:
        message = f"cancelled ({stopped}): {message}, {counts.get(CANCELLED, 0)} not finished"
    logger.info(message)
    await emit(
        "fleetwright.run.finished",
        fleet_id or spec.name,
        {k: summary[k] for k in ("command", "version", "ok", "failed", "skipped", "resumed_from")},
        kind="run",
    )
    observe.fleet_run_finished(summary, cancelled=stopped is not None)
    if stopped is not None:
        return Cancelled(message=message, data=summary)
    if summary["failed"]:
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


async def _run_sharded(
    spec: CommandSpec,
    *,
    names: list[str],
    todo: list[str],
    earlier: list[str],
    fleet_id: str,
    fleet_key: str,
    shards: int,
    child: dict[str, Any],
) -> State[dict[str, Any]]:
    """Run the fleet as `shards` child runs of this run's deployment and add up their
    sessions; a resumed parent adopts the shards of the runs it resumes."""
    logger = get_run_logger()
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    deployment_id = flow_run.deployment_id if flow_run else None
    if deployment_id is None:
        raise ValidationError(
            "shards > 1 needs a deployment to start the shards on; run it through the "
            "run-command deployment (`fleetwright run ... --shards N`), not in process"
        )
    adopted = await adopt_shards(earlier)
    given = {n for shard in adopted for n in shard.profiles}
    fresh = [n for n in todo if n not in given]
    started: list[Shard] = []
    parts = split(fresh, shards) if fresh else []
    for i, part in enumerate(parts):
        started.append(
            await start_shard(
                deployment_id,
                {**child, "profiles": part, "tags": [], "all_active": False, "shards": 1,
                 "fleet_key": fleet_key},
                name=f"{spec.name} shard {i + 1}/{len(parts)}",
                key=f"{fleet_id}:shard:{i}",
            )
        )  # fmt: skip
    every = [*adopted, *started]
    logger.info(
        "%s v%s on %d profiles in %d shards (%d adopted from the runs resumed)",
        spec.name, spec.version, len(names), len(every), len(adopted),
    )  # fmt: skip
    stopped: str | None = None
    async with StopWatch(fleet_id or None) as watch:
        following: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(follow_shard(s) for s in every))
        )
        stopping: asyncio.Future[Any] = asyncio.ensure_future(watch.event.wait())
        await asyncio.wait([following, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        stopped = watch.reason
        if stopped is not None and not following.done():
            logger.warning("stopping the shards: %s", stopped)
            await cancel_shards(every, f"the fleet run was stopped: {stopped}")
        await following
    run_ids = [r for shard in every for r in shard.run_ids]
    rows = {r.profile: r.as_dict() for r in session_rows([*run_ids, *earlier])}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in todo:
            results[name] = {"profile": name, "status": "skipped",
                             "error": "finished earlier in this fleet run"}  # fmt: skip
        elif name in rows and rows[name]["status"] in ("ok", "failed"):
            results[name] = rows[name]
        else:
            shard_of = next((s for s in every if name in s.profiles), None)
            why = shard_of.message if shard_of else None
            results[name] = {
                "profile": name,
                "status": CANCELLED if stopped else "failed",
                "error": stopped
                or f"its shard ended {shard_of.state if shard_of else '?'}"
                + (f": {why}" if why else ""),
                "error_type": "ShardError",
            }
    counts = Counter(r["status"] for r in results.values())
    table = [{k: results[n].get(k) for k in _ROW_FIELDS} for n in sorted(results)]
    await acreate_table_artifact(
        table=table, key=None, description=f"{spec.name} v{spec.version}: {dict(counts)}"
    )
    summary = {
        "command": spec.name,
        "version": spec.version,
        "ok": counts.get("ok", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "resumed_from": earlier,
        "shards": [
            {"profiles": len(s.profiles), "runs": s.run_ids, "state": s.state} for s in every
        ],
        "sessions": table,
    }
    message = (
        f"{summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped "
        f"in {len(every)} shards"
    )
    logger.info(message)
    await emit(
        "fleetwright.run.finished",
        fleet_id or spec.name,
        {k: summary[k] for k in ("command", "version", "ok", "failed", "skipped", "resumed_from")},
        kind="run",
    )
    if stopped is not None:
        return Cancelled(message=f"cancelled ({stopped}): {message}", data=summary)
    if summary["failed"]:
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


def _failure(name: str, message: str, exc: BaseException) -> dict[str, Any]:
    result = getattr(exc, "session_result", None)
    return {
        "profile": name,
        "status": "failed",
        "run_id": getattr(result, "run_id", None),
        "attempts": getattr(result, "attempts", None),
        "duration_ms": getattr(result, "duration_ms", None),
        "error": message,
        "error_type": type(exc).__name__,
    }

"""A fleet run as users see it: its state, per-profile results and artifacts.

Results come from the catalogue's run rows (the source of truth for sessions) and, for runs
of the run-command flow, from the flow run's state and artifacts on the Prefect API.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run

__all__ = ["FleetRun", "SessionRow", "aread_fleet_run", "session_rows", "summarise"]

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


@dataclass(kw_only=True)
class SessionRow:
    """The outcome of one profile's session in a fleet run (its last attempt)."""

    profile: str
    status: str
    run_id: int | None = None
    attempts: int = 1
    duration_ms: float | None = None
    error: str | None = None
    error_type: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class FleetRun:
    """A fleet run: Prefect state (for flow runs), counts, sessions and artifacts."""

    id: str
    name: str | None = None
    state: str = "UNKNOWN"
    state_name: str | None = None
    message: str | None = None
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    sessions: list[SessionRow] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "COMPLETED" and self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "sessions"}
        data["sessions"] = [s.as_dict() for s in self.sessions]
        return data


def session_rows(fleet_ids: Sequence[str], *, url: str | None = None) -> list[SessionRow]:
    """The last recorded session of each profile over the given fleet/flow run ids."""
    with session_scope(url) as s:
        runs = s.scalars(
            select(Run).where(Run.flow_run_id.in_(list(fleet_ids))).order_by(Run.id)
        ).all()
        latest: dict[str, SessionRow] = {}
        for run in runs:
            previous = latest.get(run.profile_name)
            if previous is not None and previous.status == "ok" and run.status != "ok":
                continue  # a finished session stays finished
            latest[run.profile_name] = SessionRow(
                profile=run.profile_name,
                status=run.status,
                run_id=run.id,
                attempts=run.attempts,
                duration_ms=run.duration_ms,
                error=run.error,
                error_type=run.error_type,
                outputs=dict(run.outputs or {}),
                artifacts=dict(run.artifacts or {}),
            )
    return sorted(latest.values(), key=lambda r: r.profile)


def summarise(rows: Iterable[SessionRow]) -> Counter[str]:
    """Counts by status: ok, failed, skipped (and running / interrupted while in flight)."""
    return Counter(r.status for r in rows)


def _rows_from_table(data: Any) -> list[SessionRow]:
    table = json.loads(data) if isinstance(data, str) else data
    rows = table if isinstance(table, list) else []
    return [
        SessionRow(
            profile=str(r.get("profile")),
            status=str(r.get("status")),
            run_id=r.get("run_id"),
            attempts=int(r.get("attempts") or 1),
            duration_ms=r.get("duration_ms"),
            error=r.get("error"),
            error_type=r.get("error_type"),
        )
        for r in rows
        if isinstance(r, dict)
    ]


async def aread_fleet_run(run_id: str, *, url: str | None = None) -> FleetRun:
    """A fleet run by id: a run-command flow run (state, table and progress artifacts,
    catalogue rows) or a warm-path fleet id (catalogue rows only)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectNotFound

    fleet = FleetRun(id=run_id)
    table: list[SessionRow] | None = None
    try:
        flow_uuid: uuid.UUID | None = uuid.UUID(run_id)
    except ValueError:
        flow_uuid = None
    if flow_uuid is not None:
        async with get_client() as client:
            try:
                flow_run = await client.read_flow_run(flow_uuid)
            except ObjectNotFound:
                flow_run = None
            if flow_run is not None:
                fleet.name = flow_run.name
                if flow_run.state is not None:
                    fleet.state = flow_run.state.type.value
                    fleet.state_name = flow_run.state.name
                    fleet.message = flow_run.state.message
                artifacts = await client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_uuid])
                    )
                )
                for art in artifacts:
                    fleet.artifacts.append(
                        {
                            "key": art.key,
                            "type": art.type,
                            "description": art.description,
                            "data": art.data,
                            "created": art.created,
                        }
                    )
                    if art.type == "table":
                        table = _rows_from_table(art.data)
    rows = session_rows([run_id], url=url)
    if table is not None:
        by_profile = {r.profile: r for r in rows}
        fleet.sessions = []
        for t in table:
            row = by_profile.get(t.profile, t) if t.status != "skipped" else t
            # attempts that never got a run row (a busy profile) count too
            row.attempts = max(row.attempts, t.attempts)
            fleet.sessions.append(row)
    else:
        fleet.sessions = rows
        if flow_uuid is None or fleet.state == "UNKNOWN":
            fleet.state = (
                "COMPLETED"
                if rows and all(r.status in ("ok", "failed") for r in rows)
                else "RUNNING"
            )
    counts = summarise(fleet.sessions)
    fleet.ok, fleet.failed, fleet.skipped = counts["ok"], counts["failed"], counts["skipped"]
    return fleet

"""Following a fleet live over Prefect's event stream (`/api/events/out`, a websocket), not by
polling: Fleetwright's own events (sessions started and finished, failures, quarantines,
failovers, breaker changes, fleet runs) and the flow run's state changes.

`afollow` yields them as `WatchEvent`s; `FleetTally` keeps the counts, rate and ETA that
`fleetwright watch` and `fleetwright run --wait` show.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetwright.errors import NotFoundError, ValidationError

__all__ = ["FINAL_STATES", "FleetTally", "WatchEvent", "afollow", "check_run_id"]

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_PREFIXES = ["fleetwright.", "prefect.flow-run."]


@dataclass(frozen=True)
class WatchEvent:
    """One event as the live view shows it (and as `--json` prints it)."""

    id: str
    event: str
    occurred: datetime
    resource: str
    name: str | None
    payload: dict[str, Any]
    flow_run_id: str | None
    #: for flow-run state events: the state type (COMPLETED, FAILED, ...)
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "event": self.event,
            "occurred": self.occurred.isoformat(),
            "resource": self.resource,
            "name": self.name,
            "flow_run_id": self.flow_run_id,
        }
        if self.state:
            data["state"] = self.state
        data.update(self.payload)
        return data

    @property
    def final(self) -> bool:
        return self.event.startswith("prefect.flow-run.") and self.state in FINAL_STATES


def check_run_id(run: str) -> str:
    """`run` as a flow-run id, or a clear error."""
    try:
        return str(uuid.UUID(run))
    except ValueError:
        raise ValidationError(
            f"{run!r} is not a flow run id; give the id `fleetwright run` printed (a UUID)"
        ) from None


def _convert(event: Any) -> WatchEvent:
    flow_run_id = None
    rid = event.resource.id
    if rid.startswith("prefect.flow-run."):
        flow_run_id = rid.removeprefix("prefect.flow-run.")
    else:
        for related in event.related:
            if related.id.startswith("prefect.flow-run."):
                flow_run_id = related.id.removeprefix("prefect.flow-run.")
                break
    return WatchEvent(
        id=str(event.id),
        event=event.event,
        occurred=event.occurred,
        resource=rid,
        name=event.resource.get("prefect.resource.name"),
        payload=dict(event.payload or {}),
        flow_run_id=flow_run_id,
        state=event.resource.get("prefect.state-type"),
    )


async def _state_of(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
        except ObjectNotFound:
            raise NotFoundError(
                f"no flow run {flow_run_id} on the Prefect server; see `prefect flow-run ls`"
            ) from None
    return flow_run.state.type.value if flow_run.state else "PENDING"


async def afollow(
    flow_run_id: str | None = None,
    *,
    settle: float = 1.0,
    stop_at_end: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> AsyncIterator[WatchEvent]:
    """Events of one fleet run (everything related to its flow run), or of the whole fleet.

    `on_ready` is called once the subscription is open (events from then on are not missed;
    Prefect also replays the last minute's). For one run, iteration ends `settle` seconds
    after the run reached a final state (events sent just before the end can arrive just
    after it), or at once if it had already ended.
    """
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

    if flow_run_id is not None:
        flow_run_id = check_run_id(flow_run_id)
        if await _state_of(flow_run_id) in FINAL_STATES and stop_at_end:
            return
    flt = EventFilter(event=EventNameFilter(prefix=_PREFIXES))
    if flow_run_id is not None:
        flt.any_resource = EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])
    async with get_events_subscriber(filter=flt) as subscriber:
        if on_ready is not None:
            on_ready()
        ended_at: float | None = None
        iterator = subscriber.__aiter__()
        while True:
            timeout = None
            if ended_at is not None:
                timeout = max(0.0, ended_at + settle - time.monotonic())
            try:
                event = await asyncio.wait_for(iterator.__anext__(), timeout)
            except (StopAsyncIteration, TimeoutError):
                return
            item = _convert(event)
            yield item
            if (
                stop_at_end
                and flow_run_id is not None
                and item.final
                and item.flow_run_id == flow_run_id
                and ended_at is None
            ):
                ended_at = time.monotonic()


@dataclass
class FleetTally:
    """Counts from the event stream: sessions started and finished (a retried session counts
    once, with its last outcome), failures by error type, rate and ETA."""

    total: int | None = None
    started: int = 0
    first_at: float | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    error_types: dict[str, str] = field(default_factory=dict)
    state: str = "RUNNING"

    def add(self, ev: WatchEvent) -> None:
        if ev.event == "fleetwright.run.started" and isinstance(ev.payload.get("todo"), int):
            self.total = int(ev.payload["todo"])
        elif ev.event == "fleetwright.session.started":
            self.started += 1
            if self.first_at is None:
                self.first_at = time.monotonic()
        elif ev.event == "fleetwright.session.finished":
            profile = str(ev.payload.get("profile") or ev.name)
            self.outcomes[profile] = str(ev.payload.get("outcome"))
            self.error_types[profile] = str(ev.payload.get("error_type") or "Unknown")
        elif ev.final:
            self.state = ev.state or self.state

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes.values() if o == "ok")

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.ok

    @property
    def finished(self) -> int:
        return len(self.outcomes)

    @property
    def errors(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for profile, outcome in self.outcomes.items():
            if outcome != "ok":
                kind = self.error_types.get(profile, "Unknown")
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    def rate_per_min(self) -> float | None:
        if self.first_at is None or not self.finished:
            return None
        elapsed = time.monotonic() - self.first_at
        return 60.0 * self.finished / elapsed if elapsed > 0 else None

    def eta_seconds(self) -> float | None:
        rate = self.rate_per_min()
        if rate is None or not rate or self.total is None:
            return None
        return max(0.0, (self.total - self.finished) * 60.0 / rate)

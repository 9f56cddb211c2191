"""Automations Fleetwright needs that prefect.yaml cannot hold (its triggers only run
deployments): run-command flow runs whose process died without a word (SIGKILL, OOM, a lost
machine; on a worker or in a user's `fleetwright run --local`) are marked Crashed when their
heartbeats stop, so the `run-command-resume` trigger resumes them.

Heartbeats come from the flow-run process every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds;
Fleetwright's CLI and `fleetwright up`'s worker set it to 30 (Prefect's minimum; Prefect's
default is 180, which this automation would take for a dead run). The automation is armed by
the run's Pending and Running states as well as by each heartbeat, so a run killed before its
first heartbeat reached the server is caught too. `fleetwright up` (or
`python -m deployments.automations`) creates it, or brings an older version up to date.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

__all__ = ["HEARTBEAT_AUTOMATION", "HEARTBEAT_FREQUENCY", "ensure_heartbeat_automation", "main"]

HEARTBEAT_AUTOMATION = "fleetwright: crash run-command runs whose heartbeats stop"
HEARTBEAT_FREQUENCY = timedelta(seconds=30)


async def ensure_heartbeat_automation(*, missed: int = 3) -> UUID:
    """The automation that marks a run-command flow run Crashed after `missed` heartbeats."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    async with get_client() as client:
        automation = AutomationCore(
            name=HEARTBEAT_AUTOMATION,
            description="A fleet run's process or worker died without reporting; mark it "
            "Crashed so run-command-resume picks it up.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": "run-command",
                },
                after={
                    "prefect.flow-run.Pending",
                    "prefect.flow-run.Running",
                    "prefect.flow-run.heartbeat",
                },
                expect={
                    "prefect.flow-run.Running",
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=HEARTBEAT_FREQUENCY * missed,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"No heartbeat for {missed} × "
                    f"{HEARTBEAT_FREQUENCY.total_seconds():g}s: the process running it is gone.",
                )
            ],
        )
        existing = await client.read_automations_by_name(HEARTBEAT_AUTOMATION)
        if existing:
            current = existing[0]
            if current.trigger != automation.trigger or current.actions != automation.actions:
                await client.update_automation(current.id, automation)
            return current.id
        return await client.create_automation(automation)


def main() -> None:
    print(asyncio.run(ensure_heartbeat_automation()))


if __name__ == "__main__":
    main()

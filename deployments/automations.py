"""Automations Fleetwright needs that prefect.yaml cannot hold (its triggers only run
deployments): flow runs whose worker vanished are marked Crashed when their heartbeats stop,
so the `run-command-resume` trigger resumes them.

Heartbeats come from the flow-run process when the worker runs with
PREFECT_RUNNER_HEARTBEAT_FREQUENCY=30 (seconds; Prefect's minimum). `fleetwright up` (or
`python -m deployments.automations`) creates the automation once; rerunning it is a no-op.
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
        existing = await client.read_automations_by_name(HEARTBEAT_AUTOMATION)
        if existing:
            return existing[0].id
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
                after={"prefect.flow-run.heartbeat"},
                expect={
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
                    f"{HEARTBEAT_FREQUENCY.total_seconds():g}s: the worker is gone.",
                )
            ],
        )
        return await client.create_automation(automation)


def main() -> None:
    print(asyncio.run(ensure_heartbeat_automation()))


if __name__ == "__main__":
    main()

"""The heartbeat automation: created once on the real Prefect server, with the trigger and
action that turn a silent run-command flow run into a Crashed one."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = [pytest.mark.prefect]


async def test_heartbeat_automation_is_created_once(prefect_api: str) -> None:
    from prefect.client.orchestration import get_client

    from fleetwright.deployments.automations import (
        HEARTBEAT_AUTOMATION,
        ensure_heartbeat_automation,
    )

    first = await ensure_heartbeat_automation()
    assert await ensure_heartbeat_automation() == first
    async with get_client() as client:
        found = await client.read_automations_by_name(HEARTBEAT_AUTOMATION)
    assert [a.id for a in found] == [first]
    trigger = found[0].trigger
    assert trigger.posture.value == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.within == timedelta(seconds=90)
    assert trigger.match_related.root == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "run-command",
    }
    action = found[0].actions[0]
    assert (action.type, action.state.value) == ("change-flow-run-state", "CRASHED")


def test_prefect_yaml_fleet_deployments_deploy(prefect_api: str) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from fleetwright.embedded.stack import deploy_project

    deploy_project({}, names=["run-command", "run-command-resume", "warm-up"])

    async def read() -> dict[str, object]:
        async with get_client() as client:
            autos = await client.read_automations()
            return {a.name: a for a in autos}

    autos = asyncio.run(read())
    resume = autos["run-command-resume__automation_1"]
    warm_up = autos["warm-up__automation_1"]
    assert resume.enabled and resume.trigger.expect == {"prefect.flow-run.Crashed"}
    assert resume.actions[0].parameters == {
        "command": "{{ flow_run.parameters.command }}",
        "resume_from": "{{ flow_run.id | string }}",
    }
    assert not warm_up.enabled  # opt-in: it opens a browser for every new profile
    assert warm_up.trigger.expect == {"fleetwright.profile.created"}

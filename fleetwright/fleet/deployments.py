"""Fleet runs through deployments: submit a run of `run-command` (or any deployment) and
follow its progress on the Prefect API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleetwright.errors import NotFoundError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = ["RUN_COMMAND_DEPLOYMENT", "afleet_progress", "asubmit_deployment", "flow_run_url"]

RUN_COMMAND_DEPLOYMENT = "run-command/run-command"


async def asubmit_deployment(
    parameters: dict[str, Any],
    *,
    deployment: str = RUN_COMMAND_DEPLOYMENT,
    tags: Sequence[str] = (),
    name: str | None = None,
) -> FlowRun:
    """Create a flow run of `deployment` ("flow/deployment") and return it at once."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            dep = await client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise NotFoundError(
                f"deployment {deployment!r} not found on the Prefect API; run `fleetwright up` "
                "(or `prefect deploy --name run-command`) first"
            ) from None
        return await client.create_flow_run_from_deployment(
            dep.id, parameters=parameters, tags=list(tags) or None, name=name
        )


async def afleet_progress(flow_run_id: str | uuid.UUID) -> tuple[str, int, int]:
    """(state type, sessions finished ok, sessions failed) of a run-command flow run."""
    from prefect.client.orchestration import get_client

    flow_uuid = uuid.UUID(str(flow_run_id))
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_uuid)
        counts = []
        for kinds in (["COMPLETED"], ["FAILED", "CRASHED"]):
            response = await client._client.post(
                "/task_runs/count",
                json={
                    "flow_runs": {"id": {"any_": [str(flow_uuid)]}},
                    "task_runs": {
                        "state": {"type": {"any_": kinds}},
                    },
                },
            )
            response.raise_for_status()
            counts.append(int(response.json()))
    state = flow_run.state.type.value if flow_run.state else "PENDING"
    return state, counts[0], counts[1]


def flow_run_url(flow_run_id: str | uuid.UUID) -> str | None:
    """The flow run's page in the Prefect UI, when the UI URL is known."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None

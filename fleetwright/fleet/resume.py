"""Resuming a crashed fleet run: which runs came before, and what they left half-done.

A rerun started by the `prefect.flow-run.Crashed` trigger gets `resume_from=<crashed run id>`.
It follows that chain back (a resumed run can crash too), takes the original run's selection
and parameters, skips every profile whose session already succeeded in any run of the chain,
marks the sessions the dead process left `running` as `interrupted` (giving back their leases)
and its leftover task runs as Crashed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetwright.errors import NotFoundError, ValidationError
from fleetwright.fleet.stop import close_sessions

__all__ = ["INTERRUPTED", "FleetChain", "fleet_chain", "mark_interrupted", "normalise_run_id"]

INTERRUPTED = "interrupted"
_PREFIX = "prefect.flow-run."


def normalise_run_id(value: str) -> str:
    """A flow run id, also from an event resource id (`prefect.flow-run.<id>`)."""
    text = value.strip()
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :]
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValidationError(
            f"resume_from {value!r} is not a flow run id; pass the id of the crashed run"
        ) from None


@dataclass(kw_only=True)
class FleetChain:
    """The earlier runs of a resumed fleet run, newest first, and the original parameters."""

    run_ids: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


async def fleet_chain(resume_from: str, *, max_depth: int) -> FleetChain:
    """Follow `resume_from` links back through the Prefect API, at most `max_depth` runs."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    chain = FleetChain()
    current: str | None = normalise_run_id(resume_from)
    async with get_client() as client:
        while current is not None:
            if len(chain.run_ids) >= max_depth:
                raise ValidationError(
                    f"fleet run {chain.run_ids[0]} was already resumed {max_depth} times; "
                    "not resuming again — look at why it crashes, then start a new run"
                )
            try:
                flow_run = await client.read_flow_run(uuid.UUID(current))
            except ObjectNotFound:
                raise NotFoundError(f"resume_from: no flow run {current}") from None
            chain.run_ids.append(current)
            chain.parameters = dict(flow_run.parameters)
            parent = chain.parameters.get("resume_from")
            current = normalise_run_id(str(parent)) if parent else None
    return chain


def mark_interrupted(run_ids: Sequence[str], *, url: str | None = None) -> int:
    """Mark the sessions a dead run left `running` as interrupted and give back the leases
    they held (the resumed run need not wait for them to expire); how many there were."""
    return close_sessions(
        run_ids,
        INTERRUPTED,
        "the process running this session died; the fleet run was resumed",
        url=url,
    )

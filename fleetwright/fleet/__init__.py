"""Fleet runs: one command over many profiles — planning, submission, progress, schedules."""

from fleetwright.fleet.plan import FleetPlan, parse_params, plan_run
from fleetwright.fleet.resume import fleet_chain, mark_interrupted, normalise_run_id
from fleetwright.fleet.runs import FleetRun, SessionRow, session_rows, summarise

__all__ = [
    "FleetPlan",
    "FleetRun",
    "SessionRow",
    "fleet_chain",
    "mark_interrupted",
    "normalise_run_id",
    "parse_params",
    "plan_run",
    "session_rows",
    "summarise",
]

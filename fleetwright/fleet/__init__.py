"""Fleet runs: one command over many profiles — planning, submission, progress, schedules."""

from fleetwright.fleet.plan import FleetPlan, parse_params, plan_run
from fleetwright.fleet.resume import fleet_chain, mark_interrupted, normalise_run_id
from fleetwright.fleet.runs import FleetRun, SessionRow, session_rows, summarise
from fleetwright.fleet.stop import acancel_run, close_sessions, close_task_runs, request_stop

__all__ = [
    "FleetPlan",
    "FleetRun",
    "SessionRow",
    "acancel_run",
    "close_sessions",
    "close_task_runs",
    "fleet_chain",
    "mark_interrupted",
    "normalise_run_id",
    "parse_params",
    "plan_run",
    "request_stop",
    "session_rows",
    "summarise",
]

"""Fleetwright's Prefect tasks: thin wrappers over the engine (fleetwright/).

Importing this package points Prefect at Fleetwright's server first (apply_prefect_settings),
and forwards the engine's own log records (the `fleetwright` logger: proxy choice, failover,
quarantine, retries) to the Prefect API while a flow or task run is active, so they appear on
the run's page in the UI, not only in a worker's log file.
"""

from fleetwright.settings import apply_prefect_settings

apply_prefect_settings()

from fleetwright.observability.logformat import apply_log_format  # noqa: E402 - after the settings
from fleetwright.tasks.logs import forward_engine_logs  # noqa: E402

forward_engine_logs()
apply_log_format()

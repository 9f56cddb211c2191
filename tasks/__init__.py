"""Fleetwright's Prefect tasks: thin wrappers over the engine (fleetwright/).

Importing this package forwards the engine's own log records (the `fleetwright` logger: proxy
choice, failover, quarantine, retries) to the Prefect API while a flow or task run is
active, so they appear on the run's page in the UI, not only in a worker's log file.
"""

from fleetwright.observability.logformat import apply_log_format
from fleetwright.tasks.logs import forward_engine_logs

forward_engine_logs()
apply_log_format()

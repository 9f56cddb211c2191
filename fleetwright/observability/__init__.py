"""What an operator sees of a fleet: Prometheus metrics, session events and run logs.

`metrics` records into the host's metrics folder (one file set per process, prometheus_client's
multiprocess mode); `serve` exposes that folder and the catalogue's gauges on one endpoint per
host; `sessions` observes one session (phases, outcome, events) through the session engine's
`fleetwright.session_observer` entry point; `record` is what the integrations and the
run-command flow record; `watch` follows Prefect's event stream; `logformat` is the optional
JSON log format.
"""

from fleetwright.observability.metrics import fleet_metrics

__all__ = ["fleet_metrics"]

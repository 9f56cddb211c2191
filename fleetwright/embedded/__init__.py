"""The embedded default: a local Prefect server on SQLite, managed by Fleetwright."""

from fleetwright.embedded.prefect_server import LocalPrefectServer, free_port

__all__ = ["LocalPrefectServer", "free_port"]

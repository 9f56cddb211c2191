"""The local HTTP API (`fleetwright api serve`): open and close profiles, start and read runs.

Token auth, loopback by default; built on the same engine as the CLI and the Python API.
"""

from fleetwright.localapi.app import create_app
from fleetwright.localapi.holder import OpenedRegistry

__all__ = ["OpenedRegistry", "create_app"]

"""Fleetwright: browser automations over a fleet of managed Chrome profiles, on Prefect.

The Python API (`fleetwright.run_command`, `get_run`, ...) lives in fleetwright.api and is
loaded on first use, so importing fleetwright does not import Prefect.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "aget_run",
    "arun_command",
    "arun_deployment",
    "get_run",
    "open_profile",
    "open_profile_sync",
    "run_command",
    "run_deployment",
]


def __getattr__(name: str) -> Any:
    if name in ("open_profile", "open_profile_sync"):
        from fleetwright import opened

        return getattr(opened, name)
    if name in __all__:
        from fleetwright import api

        return getattr(api, name)
    raise AttributeError(f"module 'fleetwright' has no attribute {name!r}")

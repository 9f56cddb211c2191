"""Fleetwright's deployments; importing the package points Prefect at Fleetwright's server first."""

from fleetwright.settings import apply_prefect_settings

apply_prefect_settings()

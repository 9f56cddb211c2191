"""Fleetwright's flows; importing the package points Prefect at Fleetwright's server first."""

from fleetwright.settings import apply_prefect_settings

apply_prefect_settings()

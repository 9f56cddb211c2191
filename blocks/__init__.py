"""Fleetwright's Prefect blocks (`prefect block register -m blocks`).

Importing the package points Prefect at Fleetwright's server first (apply_prefect_settings).
"""

from fleetwright.settings import apply_prefect_settings

apply_prefect_settings()

from fleetwright.blocks.github import GitHubCredentials  # noqa: E402 - after the settings
from fleetwright.blocks.openai import OpenAICredentials  # noqa: E402
from fleetwright.blocks.profile import BrowserProfile  # noqa: E402
from fleetwright.blocks.proxy import Proxy  # noqa: E402

__all__ = ["BLOCK_TYPES", "BrowserProfile", "GitHubCredentials", "OpenAICredentials", "Proxy"]

BLOCK_TYPES = (BrowserProfile, Proxy, GitHubCredentials, OpenAICredentials)

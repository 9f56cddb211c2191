"""Fleetwright's Prefect blocks (`prefect block register -m blocks`)."""

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.blocks.profile import BrowserProfile
from fleetwright.blocks.proxy import Proxy

__all__ = ["BLOCK_TYPES", "BrowserProfile", "GitHubCredentials", "OpenAICredentials", "Proxy"]

BLOCK_TYPES = (BrowserProfile, Proxy, GitHubCredentials, OpenAICredentials)

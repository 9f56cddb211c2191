"""Fleetwright's Prefect blocks (`prefect block register -m blocks`)."""

from blocks.github import GitHubCredentials
from blocks.openai import OpenAICredentials
from blocks.profile import BrowserProfile
from blocks.proxy import Proxy

__all__ = ["BLOCK_TYPES", "BrowserProfile", "GitHubCredentials", "OpenAICredentials", "Proxy"]

BLOCK_TYPES = (BrowserProfile, Proxy, GitHubCredentials, OpenAICredentials)

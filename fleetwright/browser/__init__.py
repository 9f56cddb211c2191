"""The browser engine: find Chromium, launch profiles in a pool, keep their state and artifacts."""

from fleetwright.browser.artifacts import SessionArtifacts, default_run_key
from fleetwright.browser.chromium import chromium_args, find_chromium
from fleetwright.browser.errors import map_playwright_error
from fleetwright.browser.pool import BrowserPool
from fleetwright.browser.session import BrowserSession
from fleetwright.browser.spec import LaunchSpec, ProxyConfig, context_options, make_launch_spec
from fleetwright.browser.state import BrowserState, StateStore, StateVersion

__all__ = [
    "BrowserPool",
    "BrowserSession",
    "BrowserState",
    "LaunchSpec",
    "ProxyConfig",
    "SessionArtifacts",
    "StateStore",
    "StateVersion",
    "chromium_args",
    "context_options",
    "default_run_key",
    "find_chromium",
    "make_launch_spec",
    "map_playwright_error",
]

"""The proxy settings a Playwright context gets for a proxy, relaying SOCKS5 with credentials.

Chromium takes HTTP(S) proxies with username/password directly, but not SOCKS5 ones: those
go through a loopback relay from the registry (an HTTP proxy with random credentials of its
own), released when the session ends.
"""

from __future__ import annotations

from fleetwright.proxies.relay import RelayRegistry, needs_relay
from fleetwright.specs import ProxySpec

__all__ = ["browser_proxy", "release_browser_proxy"]


async def browser_proxy(spec: ProxySpec, *, registry: RelayRegistry) -> dict[str, str]:
    """Playwright `proxy=` settings for `spec` (starts or shares a relay when needed)."""
    if needs_relay(spec):
        return (await registry.acquire(spec)).browser_proxy()
    settings = {"server": spec.server}
    if spec.username:
        settings["username"] = spec.username
        settings["password"] = spec.password or ""
    return settings


async def release_browser_proxy(spec: ProxySpec, *, registry: RelayRegistry) -> None:
    """Give back what browser_proxy() took (stops the relay with its last user)."""
    if needs_relay(spec):
        await registry.release(spec)

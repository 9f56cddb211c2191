"""Proxies: import parsing, pools and rotation, health and quarantine, SOCKS5 relay, exit IPs."""

from fleetwright.proxies.browser import browser_proxy, release_browser_proxy
from fleetwright.proxies.exitip import ExitCheck, compare_exit, lookup_exit, verify_exit_ip
from fleetwright.proxies.health import (
    HealthChange,
    HealthPolicy,
    ProbeResult,
    due_for_probe,
    probe,
    record_probe_result,
    report_session_result,
    try_probe,
)
from fleetwright.proxies.http import IPInfo, proxy_url
from fleetwright.proxies.parse import (
    ParseResult,
    default_proxy_name,
    parse_proxies,
    parse_proxy_file,
)
from fleetwright.proxies.pools import choose_proxy, is_quarantined, live_sessions, release_proxy
from fleetwright.proxies.relay import RelayRegistry, SocksRelay, needs_relay

__all__ = [
    "ExitCheck",
    "HealthChange",
    "HealthPolicy",
    "IPInfo",
    "ParseResult",
    "ProbeResult",
    "RelayRegistry",
    "SocksRelay",
    "browser_proxy",
    "choose_proxy",
    "compare_exit",
    "default_proxy_name",
    "due_for_probe",
    "is_quarantined",
    "live_sessions",
    "lookup_exit",
    "needs_relay",
    "parse_proxies",
    "parse_proxy_file",
    "probe",
    "proxy_url",
    "record_probe_result",
    "release_browser_proxy",
    "release_proxy",
    "report_session_result",
    "try_probe",
    "verify_exit_ip",
]

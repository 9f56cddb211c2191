"""The Grafana dashboard, generated with grafanalib (the shipped JSON is its output:
`fleetwright metrics dashboard --out FILE` writes it again).

Rows: fleet overview, session phases (p50/p95), failures by error type, proxies, breakers and
rate limits, OpenAI tokens and GitHub requests.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["DATASOURCE_UID", "PANEL_QUERIES", "build_dashboard", "dashboard_json"]

#: the Prometheus data source the provisioning files create
DATASOURCE_UID = "fleetwright-prometheus"

#: (row, title, unit, [(expr, legend)]) — also what the tests run against a real Prometheus
PANEL_QUERIES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("Fleet", "Sessions per minute by outcome", "short", [
        ('sum by (status) (rate(fleetwright_sessions_total[5m])) * 60', "{{status}}"),
    ]),
    ("Fleet", "Failure ratio by command", "percentunit", [
        ('sum by (command) (rate(fleetwright_sessions_total{status="failed"}[15m]))'
         ' / sum by (command) (rate(fleetwright_sessions_total[15m]))', "{{command}}"),
    ]),
    ("Fleet", "Sessions running, browsers and contexts", "short", [
        ("sum(fleetwright_sessions_active)", "sessions"),
        ("sum(fleetwright_browser_processes)", "browsers"),
        ("sum(fleetwright_browser_contexts)", "contexts"),
    ]),
    ("Fleet", "Profiles by status", "short", [
        ("max by (status) (fleetwright_profiles)", "{{status}}"),
    ]),
    ("Phases", "Session phases p50", "s", [
        ("histogram_quantile(0.5, sum by (phase, le) "
         "(rate(fleetwright_session_phase_seconds_bucket[5m])))", "{{phase}}"),
    ]),
    ("Phases", "Session phases p95", "s", [
        ("histogram_quantile(0.95, sum by (phase, le) "
         "(rate(fleetwright_session_phase_seconds_bucket[5m])))", "{{phase}}"),
    ]),
    ("Failures", "Failures by error type", "short", [
        ('sum by (error_type) (increase(fleetwright_sessions_total{status="failed"}[15m]))',
         "{{error_type}}"),
    ]),
    ("Failures", "Scheduled runs and their sessions (6h)", "short", [
        ("sum by (deployment) (increase(fleetwright_fleet_runs_total[6h]))", "runs {{deployment}}"),
        ("sum by (deployment) (increase(fleetwright_fleet_run_sessions_total[6h]))",
         "sessions {{deployment}}"),
    ]),
    ("Proxies", "Proxy health score", "percentunit", [
        ("max by (proxy, pool) (fleetwright_proxy_health_score)", "{{pool}}/{{proxy}}"),
    ]),
    ("Proxies", "Quarantined proxies by pool", "short", [
        ("sum by (pool) (max by (proxy, pool) (fleetwright_proxy_quarantined))", "{{pool}}"),
    ]),
    ("Proxies", "Proxy latency (last probe)", "s", [
        ("max by (proxy, pool) (fleetwright_proxy_latency_seconds)", "{{pool}}/{{proxy}}"),
    ]),
    ("Services", "Circuit breakers (0 closed, 1 half-open, 2 open)", "short", [
        ("max by (service, account) (fleetwright_breaker_state)", "{{service}}:{{account}}"),
    ]),
    ("Services", "Rate-limit wait p95", "s", [
        ("histogram_quantile(0.95, sum by (service, le) "
         "(rate(fleetwright_ratelimit_wait_seconds_bucket[5m])))", "{{service}}"),
    ]),
    ("Services", "OpenAI tokens per hour", "short", [
        ("sum by (model, kind) (rate(fleetwright_openai_tokens_total[1h])) * 3600",
         "{{model}} {{kind}}"),
    ]),
    ("Services", "GitHub requests per minute by status", "short", [
        ("sum by (status) (rate(fleetwright_github_requests_total[5m])) * 60", "{{status}}"),
    ]),
]  # fmt: skip


def build_dashboard() -> Any:
    """The dashboard as grafanalib objects (their validators check every field)."""
    from grafanalib.core import (  # type: ignore[import-untyped]
        Dashboard,
        GridPos,
        RowPanel,
        Target,
        TimeSeries,
    )

    datasource = {"type": "prometheus", "uid": DATASOURCE_UID}
    panels: list[Any] = []
    y = 0
    row_name = None
    x = 0
    for row, title, unit, queries in PANEL_QUERIES:
        if row != row_name:
            if x:
                y += 8
            panels.append(RowPanel(title=row, gridPos=GridPos(h=1, w=24, x=0, y=y)))
            y += 1
            row_name, x = row, 0
        if x >= 24:
            x, y = 0, y + 8
        panels.append(
            TimeSeries(
                title=title,
                dataSource=datasource,
                unit=unit,
                targets=[
                    Target(
                        expr=expr,
                        legendFormat=legend,
                        refId=chr(ord("A") + i),
                        datasource=datasource,
                    )
                    for i, (expr, legend) in enumerate(queries)
                ],
                gridPos=GridPos(h=8, w=8, x=x, y=y),
            )
        )
        x += 8
    return Dashboard(
        title="Fleetwright",
        uid="fleetwright-fleet",
        description="Sessions, phases, failures, proxies, breakers and tokens of a fleet.",
        tags=["fleetwright"],
        panels=panels,
        refresh="30s",
        timezone="utc",
    ).auto_panel_ids()


def dashboard_json() -> str:
    """The dashboard as Grafana JSON, written by grafanalib's own writer."""
    from grafanalib._gen import write_dashboard  # type: ignore[import-untyped]

    out = io.StringIO()
    write_dashboard(build_dashboard(), out)
    return out.getvalue()

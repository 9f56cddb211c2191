"""`fleetwright proxy check [NAME...|--all]`: probe proxies now, with a live table.

`fleetwright.cli.proxy` mounts `check_command` on the `proxy` sub-app; it returns the exit code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fleetwright.errors import ValidationError
from fleetwright.proxies.checker import CheckOutcome, ProxyTarget, check_proxies_now, select_targets
from fleetwright.proxies.health import HealthPolicy
from fleetwright.registry.proxies import load_proxy_spec
from fleetwright.settings import get_settings

__all__ = ["check_command", "render_table"]

_STYLE = {"healthy": "green", "failing": "yellow", "quarantined": "red", "unknown": "dim"}


def render_table(targets: Sequence[ProxyTarget], outcomes: dict[str, CheckOutcome]) -> Table:
    """The check table: one row per proxy, 'checking…' until its outcome arrives."""
    table = Table(title="Proxy check", expand=False)
    for column in ("Proxy", "Result", "Latency", "Exit IP", "Country", "Health", "Score", "Note"):
        table.add_column(column, no_wrap=column != "Note")
    for target in targets:
        out = outcomes.get(target.name)
        if out is None:
            table.add_row(target.name, "[dim]checking…[/]", "", "", "", target.health, "", "")
            continue
        res = out.result
        note = res.error or ""
        if out.change is not None:
            note = f"[bold]{out.change.kind}[/] " + note
        elif out.health == "quarantined" and out.quarantined_until:
            note = f"next probe {out.quarantined_until:%H:%M:%S} " + note
        table.add_row(
            target.name,
            "[green]ok[/]" if res.ok else "[red]failed[/]",
            f"{res.latency_ms:.0f} ms" if res.latency_ms is not None else "",
            res.exit_ip or "",
            res.country or "",
            f"[{_STYLE.get(out.health, 'white')}]{out.health}[/]",
            f"{out.error_score:.2f}",
            note,
        )
    return table


def check_command(
    names: Sequence[str] | None = None,
    *,
    all_: bool = False,
    echo_url: str | None = None,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
    concurrency: int = 8,
    policy: HealthPolicy | None = None,
    console: Console | None = None,
) -> int:
    """Probe the named proxies (or every due one with `all_`); 0 if all pass, 1 otherwise.

    Raises ValidationError / NotFoundError for bad input (the CLI prints one line, exit 2).
    """
    if bool(names) == all_:
        raise ValidationError("name the proxies to check, or pass --all (not both)")
    if concurrency < 1:
        raise ValidationError(f"--concurrency must be at least 1, not {concurrency}")
    settings = get_settings()
    echo_url = echo_url or f"http://127.0.0.1:{settings.demo_site_port}/ip"
    console = console or Console()
    targets = select_targets(list(names) if names else None)
    if not targets:
        console.print("No proxies are due for a check.")
        return 0
    outcomes: dict[str, CheckOutcome] = {}
    with Live(render_table(targets, outcomes), console=console, refresh_per_second=8) as live:

        def update(outcome: CheckOutcome) -> None:
            outcomes[outcome.name] = outcome
            live.update(render_table(targets, outcomes))

        asyncio.run(
            check_proxies_now(
                targets,
                load_spec=load_proxy_spec,
                echo_url=echo_url,
                info_url=info_url,
                timeout=timeout,
                concurrency=concurrency,
                policy=policy,
                on_result=update,
            )
        )
    failed = sum(1 for o in outcomes.values() if not o.result.ok)
    console.print(f"{len(outcomes) - failed} ok, {failed} failed")
    return 1 if failed else 0

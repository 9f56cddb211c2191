"""The demo that `fleetwright up` runs: the local demo site, two demo profiles, a demo run."""

from __future__ import annotations

from typing import Any

from fleetwright.errors import ConfigurationError
from fleetwright.settings import Settings
from fleetwright.testing.site import SiteServer

__all__ = [
    "DEMO_PROFILES",
    "prepare_demo",
    "start_demo_site",
    "store_demo_passwords",
    "trigger_demo_run",
]

DEMO_PROFILES: list[dict[str, Any]] = [
    {
        "name": "demo-alice",
        "tags": ["demo"],
        "fingerprint": {"locale": "en-GB", "timezone": "Europe/London"},
        "notes": "Demo profile created by `fleetwright up`.",
    },
    {
        "name": "demo-bob",
        "tags": ["demo"],
        "fingerprint": {"locale": "de-DE", "timezone": "Europe/Berlin", "color_scheme": "dark"},
        "notes": "Demo profile created by `fleetwright up`.",
    },
]


def start_demo_site(settings: Settings) -> SiteServer:
    """Serve the demo site on the configured port."""
    try:
        return SiteServer(port=settings.demo_site_port).start()
    except (OSError, RuntimeError) as exc:
        raise ConfigurationError(
            f"the demo site could not start on port {settings.demo_site_port} ({exc}); "
            "free the port or set FLEETWRIGHT_DEMO_SITE_PORT"
        ) from None


async def prepare_demo(settings: Settings, site_url: str) -> list[str]:
    """Load the project's commands and make sure the demo profiles exist (idempotent)."""
    from fleetwright.commands import load_commands
    from fleetwright.registry import import_profiles

    report = load_commands()
    profiles = await import_profiles([(p["name"], p) for p in DEMO_PROFILES])
    stored = await store_demo_passwords()
    return [
        f"commands: {', '.join(sorted(report.added + report.unchanged)) or 'none'}",
        f"demo profiles: {', '.join(p['name'] for p in DEMO_PROFILES)} "
        f"({profiles.created} created, {profiles.unchanged + profiles.updated} already there)",
        f"demo passwords: Secret blocks {', '.join(stored)}",
    ]


async def store_demo_passwords(profiles: list[str] | None = None) -> list[str]:
    """Each profile's demo-site password as a Secret block `demo-site-<profile>` (what the
    demo command's `password` parameter reads), created once with a random value: the demo
    site accepts any password. Default: the demo profiles."""
    import secrets

    from prefect.blocks.system import Secret

    from fleetwright.specs import block_name_for

    names = []
    for profile in profiles if profiles is not None else [p["name"] for p in DEMO_PROFILES]:
        name = block_name_for(f"demo-site-{profile}")
        try:
            await Secret.aload(name)
        except ValueError:
            await Secret(value=secrets.token_urlsafe(12)).asave(name)
        names.append(name)
    return names


async def trigger_demo_run(server_url: str, site_url: str) -> str:
    """Start the demo command on the demo profiles through the run-command deployment."""
    from prefect.deployments import arun_deployment

    flow_run = await arun_deployment(
        "run-command/run-command",
        parameters={"command": "demo", "tags": ["demo"], "params": {"base_url": site_url}},
        timeout=0,
    )
    return f"{server_url}/runs/flow-run/{flow_run.id}"

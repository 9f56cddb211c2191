"""`fleetwright status`: where things are and whether they answer."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleetwright.cli.output import print_json, print_table

__all__ = ["status"]


def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the catalogue, the Prefect API, Chromium and counts."""
    import os

    import httpx

    from fleetwright.catalogue.db import safe_url
    from fleetwright.errors import FleetwrightError
    from fleetwright.registry.profiles import count_profiles
    from fleetwright.settings import get_settings

    settings = get_settings()
    info: dict[str, Any] = {
        "home": str(settings.home),
        "catalogue": safe_url(settings.catalogue_url),
        "prefect_api": os.environ.get("PREFECT_API_URL"),
    }
    try:
        info["profiles"] = count_profiles()
        info["catalogue_ok"] = True
    except FleetwrightError as exc:
        info["catalogue_ok"] = False
        info["catalogue_error"] = exc.message
    try:
        ok = httpx.get(f"{info['prefect_api']}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        ok = False
    info["prefect_ok"] = ok
    try:
        from fleetwright.browser.chromium import find_chromium

        info["chromium"] = str(find_chromium(settings))
    except FleetwrightError as exc:
        info["chromium"] = None
        info["chromium_error"] = exc.message
    except ImportError:
        info["chromium"] = None
    if as_json:
        print_json(info)
    else:
        print_table([{"k": k, "v": v} for k, v in info.items()], [("k", "What"), ("v", "State")])

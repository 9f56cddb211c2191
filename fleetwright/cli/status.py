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
    from fleetwright.prefect_api import api_client_options

    options = api_client_options()
    try:
        with httpx.Client(timeout=3, **options) as client:
            ok = client.get(f"{info['prefect_api']}/health").status_code == 200
            # /health answers anyone: whether this client's credential is accepted is apart
            accepted = ok and client.get(f"{info['prefect_api']}/admin/version").status_code
    except httpx.HTTPError:
        ok = accepted = False
    info["prefect_ok"] = ok
    if ok:
        credential = "given" if options["headers"] else "none"
        info["prefect_auth"] = f"{credential}, {'refused' if accepted == 401 else 'accepted'}"
    try:
        from fleetwright.browser.chromium import find_chromium, find_headless_shell

        info["chromium"] = str(find_chromium(settings))
        if settings.headless_shell:
            shell = find_headless_shell(settings)
            info["headless_shell"] = str(shell) if shell else "off"
    except FleetwrightError as exc:
        info.setdefault("chromium", None)
        info["chromium_error"] = exc.message
    except ImportError:
        info["chromium"] = None
    if as_json:
        print_json(info)
    else:
        print_table([{"k": k, "v": v} for k, v in info.items()], [("k", "What"), ("v", "State")])

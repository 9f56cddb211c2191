"""An example of composing Fleetwright's tasks in your own flow.

It signs one profile in to a site, reads the page title, saves the profile's state and records
the run — the same steps run-command does, arranged by hand so you can put your own logic
between them (here: a plain Python check on what the page shows).

    python -m flows.custom_session demo-alice http://127.0.0.1:8765
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from prefect import flow, get_run_logger

from fleetwright.browser import LaunchSpec
from fleetwright.commands import CommandContext, parse_command
from fleetwright.registry import get_profile
from fleetwright.sessions import lease
from fleetwright.sessions.engine import profile_scope
from fleetwright.settings import get_settings
from fleetwright.specs import ProfileSpec
from fleetwright.tasks.sessions import (
    apply_proxy,
    current_engine,
    launch_profile,
    record_run,
    run_command_steps,
    save_profile_state,
)

__all__ = ["sign_in_and_check"]

SIGN_IN = parse_command(
    {
        "name": "sign-in",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/login"},
            {"fill": {"selector": "#user", "value": "{{ profile.name }}"}},
            {"fill": {"selector": "#password", "value": "demo"}},
            {"click": "#submit"},
            {"extract": {"id": "who", "selector": "#who", "kind": "text"}},
        ],
    }
)


@flow(name="sign-in-and-check")
async def sign_in_and_check(profile: str, base_url: str) -> dict[str, Any]:
    """Sign `profile` in at `base_url` and check the page greets it by name."""
    logger = get_run_logger()
    record = get_profile(profile)
    spec = ProfileSpec.model_validate(
        {k: record[k] for k in ProfileSpec.model_fields if k in record}
    )
    settings = get_settings()
    async with lease.lease(
        record["id"], profile, f"custom:{profile}", ttl=settings.lease_ttl, wait=settings.lease_wait
    ):
        proxy = await apply_proxy(record["proxy"])
        session = await launch_profile(
            LaunchSpec(
                profile_name=profile,
                fingerprint=spec.fingerprint,
                state_mode=spec.state_mode,
                proxy=proxy,
            )
        )
        failed = True
        try:
            ctx = CommandContext(
                artifacts_dir=settings.artifacts_dir / f"custom-{profile}",
                profile=profile_scope(spec),
                params={"base_url": base_url},
            )
            result = await run_command_steps(session, SIGN_IN, ctx)
            greeting = result.outputs["who"]["text"]
            if profile not in greeting:
                raise AssertionError(f"the page greets {greeting!r}, not {profile!r}")
            failed = False
        finally:
            await save_profile_state(session, failed=failed)
            await current_engine().close()
    logger.info("%s: %s", profile, greeting)
    record_run(profile, SIGN_IN, status="ok", outputs=result.outputs)
    return result.outputs


if __name__ == "__main__":
    asyncio.run(sign_in_and_check(sys.argv[1], sys.argv[2]))

"""An example of composing Fleetwright's session tasks in your own flow.

It signs one profile in to a site, reads the page title, saves the profile's state and records
the run — the same engine steps run-command takes, arranged by hand so you can put your own
logic between them (here: a plain Python check on what the page shows). Because the tasks are
the engine's own steps, the profile gets what run-command gives it: its lease, its proxy (or
one chosen from its pool; a SOCKS5 relay when needed, released afterwards), the proxy's health
reported, and a run row that says how the session went, failures included.

    python -m flows.custom_session demo-alice http://127.0.0.1:8765
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from prefect import flow, get_run_logger

from fleetwright.commands import parse_command
from fleetwright.sessions import SessionEngine
from fleetwright.tasks.sessions import (
    apply_proxy,
    begin_session,
    launch_profile,
    record_run,
    run_command_steps,
    save_profile_state,
    use_engine,
)

__all__ = ["SIGN_IN", "sign_in_and_check"]

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
            # the address the site saw: the proxy's exit address when the profile has one
            {"extract": {"id": "client", "selector": "#client", "kind": "text"}},
        ],
    }
)


@flow(name="sign-in-and-check")
async def sign_in_and_check(profile: str, base_url: str) -> dict[str, Any]:
    """Sign `profile` in at `base_url` and check the page greets it by name."""
    logger = get_run_logger()
    engine = SessionEngine()
    use_engine(engine)
    try:
        session = await begin_session(profile, SIGN_IN, {"base_url": base_url})
        try:
            await apply_proxy(session)
            await launch_profile(session)
            result = await run_command_steps(session)
            greeting = result.outputs["who"]["text"]
            if profile not in greeting:  # your own logic between the steps
                raise AssertionError(f"the page greets {greeting!r}, not {profile!r}")
            await save_profile_state(session)
        except BaseException as exc:
            await record_run(session, exc)
            raise
        record = await record_run(session)
    finally:
        await engine.close()
    logger.info("%s: %s (run %s)", profile, greeting, record["run_id"])
    return dict(record["outputs"])


if __name__ == "__main__":
    asyncio.run(sign_in_and_check(sys.argv[1], sys.argv[2]))

"""A real session run with the `object` state backend: the login cookie saved by a session on
host A (its own home) is loaded by a session on host B (another home, no shared disk) through
the bucket and the shared catalogue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.commands import parse_command
from fleetwright.registry import add_profile
from fleetwright.sessions import SessionEngine, SessionRequest
from fleetwright.settings import reset_settings
from fleetwright.specs import validate_profile
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

LOGIN = parse_command(
    {
        "name": "login",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/login"},
            {"fill": {"selector": "#user", "value": "{{ profile.name }}"}},
            {"fill": {"selector": "#password", "value": "pw"}},
            {"click": "#submit"},
            {"extract": {"id": "who", "selector": "#who", "kind": "text"}},
        ],
    }
)
WHO = parse_command(
    {
        "name": "who",
        "version": "1",
        "params": {"base_url": {"type": "str"}},
        "steps": [
            {"goto": "{{ params.base_url }}/account"},
            {"extract": {"id": "who", "selector": "#who", "kind": "text"}},
        ],
    }
)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


def test_cookies_follow_the_profile_to_another_home(
    prefect_api: str,
    home: Path,
    tmp_path: Path,
    site: SiteServer,
    use_backend: Callable[[str], str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEETWRIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    use_backend("object")
    asyncio.run(add_profile(validate_profile({"name": "roaming"})))

    async def run(command: object) -> dict[str, object]:
        async with SessionEngine() as engine:
            result = await engine.run(
                SessionRequest(profile="roaming", command=command, params={"base_url": site.url})
            )
            assert result.status == "ok"
            return dict(result.outputs)

    outputs = asyncio.run(run(LOGIN))
    assert outputs["who"]["text"] == "Signed in as roaming"  # type: ignore[index]
    host_b = tmp_path / "host-b"
    monkeypatch.setenv("FLEETWRIGHT_HOME", str(host_b))
    reset_settings()
    outputs = asyncio.run(run(WHO))
    assert outputs["who"]["text"] == "Signed in as roaming", "host B has host A's cookie"  # type: ignore[index]
    # host B has no state files of its own: only copies cached from the bucket
    assert not list(host_b.rglob("v*.json"))
    assert list(host_b.glob("profiles/*/cache/*.json"))
    with session_scope() as s:
        row = s.query(Profile).filter_by(name="roaming").one()
        assert row.state_version == 2  # each ok session saved a version

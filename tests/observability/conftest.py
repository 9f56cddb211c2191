"""A small fleet for observability tests: four profiles on the demo site, one that fails its
assertion, one whose proxy is quarantined and fails over to the other proxy of its pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.testing.proxies import TinyProxy
from fleetwright.testing.site import SiteServer, serve_site

COMMAND = """\
name: mon-check
version: "1"
timeout: 15
trace: on-failure
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/login"
  - fill: {selector: "#user", value: "{{ profile.notes }}"}
  - fill: {selector: "#password", value: "demo"}
  - click: "#submit"
  - wait_for: {url: "**/account"}
  - screenshot: {name: signed-in}
  - assert: {text: {selector: "#who", equals: "Signed in as {{ profile.name }}"}}
"""

GOOD = ["mon-ok1", "mon-ok2"]
MOVER = "mon-mover"  # on proxy mon-a (quarantined): fails over to mon-b
BAD = "mon-bad"  # signs in as someone else: its assertion fails (not retryable)
PROFILES = [*GOOD, MOVER, BAD]


@dataclass
class SmallFleet:
    site: SiteServer
    proxies: tuple[TinyProxy, TinyProxy]
    run: Callable[..., Any]
    good: tuple[str, ...] = (*GOOD, MOVER)
    mover: str = MOVER
    bad: str = BAD
    profiles: tuple[str, ...] = tuple(PROFILES)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


@pytest.fixture
def small_fleet(
    site: SiteServer, prefect_api: str, home: Path, tmp_path: Path
) -> Iterator[SmallFleet]:
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Proxy, utcnow
    from fleetwright.commands import load_commands
    from fleetwright.registry import add_profile, add_proxy
    from fleetwright.specs import validate_profile

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "mon-check.yaml").write_text(COMMAND)
    with (
        TinyProxy(password="mon-a-secret", workdir=tmp_path / "a") as a,
        TinyProxy(password="mon-b-secret", workdir=tmp_path / "b") as b,
    ):
        for name, server in (("mon-a", a), ("mon-b", b)):
            asyncio.run(add_proxy(server.spec(name, pool="mon")))
        for name in PROFILES:
            data: dict[str, Any] = {"name": name, "notes": "intruder" if name == BAD else name,
                                    "tags": ["mon"]}  # fmt: skip
            if name == MOVER:
                data.update(proxy="mon-a", proxy_failover=True)
            asyncio.run(add_profile(validate_profile(data)))
        with session_scope() as s:
            bad = s.scalar(select(Proxy).where(Proxy.name == "mon-a"))
            assert bad is not None
            bad.health, bad.quarantined_until = "quarantined", utcnow() + timedelta(minutes=30)
        load_commands([tmp_path / "commands"])

        def run(**extra: Any) -> Any:
            from fleetwright.flows.run_command import run_command

            return asyncio.run(
                run_command(
                    command="mon-check", tags=["mon"], params={"base_url": site.url},
                    concurrency=2, return_state=True, **extra,
                )
            )  # fmt: skip

        yield SmallFleet(site=site, proxies=(a, b), run=run)

"""The profile specs sessions claim are cached per process and never read stale: a write that
returned, from this process or another one, is what the next claim sees."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fleetwright.catalogue.db import session_scope
from fleetwright.registry import add_profile, add_proxy, edit_profile
from fleetwright.sessions.claim import claim_profile
from fleetwright.sessions.spec_cache import spec_cache
from fleetwright.specs import ProfileSpec, validate_profile, validate_proxy

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    spec_cache.clear()


def _claim(url: str, name: str) -> ProfileSpec:
    with session_scope(url) as s:
        claim = claim_profile(s, name, "test", timedelta(seconds=30), store=None, take_lease=False)
        return claim.spec


def _add(url: str, data: dict[str, object]) -> None:
    asyncio.run(add_profile(validate_profile(data), url=url))


def test_a_second_claim_hits_and_a_write_invalidates(
    prefect_api: str, pg_url: str, home: Path
) -> None:
    _add(pg_url, {"name": "cached", "tags": ["a"], "notes": "one"})
    first = _claim(pg_url, "cached")
    first.notes = "changed by a caller"  # callers get their own copy
    second = _claim(pg_url, "cached")
    assert (spec_cache.misses, spec_cache.hits) == (1, 1)
    assert second.notes == "one" and second.tags == ["a"]

    asyncio.run(edit_profile("cached", {"notes": "two", "tags": ["a", "b"]}, url=pg_url))
    after = _claim(pg_url, "cached")
    assert after.notes == "two" and after.tags == ["a", "b"]
    assert spec_cache.misses == 2

    proxy = validate_proxy({"name": "px", "host": "127.0.0.1", "port": 3128})
    asyncio.run(add_proxy(proxy, url=pg_url))
    asyncio.run(edit_profile("cached", {"proxy": "px"}, url=pg_url))
    assert _claim(pg_url, "cached").proxy == "px"
    asyncio.run(edit_profile("cached", {"status": "archived"}, url=pg_url))
    with pytest.raises(Exception, match="archived"):
        _claim(pg_url, "cached")


_WRITER = """
import asyncio, os, sys
from fleetwright.registry import edit_profile
url = os.environ["FLEETWRIGHT_DATABASE_URL"]
asyncio.run(edit_profile("shared", {"notes": sys.argv[1]}, url=url))
"""


def test_a_write_from_another_process_is_seen_by_the_next_claim(
    prefect_api: str, pg_url: str, home: Path
) -> None:
    _add(pg_url, {"name": "shared", "notes": "v0"})
    assert _claim(pg_url, "shared").notes == "v0"
    env = {**os.environ, "FLEETWRIGHT_DATABASE_URL": pg_url, "FLEETWRIGHT_HOME": str(home)}
    for n in range(1, 4):
        assert _claim(pg_url, "shared").notes == f"v{n - 1}"  # cached
        subprocess.run([sys.executable, "-c", _WRITER, f"v{n}"], env=env, check=True, timeout=120)
        assert _claim(pg_url, "shared").notes == f"v{n}"  # the other process's write, at once
    assert spec_cache.hits >= 3 and spec_cache.misses == 4


def test_two_catalogues_with_the_same_profile_id_never_share_a_spec(
    prefect_api: str, pg_url: str, home: Path
) -> None:
    """Tests, tools and the bench open several catalogues in one process, where ids repeat:
    the first profile of each catalogue has id 1 and revision 1."""
    from fleetwright.catalogue.db import upgrade

    sqlite_url = f"sqlite:///{home / 'other-catalogue.db'}"
    upgrade(sqlite_url)
    _add(pg_url, {"name": "first-here", "notes": "postgres"})
    _add(sqlite_url, {"name": "first-there", "notes": "sqlite"})
    here, there = _claim(pg_url, "first-here"), _claim(sqlite_url, "first-there")
    assert (here.name, here.notes) == ("first-here", "postgres")
    assert (there.name, there.notes) == ("first-there", "sqlite")
    assert spec_cache.misses == 2 and spec_cache.hits == 0

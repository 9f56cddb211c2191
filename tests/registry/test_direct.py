"""`fleetwright profile add`'s block write over Prefect's REST API (registry/direct.py), against
the real session Prefect server: the same block, row and event as through Prefect's client, no
Prefect import in the CLI process, and the usual path wherever the direct one cannot apply."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleetwright.blocks import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.registry import add_profile, direct, list_profiles
from fleetwright.registry.blockstore import open_block_store
from fleetwright.specs import validate_profile

pytestmark = pytest.mark.prefect

_PREFECT_MODULE = re.compile(r"\|\s+prefect(\.|\s*$)", re.MULTILINE)


@pytest.fixture
def registered(prefect_api: str) -> str:
    from fleetwright.embedded.stack import register_blocks

    asyncio.run(register_blocks())
    return prefect_api


def _document(name: str) -> Any:
    async def read() -> Any:
        async with open_block_store() as bs:
            return await bs.client.read_block_document_by_name(
                name, BrowserProfile.get_block_type_slug(), include_secrets=True
            )

    return asyncio.run(read())


def _created_events(name: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The stored `fleetwright.profile.created` events of profile `name` (waits for one)."""

    async def read() -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        async with open_block_store() as bs:
            while True:
                response = await bs.client._client.post(
                    "/events/filter",
                    json={
                        "filter": {
                            "event": {"name": ["fleetwright.profile.created"]},
                            "resource": {"id": [f"fleetwright.profile.{name}"]},
                        }
                    },
                )
                response.raise_for_status()
                events: list[dict[str, Any]] = response.json()["events"]
                if events or time.monotonic() > deadline:
                    return events
                await asyncio.sleep(0.5)

    return asyncio.run(read())


def test_registry_names_load_on_first_use_and_profiles_need_no_prefect() -> None:
    code = (
        "import sys, fleetwright.registry as r, fleetwright.registry.profiles;"
        "assert not any(m.split('.')[0] == 'prefect' for m in sys.modules), 'prefect loaded';"
        "assert sorted(r._WHERE) == sorted(r.__all__);"
        "[getattr(r, n) for n in r.__all__];"
        "assert 'prefect' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_schema_checksum_is_the_one_prefect_computes() -> None:
    """A change to ProfileSpec's fields or to Prefect's schema hashing fails here: update
    PROFILE_SCHEMA_CHECKSUM (until then the CLI takes the usual, slower path)."""
    assert BrowserProfile._calculate_schema_checksum() == direct.PROFILE_SCHEMA_CHECKSUM


def test_cli_add_writes_block_row_and_event_without_importing_prefect(
    registered: str, home: Path
) -> None:
    env = dict(os.environ, FLEETWRIGHT_HOME=str(home))
    argv = [sys.executable, "-X", "importtime", "-m", "fleetwright.cli", "profile", "add"]
    done = subprocess.run(
        [*argv, "Dora Direct", "--tag", "qa", "--timezone", "Europe/Paris", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "import time:" in done.stderr  # the check below reads a real import trace
    assert _PREFECT_MODULE.search(done.stderr) is None, "the CLI process imported Prefect"
    import json

    record = json.loads(done.stdout)
    assert record["block_pending"] is False and record["block_document_id"]

    doc = _document(record["block_name"])
    assert str(doc.id) == record["block_document_id"]
    assert doc.block_schema_id is not None
    assert doc.block_schema.checksum == direct.PROFILE_SCHEMA_CHECKSUM
    block = BrowserProfile.model_validate(doc.data)
    assert block.name == "Dora Direct" and block.tags == ["qa"]
    assert block.fingerprint.timezone == "Europe/Paris"

    with session_scope(f"sqlite:///{home / 'catalogue.db'}") as s:
        row = s.query(Profile).filter_by(name="Dora Direct").one()
        assert row.projected_revision == row.revision == 1
        assert row.projected is not None and row.projected["fingerprint"]["timezone"] == (
            "Europe/Paris"
        )
    [event] = _created_events("Dora Direct")
    assert event["payload"] == {"tags": ["qa"]}
    assert event["resource"]["prefect.resource.name"] == "Dora Direct"


def test_direct_block_equals_the_client_written_one(registered: str, catalogue_url: str) -> None:
    data = {
        "tags": ["b", "a"],
        "fingerprint": {"locale": "de-DE", "geolocation": {"latitude": 52.5, "longitude": 13.4}},
        "notes": "same either way",
    }
    via_direct = asyncio.run(
        add_profile(validate_profile({"name": "via-direct", **data}), url=catalogue_url,
                    direct=True)
    )  # fmt: skip
    via_client = asyncio.run(
        add_profile(validate_profile({"name": "via-client", **data}), url=catalogue_url)
    )
    a, b = _document(via_direct["block_name"]), _document(via_client["block_name"])
    assert (a.block_schema_id, a.block_type_id) == (b.block_schema_id, b.block_type_id)
    assert {**a.data, "name": None} == {**b.data, "name": None}
    assert a.is_anonymous is b.is_anonymous is False
    rows = {r["name"]: r for r in list_profiles(url=catalogue_url)}
    assert not rows["via-direct"]["block_pending"] and not rows["via-client"]["block_pending"]
    with session_scope(catalogue_url) as s:
        projected = {p.name: p.projected for p in s.query(Profile)}
    assert {**projected["via-direct"], "name": None} == {**projected["via-client"], "name": None}
    assert _created_events("via-direct") and _created_events("via-client")


def test_unknown_schema_takes_the_usual_path(
    registered: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Prefect whose checksum differs (or blocks never registered): the client path writes."""
    monkeypatch.setattr(direct, "PROFILE_SCHEMA_CHECKSUM", "sha256:" + "0" * 64)
    calls: list[bool] = []
    real = direct.add_profile_block

    async def spy(*args: Any, **kwargs: Any) -> bool:
        calls.append(await real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(direct, "add_profile_block", spy)
    record = asyncio.run(
        add_profile(validate_profile({"name": "odd-schema"}), url=catalogue_url, direct=True)
    )
    assert calls == [False]
    assert record["block_pending"] is False
    assert _document(record["block_name"]).data["name"] == "odd-schema"


def test_a_stray_document_of_that_name_is_overwritten_by_the_usual_path(
    registered: str, catalogue_url: str
) -> None:
    """A block of the same name left behind (e.g. written by hand): the direct POST gets 409,
    nothing is half-written, and the usual path overwrites it with the profile."""

    async def stray() -> None:
        await BrowserProfile(name="someone else", notes="stray").save("taken", overwrite=True)

    asyncio.run(stray())
    record = asyncio.run(
        add_profile(
            validate_profile({"name": "taken", "notes": "mine"}), url=catalogue_url, direct=True
        )
    )
    assert record["block_pending"] is False
    doc = _document("taken")
    assert str(doc.id) == record["block_document_id"]
    assert (doc.data["name"], doc.data["notes"]) == ("taken", "mine")


@pytest.mark.parametrize(
    "setup",
    ["api-key", "custom-headers", "profiles-file", "dotenv", "prefect-toml", "pyproject"],
)
def test_client_settings_from_elsewhere_leave_it_to_the_client(
    setup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    monkeypatch.chdir(tmp_path)
    assert direct.client_config() is not None
    if setup == "api-key":
        monkeypatch.setenv("PREFECT_API_KEY", "pnu_x")
    elif setup == "custom-headers":
        monkeypatch.setenv("PREFECT_CLIENT_CUSTOM_HEADERS", '{"X-A": "b"}')
    elif setup == "profiles-file":
        (tmp_path / "profiles.toml").write_text(
            'active = "mine"\n[profiles.mine]\nPREFECT_API_AUTH_STRING = "u:p"\n'
        )
    elif setup == "dotenv":
        (tmp_path / ".env").write_text("PREFECT_API_AUTH_STRING=u:p\n")
    elif setup == "prefect-toml":
        (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://elsewhere/api"\n')
    else:
        (tmp_path / "pyproject.toml").write_text('[tool.prefect.api]\nkey = "pnu_x"\n')
    assert direct.client_config() is None


def test_config_carries_the_credential_and_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "https://127.0.0.1:4200/api/")
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "fleetwright:s3cret")
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.chdir(tmp_path)
    config = direct.client_config()
    assert config is not None
    assert config.api_url == "https://127.0.0.1:4200/api"
    assert config.headers == {"Authorization": "Basic ZmxlZXR3cmlnaHQ6czNjcmV0"}
    assert config.verify == str(tmp_path / "ca.pem")
    monkeypatch.setenv("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "true")
    assert direct.client_config().verify is False  # type: ignore[union-attr]

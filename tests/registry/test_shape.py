"""One profile shape: the block, the row, export and the template scope all follow ProfileSpec,
and the catalogue migration repairs rows written in the old assignment shape."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fleetwright.blocks import BrowserProfile
from fleetwright.catalogue.db import dispose_engines, session_scope, upgrade
from fleetwright.catalogue.models import Profile
from fleetwright.catalogue.shape import apply_spec, merge_edit, row_to_spec
from fleetwright.sessions.engine import profile_scope
from fleetwright.specs import ProfileSpec, validate_profile

FULL: dict[str, Any] = {
    "name": "shape",
    "tags": ["a", "b"],
    "fingerprint": {
        "user_agent": "UA/1",
        "viewport_width": 1000,
        "viewport_height": 700,
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "geolocation": {"latitude": 52.5, "longitude": 13.4, "accuracy": 10.0},
        "color_scheme": "dark",
        "extra_headers": {"X-A": "1"},
    },
    "state_mode": "persistent",
    "status": "active",
    "proxy": None,
    "proxy_pool": "eu",
    "proxy_policy": "random",
    "proxy_failover": True,
    "ip_check": "warn",
    "country": "DE",
    "notes": "n",
}


def test_block_fields_are_the_spec_fields() -> None:
    assert list(BrowserProfile.model_fields) == list(ProfileSpec.model_fields)
    spec = validate_profile(FULL)
    block = BrowserProfile.from_spec(spec)
    assert ProfileSpec.model_validate(block.spec_data()) == spec


def test_row_round_trip_and_assignment_change_drops_the_binding() -> None:
    spec = validate_profile(FULL)
    row = Profile(name="shape")
    row.tag_rows = []
    assert apply_spec(row, spec, {}, {"eu": 7})
    assert row.proxy_pool_id == 7 and row.proxy_id is None
    row.bound_proxy_id = 3
    assert not apply_spec(row, spec, {}, {"eu": 7})  # nothing changed: the binding stays
    assert row.bound_proxy_id == 3
    other = spec.model_copy(update={"proxy_pool": None, "proxy": "px"})
    assert apply_spec(row, other, {"px": 9}, {})
    assert (row.proxy_id, row.proxy_pool_id, row.bound_proxy_id) == (9, None, None)


def test_template_scope_has_every_field() -> None:
    scope = profile_scope(validate_profile(FULL))
    assert set(ProfileSpec.model_fields) <= set(scope)
    assert scope["timezone"] == scope["fingerprint"]["timezone"] == "Europe/Berlin"
    assert scope["proxy_pool"] == "eu"


def test_old_flat_blocks_are_read_in_the_current_shape() -> None:
    flat = {
        "name": "old", "tags": [], "state_mode": "storage", "status": "active",
        "user_agent": None, "viewport_width": 1280, "viewport_height": 800, "locale": "fr-FR",
        "timezone": "Europe/Paris", "latitude": 48.8, "longitude": 2.3, "color_scheme": "light",
        "extra_headers": {}, "proxy": None, "proxy_pool": None, "proxy_policy": "sticky",
        "proxy_failover": False, "ip_check": "off", "country": None, "notes": "",
    }  # fmt: skip
    spec = validate_profile(BrowserProfile.upgrade_data(flat))
    assert spec.fingerprint.timezone == "Europe/Paris"
    assert (
        spec.fingerprint.geolocation is not None and spec.fingerprint.geolocation.latitude == 48.8
    )


def test_merge_edit_keeps_both_sides() -> None:
    base = {"notes": "", "fingerprint": {"locale": "en-US", "timezone": "UTC"}, "proxy": "a",
            "proxy_pool": None}  # fmt: skip
    edited = {**base, "fingerprint": {"locale": "en-US", "timezone": "Asia/Tokyo"}}
    current = {**base, "notes": "cli", "fingerprint": {"locale": "de-DE", "timezone": "UTC"}}
    merged = merge_edit(base, edited, current)
    assert merged["fingerprint"] == {"locale": "de-DE", "timezone": "Asia/Tokyo"}
    assert merged["notes"] == "cli"
    to_pool = merge_edit(base, {**base, "proxy": None, "proxy_pool": "eu"}, current)
    assert (to_pool["proxy"], to_pool["proxy_pool"]) == (None, "eu")


def test_migration_moves_a_pool_draw_to_the_binding(catalogue_url: str) -> None:
    """A row of the old shape (the draw written over the assignment, the pool kept) becomes
    the pool as assignment and the draw as binding; every block is marked pending."""
    upgrade(catalogue_url, "0001")
    engine = create_engine(catalogue_url)
    now = "2026-11-29 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into proxy_pools (id, name, labels, rotation_cursor, created_at) "
                f"values (1, 'eu', '{{}}', 0, '{now}')"
            )
        )
        conn.execute(
            text(
                "insert into proxies (id, name, scheme, host, port, pool_id, labels, health, "
                "error_score, consecutive_failures, quarantine_count, sessions_total, created_at, "
                f"updated_at) values (5, 'eu-1', 'http', 'h', 1, 1, '{{}}', 'ok', 0, 0, 0, 0, "
                f"'{now}', '{now}')"
            )
        )
        conn.execute(text(
            "insert into profiles (id, name, fingerprint, state_mode, status, proxy_id, "
            "proxy_pool_id, proxy_policy, proxy_failover, ip_check, notes, state_version, "
            f"created_at, updated_at) values (1, 'drawn', '{{}}', 'storage', 'active', 5, 1, "
            f"'sticky', false, 'off', '', 0, '{now}', '{now}')"))  # fmt: skip
    engine.dispose()
    dispose_engines()
    assert upgrade(catalogue_url) == "0004"
    with session_scope(catalogue_url) as s:
        row = s.get(Profile, 1)
        assert row is not None
        assert (row.proxy_id, row.proxy_pool_id, row.bound_proxy_id) == (None, 1, 5)
        assert row.revision > row.projected_revision
        assert row_to_spec(row).proxy_pool == "eu"


@pytest.fixture(autouse=True)
def _fresh_engines() -> Any:
    yield
    dispose_engines()


def test_head_revision_is_alembics_head_and_a_current_database_is_only_read(
    catalogue_url: str,
) -> None:
    """The fast check (file names) names the head Alembic computes; a database at the head is
    not migrated again, one behind it is."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from fleetwright.catalogue.db import MIGRATIONS, head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    upgrade(catalogue_url, "0003")
    dispose_engines()
    assert upgrade(catalogue_url) == head_revision()  # migrated: 0003 -> head
    engine = create_engine(catalogue_url)
    with engine.begin() as conn:
        assert conn.execute(text("select count(*) from webhook_deliveries")).scalar() == 0
        conn.execute(text("update alembic_version set version_num = '0003'"))
    engine.dispose()
    dispose_engines()
    # the stored revision is behind again: the fast path must not take it for current
    with pytest.raises(Exception, match=r"already exists|DuplicateTable"):
        upgrade(catalogue_url)

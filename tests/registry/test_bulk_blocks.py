"""Bulk imports write blocks straight into the Prefect server's database, and only when safe."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import select

from fleetwright.blocks import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.registry import import_profiles, open_block_store
from fleetwright.registry.blockdb import PrefectBlockDatabase, prefect_database_url
from fleetwright.registry.blockstore import BlockStore
from fleetwright.registry.sync import sync_catalogue
from fleetwright.settings import get_settings, reset_settings
from fleetwright.specs import block_name_for

pytestmark = pytest.mark.prefect


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _rows(url: str) -> dict[str, str | None]:
    with session_scope(url) as s:
        return {p.name: p.block_document_id for p in s.scalars(select(Profile))}


async def _blocks(prefix: str) -> dict[str, tuple[str, BrowserProfile]]:
    """name → (document id, block) for the BrowserProfile blocks whose name starts so."""
    async with open_block_store() as bs:
        out: dict[str, tuple[str, BrowserProfile]] = {}
        for doc in await bs.list(BrowserProfile):
            if doc.name and doc.name.startswith(prefix):
                out[doc.name] = (str(doc.id), BrowserProfile._from_block_document(doc))
        return out


def _count_api_creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the blocks created through the Prefect API from now on."""
    calls: list[str] = []
    real_create = BlockStore.create

    async def counting(self: BlockStore, block: Any, name: str, **kwargs: Any) -> Any:
        calls.append(name)
        return await real_create(self, block, name, **kwargs)

    monkeypatch.setattr(BlockStore, "create", counting)
    return calls


@pytest.fixture
def direct(prefect_database: str, monkeypatch: pytest.MonkeyPatch, home: Path) -> Any:
    """Bulk block writes on, into the session server's database; counts API block creates."""
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_DATABASE_URL", prefect_database)
    reset_settings()
    yield _count_api_creates(monkeypatch)
    reset_settings()


def test_import_writes_blocks_in_bulk(
    direct: list[str], catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetwright.registry.profiles as profiles

    monkeypatch.setattr(profiles, "IMPORT_CHUNK", 3)  # several chunks, pipelined
    prefix = _unique("bulk")
    # a block of one of the names exists already, without its row (say, made in the UI)
    taken = f"{prefix}-4"

    async def make_orphan() -> str:
        async with open_block_store() as bs:
            orphan = BrowserProfile(name=taken, locale="fr-FR")
            return str(await bs.create(orphan, block_name_for(taken)))

    orphan_id = asyncio.run(make_orphan())
    direct.clear()
    items = [
        (
            f"item {i + 1}",
            {"name": f"{prefix}-{i}", "tags": ["bulk"], "fingerprint": {"locale": "en-GB"}},
        )
        for i in range(8)
    ]
    items[2][1]["fingerprint"] = {
        "locale": "en-GB",
        "timezone": "Europe/Berlin",
        "viewport_width": 1024,
        "viewport_height": 700,
    }
    done: list[int] = []
    report = asyncio.run(import_profiles(items, url=catalogue_url, progress=done.append))
    assert (report.created, report.updated, report.errors) == (8, 0, [])
    assert sum(done) == 8
    # one document went through the API (it proves the server's key), the rest in bulk
    assert direct == [block_name_for(f"{prefix}-0")]

    blocks = asyncio.run(_blocks(block_name_for(prefix)))
    rows = _rows(catalogue_url)
    assert set(blocks) == {block_name_for(f"{prefix}-{i}") for i in range(8)}
    for i in range(8):
        name = f"{prefix}-{i}"
        doc_id, block = blocks[block_name_for(name)]
        assert rows[name] == doc_id
        assert (block.name, block.tags, block.locale) == (name, ["bulk"], "en-GB")
    third = blocks[block_name_for(f"{prefix}-2")][1]
    assert (third.timezone, third.viewport_width, third.viewport_height) == (
        "Europe/Berlin",
        1024,
        700,
    )
    # the block that was there is overwritten in place, not doubled
    assert blocks[block_name_for(taken)][0] == orphan_id
    assert blocks[block_name_for(taken)][1].locale == "en-GB"

    # Block.load() reads a bulk-written document as the API would have written it
    loaded = asyncio.run(BrowserProfile.aload(block_name_for(f"{prefix}-7")))
    assert isinstance(loaded, BrowserProfile) and loaded.name == f"{prefix}-7"

    # the reconcile finds nothing to repair
    result = asyncio.run(sync_catalogue(url=catalogue_url))
    assert not result.changed, result

    # re-import: nothing changes; a changed item updates its block in bulk, keeping its id
    again = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8)
    items[5][1]["notes"] = "changed"
    direct.clear()
    changed = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 7)
    after = asyncio.run(_blocks(block_name_for(prefix)))
    assert after[block_name_for(f"{prefix}-5")][0] == blocks[block_name_for(f"{prefix}-5")][0]
    assert after[block_name_for(f"{prefix}-5")][1].notes == "changed"


def test_bulk_write_failure_falls_back_to_the_api(
    direct: list[str],
    catalogue_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import fleetwright.registry.profiles as profiles

    monkeypatch.setattr(profiles, "IMPORT_CHUNK", 4)

    def broken(self: PrefectBlockDatabase, documents: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(PrefectBlockDatabase, "upsert", broken)
    prefix = _unique("fall")
    items = [(f"item {i + 1}", {"name": f"{prefix}-{i}"}) for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="fleetwright.registry.profiles"):
        report = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (report.created, report.errors) == (6, [])
    assert "bulk block write failed (OperationalError)" in caplog.text
    assert sorted(direct) == sorted(block_name_for(f"{prefix}-{i}") for i in range(6))
    rows = _rows(catalogue_url)
    blocks = asyncio.run(_blocks(block_name_for(prefix)))
    assert {rows[f"{prefix}-{i}"] for i in range(6)} == {doc_id for doc_id, _ in blocks.values()}


def test_unusable_database_means_the_api(
    prefect_api: str,
    catalogue_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_DATABASE_URL", f"sqlite:///{tmp_path / 'nope.db'}")
    reset_settings()
    prefix = _unique("api")
    items = [(f"item {i + 1}", {"name": f"{prefix}-{i}"}) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="fleetwright.registry.blockdb"):
        report = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (report.created, report.errors) == (3, [])
    assert "bulk block writes off" in caplog.text and "nope.db" in caplog.text
    assert len(asyncio.run(_blocks(block_name_for(prefix)))) == 3
    reset_settings()


def test_default_is_the_local_server_database(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETWRIGHT_PREFECT_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_PORT", "4311")
    reset_settings()
    settings = get_settings()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4311/api")
    assert prefect_database_url() is None  # no server database there yet
    settings.prefect_home.mkdir(parents=True)
    (settings.prefect_home / "prefect.db").write_bytes(b"")
    assert prefect_database_url() == f"sqlite:///{settings.prefect_home / 'prefect.db'}"
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.internal:4200/api")
    assert prefect_database_url() is None  # another server: its database is not ours to know
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_DATABASE_URL", "")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4311/api")
    reset_settings()
    assert prefect_database_url() is None  # empty: always through the API
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_DATABASE_URL", "postgresql+asyncpg://h/prefect")
    reset_settings()
    assert prefect_database_url() == "postgresql+asyncpg://h/prefect"
    reset_settings()


# -- the checks made before writing, on a Prefect database built here ------------------------


@pytest.fixture
def prefect_sqlite(tmp_path: Path) -> Any:
    """A SQLite database with Prefect's tables, a block type and schema, a key and a document."""
    from prefect.server.database import orm_models

    path = tmp_path / "prefect.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    orm_models.Base.metadata.create_all(
        engine,
        tables=[
            orm_models.BlockType.__table__,
            orm_models.BlockSchema.__table__,
            orm_models.BlockDocument.__table__,
            orm_models.Configuration.__table__,
        ],
    )
    key = Fernet.generate_key().decode()
    type_id, schema_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(orm_models.BlockType.__table__),
            [{"id": type_id, "name": "Fleetwright Browser Profile", "slug": "fw-bp"}],
        )
        conn.execute(
            sa.insert(orm_models.BlockSchema.__table__),
            [{"id": schema_id, "checksum": "sha256:x", "block_type_id": type_id, "fields": {}}],
        )
        conn.execute(
            sa.insert(orm_models.Configuration.__table__),
            [{"key": "ENCRYPTION_KEY", "value": {"fernet_key": key}}],
        )
        conn.execute(
            sa.insert(orm_models.BlockDocument.__table__),
            [
                {
                    "name": "first",
                    "data": Fernet(key.encode()).encrypt(json.dumps({"a": 1}).encode()).decode(),
                    "block_type_id": type_id,
                    "block_schema_id": schema_id,
                    "block_type_name": "Fleetwright Browser Profile",
                }
            ],
        )
    engine.dispose()
    return f"sqlite+aiosqlite:///{path}", type_id, schema_id, key


def _open(url: str, type_id: uuid.UUID, schema_id: uuid.UUID, **kw: Any) -> Any:
    return PrefectBlockDatabase.open(
        url,
        block_type_id=type_id,
        block_schema_id=schema_id,
        block_type_name="Fleetwright Browser Profile",
        **kw,
    )


def _set_stored_key(url: str, key: str) -> None:
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE configuration SET value = :v WHERE key = 'ENCRYPTION_KEY'"),
            {"v": json.dumps({"fernet_key": key})},
        )
    engine.dispose()


def test_writer_checks_database_and_key(
    prefect_sqlite: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, type_id, schema_id, key = prefect_sqlite
    writer = _open(url, type_id, schema_id)
    assert writer is not None
    [(doc_id, created)] = writer.upsert([("second", {"b": 2})])
    assert created
    [(same_id, created_again)] = writer.upsert([("second", {"b": 3})])
    assert (same_id, created_again) == (doc_id, False)
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT data FROM block_document WHERE name = 'second'")
        ).scalar_one()
    assert json.loads(Fernet(key.encode()).decrypt(json.loads(stored).encode())) == {"b": 3}
    assert writer.delete([doc_id]) == 1
    writer.close()

    with caplog.at_level(logging.WARNING, logger="fleetwright.registry.blockdb"):
        # another server's block types
        assert _open(url, uuid.uuid4(), schema_id) is None
        assert "not the Prefect API's" in caplog.text
        caplog.clear()
        # the server was started with a key of its own, and it is not known here
        _set_stored_key(url, Fernet.generate_key().decode())
        assert _open(url, type_id, schema_id) is None
        assert "encryption key is not known" in caplog.text
        # ... and it is, through FLEETWRIGHT_ENCRYPTION_KEY
        known = _open(url, type_id, schema_id, keys=[key])
        assert known is not None
        known.close()
        caplog.clear()
        # a Prefect whose block_document table differs from the installed one's
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE block_document ADD COLUMN owner_id TEXT"))
        assert _open(url, type_id, schema_id, keys=[key]) is None
        assert "columns differ" in caplog.text and "owner_id" in caplog.text
    engine.dispose()


def test_embedded_server_on_sqlite_gets_bulk_writes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fleetwright up`'s set-up: the local server on SQLite in the home, found by default,
    written to while the server runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import fleetwright.registry.profiles as profiles
    from fleetwright.embedded import LocalPrefectServer
    from fleetwright.embedded.prefect_server import free_port
    from fleetwright.embedded.stack import register_blocks

    port = free_port()
    monkeypatch.delenv("FLEETWRIGHT_PREFECT_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_PORT", str(port))
    monkeypatch.setattr(profiles, "IMPORT_CHUNK", 10)
    reset_settings()
    settings = get_settings()
    server = LocalPrefectServer(prefect_home=settings.prefect_home, port=port)
    server.start()
    try:
        monkeypatch.setenv("PREFECT_API_URL", server.api_url)
        assert prefect_database_url() == f"sqlite:///{settings.prefect_home / 'prefect.db'}"
        calls = _count_api_creates(monkeypatch)
        items = [(f"item {i + 1}", {"name": f"emb-{i:02d}", "tags": ["e"]}) for i in range(30)]
        url = settings.catalogue_url

        async def go() -> tuple[Any, dict[str, tuple[str, BrowserProfile]]]:
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                from fleetwright.catalogue.db import upgrade

                upgrade(url)
                await register_blocks()
                report = await import_profiles(items, url=url)
                return report, await _blocks("emb-")

        report, blocks = asyncio.run(go())
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)  # before this server goes away
        assert (report.created, report.errors) == (30, [])
        assert calls == ["emb-00"]
        rows = _rows(url)
        assert len(blocks) == 30
        assert all(rows[name] == doc_id for name, (doc_id, _) in blocks.items())
        assert blocks["emb-29"][1].tags == ["e"]
    finally:
        server.stop()
        reset_settings()

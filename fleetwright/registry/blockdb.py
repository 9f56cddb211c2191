"""Bulk block writes straight into the Prefect server's own database.

The Prefect API writes one block document per request, and each request costs the server
~20 ms of CPU (an existence check, the insert, the document read back with its schema, an
event), with no bulk endpoint: 10,000 profiles took ~200 s through the API on 2 cores. A bulk
import that can reach the server's database writes a chunk of documents in one transaction
instead, with Prefect's own table definition and Prefect's own encryption of the document data
(Fernet, the server's key), so the server, its UI and `Block.load()` read them exactly as if the
API had written them.

It is used only when it is provably the same server and the same key, checked when it opens:
the block type and schema the API registered must exist in that database, the table's columns
must be the ones the installed Prefect writes, and the key must decrypt a document the server
wrote. Anything else (or an error while writing) and the caller goes on through the API.

What the API would add and this does not: a `prefect.block-document.created/updated` event per
document. Those events exist so that edits made in the UI reach the catalogue; a bulk import
writes the catalogue itself.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import Engine, make_url

from fleetwright.errors import redact_url
from fleetwright.settings import Settings, get_settings

__all__ = ["PrefectBlockDatabase", "prefect_database_url"]

logger = logging.getLogger(__name__)


def prefect_database_url(settings: Settings | None = None) -> str | None:
    """The Prefect server's database for bulk block writes, or None (use the API).

    FLEETWRIGHT_PREFECT_DATABASE_URL when set; otherwise, when the Prefect API in use is the
    local server `fleetwright up` runs, that server's SQLite file.
    """
    settings = settings or get_settings()
    if settings.prefect_database_url is not None:
        return settings.prefect_database_url.get_secret_value() or None
    local = f"http://127.0.0.1:{settings.prefect_port}/api"
    if os.environ.get("PREFECT_API_URL", "").rstrip("/") == local:
        db = settings.prefect_home / "prefect.db"
        if db.is_file():
            return f"sqlite:///{db}"
    return None


def _sync_url(url: str) -> sa.URL:
    """Prefect's async driver URLs, for a synchronous engine (psycopg 3, sqlite3)."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "postgresql":
        return u.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return u.set(drivername="sqlite")
    raise ValueError(f"unsupported Prefect database {backend!r}")


class PrefectBlockDatabase:
    """Writes block documents of one block type in bulk, in the Prefect server's database."""

    def __init__(
        self,
        engine: Engine,
        fernet: Fernet,
        *,
        block_type_id: uuid.UUID,
        block_schema_id: uuid.UUID,
        block_type_name: str,
    ) -> None:
        from prefect.server.database import orm_models

        self.engine = engine
        self.fernet = fernet
        self.block_type_id = block_type_id
        self.block_schema_id = block_schema_id
        self.block_type_name = block_type_name
        self.table: sa.Table = orm_models.BlockDocument.__table__  # type: ignore[assignment]

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        *,
        block_type_id: uuid.UUID,
        block_schema_id: uuid.UUID,
        block_type_name: str,
        keys: Sequence[str] = (),
    ) -> PrefectBlockDatabase | None:
        """The writer, or None (with the reason logged) when it cannot be used safely.

        `keys`: candidate Fernet keys besides the one in the database's configuration table
        (the server's PREFECT_SERVER_ENCRYPTION_KEY wins over that one, as in the server).
        """
        try:
            engine = _engine(url)
        except Exception as exc:
            logger.warning("bulk block writes off: %s", exc)
            return None
        try:
            reason, fernet = _check(engine, block_type_id, block_schema_id, keys)
        except Exception as exc:
            reason, fernet = (
                f"{redact_url(str(_sync_url(url)))} cannot be read ({type(exc).__name__})",
                None,
            )
        if fernet is None:
            engine.dispose()
            logger.warning("bulk block writes off, writing through the Prefect API: %s", reason)
            return None
        return cls(
            engine,
            fernet,
            block_type_id=block_type_id,
            block_schema_id=block_schema_id,
            block_type_name=block_type_name,
        )

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------------
    def encrypt(self, data: dict[str, Any]) -> str:
        """The document data as the server stores it (Prefect's encrypt_fernet)."""
        return self.fernet.encrypt(json.dumps(data).encode()).decode()

    def upsert(
        self, documents: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[tuple[uuid.UUID, bool]]:
        """Create or overwrite the named documents, in one transaction.

        Returns (document id, created) for each, in order. A document of that name and type
        that exists already is overwritten in place, as the API's create-or-update does.
        """
        if not documents:
            return []
        t = self.table
        names = [name for name, _ in documents]
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            existing: dict[str, uuid.UUID] = {}
            for i in range(0, len(names), 500):
                existing.update(
                    (name, doc_id)
                    for doc_id, name in conn.execute(
                        sa.select(t.c.id, t.c.name).where(
                            t.c.block_type_id == self.block_type_id,
                            t.c.name.in_(names[i : i + 500]),
                        )
                    )
                )
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            out: list[tuple[uuid.UUID, bool]] = []
            for name, data in documents:
                doc_id = existing.get(name)
                if doc_id is None:
                    doc_id = uuid.uuid4()
                    inserts.append(
                        {
                            "id": doc_id,
                            "created": now,
                            "updated": now,
                            "name": name,
                            "data": self.encrypt(data),
                            "is_anonymous": False,
                            "block_type_name": self.block_type_name,
                            "block_type_id": self.block_type_id,
                            "block_schema_id": self.block_schema_id,
                        }
                    )
                    out.append((doc_id, True))
                else:
                    updates.append({"doc_id": doc_id, "data": self.encrypt(data)})
                    out.append((doc_id, False))
            if inserts:
                conn.execute(sa.insert(t), inserts)
            if updates:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == sa.bindparam("doc_id"))
                    .values(
                        data=sa.bindparam("data"),
                        block_schema_id=self.block_schema_id,
                        updated=now,
                    ),
                    updates,
                )
        return out

    def delete(self, document_ids: Sequence[uuid.UUID | str]) -> int:
        """Delete documents of this writer's type by id; returns how many were there."""
        ids = [uuid.UUID(str(d)) for d in document_ids]
        if not ids:
            return 0
        t = self.table
        deleted = 0
        with self.engine.begin() as conn:
            for i in range(0, len(ids), 500):
                result = conn.execute(
                    sa.delete(t).where(
                        t.c.block_type_id == self.block_type_id, t.c.id.in_(ids[i : i + 500])
                    )
                )
                deleted += result.rowcount
        return deleted


def _engine(url: str) -> Engine:
    u = _sync_url(url)
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:" or not os.path.isfile(u.database):
            raise ValueError(f"no Prefect database file at {u.database!r}")
        # the server writes the same file: wait for its write lock as the server does
        engine = sa.create_engine(u, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        return engine
    return sa.create_engine(u, pool_size=1, max_overflow=1, pool_pre_ping=True)


def _check(
    engine: Engine,
    block_type_id: uuid.UUID,
    block_schema_id: uuid.UUID,
    keys: Sequence[str],
) -> tuple[str, Fernet | None]:
    """(why not, None) or ("", the server's Fernet) for this database."""
    from prefect.server.database import orm_models

    table: sa.Table = orm_models.BlockDocument.__table__  # type: ignore[assignment]
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("block_document")}
        expected = {c.name for c in table.columns}
        if columns != expected:
            return (
                "the Prefect database's block_document columns differ from the installed "
                f"Prefect's ({sorted(columns ^ expected)})",
                None,
            )
        bt = orm_models.BlockType.__table__
        bs = orm_models.BlockSchema.__table__
        if conn.execute(sa.select(bt.c.id).where(bt.c.id == block_type_id)).first() is None or (
            conn.execute(sa.select(bs.c.id).where(bs.c.id == block_schema_id)).first() is None
        ):
            return "that database is not the Prefect API's (its block types differ)", None
        cfg = orm_models.Configuration.__table__
        stored = conn.execute(
            sa.select(cfg.c.value).where(cfg.c.key == "ENCRYPTION_KEY")
        ).scalar_one_or_none()
        candidates = [k for k in keys if k]
        if isinstance(stored, dict) and stored.get("fernet_key"):
            candidates.append(str(stored["fernet_key"]))
        probe = conn.execute(
            sa.select(table.c.data).where(table.c.is_anonymous.is_(False)).limit(1)
        ).scalar_one_or_none()
    if not isinstance(probe, str):
        return "no block document to check the server's encryption key against yet", None
    for key in candidates:
        try:
            fernet = Fernet(key.encode())
            fernet.decrypt(probe.encode())
        except (InvalidToken, ValueError):
            continue
        return "", fernet
    return (
        "the server's encryption key is not known here (set FLEETWRIGHT_ENCRYPTION_KEY to the "
        "server's PREFECT_SERVER_ENCRYPTION_KEY)",
        None,
    )

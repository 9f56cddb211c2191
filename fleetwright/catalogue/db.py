"""Catalogue connections: engines, sessions, and migrations applied on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fleetwright.catalogue.models import utcnow
from fleetwright.errors import CatalogueUnavailableError
from fleetwright.private import create_private
from fleetwright.settings import get_settings

__all__ = ["db_now", "dispose_engines", "get_engine", "safe_url", "session_scope", "upgrade"]

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker[Session]] = {}
_upgraded: set[str] = set()
_lock = threading.Lock()
_migrate_lock = threading.Lock()
MIGRATION_LOCK_ID = 0x46_57_44_42  # "FWDB": serialises migrations across processes on Postgres


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _create_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            # created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
            # database's own mode, and would create the database with the umask's
            create_private(Path(u.database))
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            connect_args={"connect_timeout": 5},
        )
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """The engine for `url` (default: the settings' catalogue), migrated on first use."""
    url = url or get_settings().catalogue_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = _create_engine(url)
            except (SQLAlchemyError, ImportError, ValueError) as exc:
                raise CatalogueUnavailableError(
                    f"Cannot open the catalogue at {safe_url(url)}: {type(exc).__name__}. "
                    "Check FLEETWRIGHT_DATABASE_URL.",
                    retryable=False,
                ) from None
            _engines[url] = engine
            _makers[url] = sessionmaker(engine, expire_on_commit=False)
    if migrate and url not in _upgraded:
        with _migrate_lock:
            if url not in _upgraded:
                upgrade(url)
    return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _makers.clear()
        _upgraded.clear()


def _check_connect(engine: Engine, url: str) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        raise CatalogueUnavailableError(
            f"The catalogue database at {safe_url(url)} is unreachable ({reason}). "
            "Start the database or fix FLEETWRIGHT_DATABASE_URL.",
        ) from None


def head_revision() -> str:
    """The newest migration's revision, read from the file names (`NNNN_what.py`, whose
    `revision` is NNNN) without loading Alembic."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _stored_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no Alembic table (yet)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("select version_num from alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Apply Alembic migrations up to `revision`; idempotent. Returns the current revision.

    A database already at the head is only read: loading Alembic and its migration scripts
    cost every new process (every CLI command) most of a second."""
    url = url or get_settings().catalogue_url
    engine = get_engine(url, migrate=False)
    _check_connect(engine, url)
    if revision == "head":
        head = head_revision()
        if _stored_revision(engine) == head:
            _upgraded.add(url)
            return head
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision() or ""
    _upgraded.add(url)
    return current


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    url = url or get_settings().catalogue_url
    get_engine(url)
    session = _makers[url]()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        raise CatalogueUnavailableError(
            f"The catalogue at {safe_url(url)} failed: {reason}"
        ) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def db_now(session: Session) -> datetime:
    """The database's clock (Postgres `now()`), so that workers whose clocks drift apart agree
    on when a lease expires; SQLite is embedded, its clock is this machine's."""
    if session.get_bind().dialect.name != "postgresql":
        return utcnow()
    value = session.execute(select(func.now())).scalar_one()
    if not isinstance(value, datetime):
        return utcnow()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

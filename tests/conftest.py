"""Shared test fixtures: an isolated Fleetwright home, catalogues on SQLite and Postgres."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Isolate every test session from the user's own Fleetwright and Prefect state.
_SESSION_HOME = (
    Path(os.environ.get("FLEETWRIGHT_TEST_TMP", "/tmp")) / f"fw-test-{uuid.uuid4().hex[:8]}"
)
os.environ["FLEETWRIGHT_HOME"] = str(_SESSION_HOME)
os.environ.pop("FLEETWRIGHT_DATABASE_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if not os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE"):
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            os.environ["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] = candidate
            break

# One Prefect server for the whole session (started on first use by the `prefect_api` fixture).
# The API URL is set before Prefect is imported, so every client in this process and in the
# processes the tests start talks to that server and never to the user's own.
_PREFECT_PORT = int(os.environ.get("FLEETWRIGHT_TEST_PREFECT_PORT", "0")) or None
if _PREFECT_PORT is None:
    import socket

    with socket.socket() as _s:
        _s.bind(("127.0.0.1", 0))
        _PREFECT_PORT = int(_s.getsockname()[1])
(_SESSION_HOME / "prefect-client").mkdir(parents=True, exist_ok=True)
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect-client")
os.environ["PREFECT_PROFILES_PATH"] = str(_SESSION_HOME / "prefect-client" / "profiles.toml")
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PREFECT_PORT}/api"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.5"
# Flow runs heartbeat as often as Fleetwright's heartbeat automation expects (the CLI sets the
# same), so a test that creates the automation never has a live run taken for a dead one.
os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = "30"
# One result store for the test process and the workers it starts (task parameters of warm
# sessions travel through it).
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_HOME / "prefect-storage")
# The session server asks for a credential, as the one `fleetwright up` starts does: every
# client path the tests take (this process, the CLI, workers, flow runs, webhooks) must send
# it. Clients get it from the environment, as `up`'s children do; tests whose children see no
# PREFECT_* variable store it in their Fleetwright home (`store_prefect_auth`).
PREFECT_AUTH = f"fleetwright-test:{uuid.uuid4().hex}"
os.environ["PREFECT_API_AUTH_STRING"] = PREFECT_AUTH

PG_ADMIN_URL = os.environ.get(
    "FLEETWRIGHT_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


_server_started: list[bool] = []
_prefect_db: list[str] = []


def _delete_fleetwright_blocks() -> None:
    """Each test starts with no Fleetwright blocks on the shared session server."""
    import asyncio

    from fleetwright.blocks import BLOCK_TYPES
    from fleetwright.registry.blockstore import open_block_store

    async def clean() -> None:
        async with open_block_store() as store:
            for cls in BLOCK_TYPES:
                for doc in await store.list(cls):
                    await store.delete(doc.id)

    asyncio.run(clean())


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real local Prefect server (SQLite, telemetry off) for the whole test session."""
    from fleetwright.embedded import LocalPrefectServer

    # On Postgres: many tests, workers and services write at once, and the server's SQLite
    # backend answers "database is locked" under that load. FLEETWRIGHT_TEST_PREFECT_DB=sqlite
    # runs it on SQLite instead.
    db_name = None
    database_url = None
    if os.environ.get("FLEETWRIGHT_TEST_PREFECT_DB", "postgres") != "sqlite":
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        db_name = f"fw_test_prefect_{uuid.uuid4().hex[:8]}"
        url = _pg_create(db_name)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        engine.dispose()
        database_url = (
            make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        )
    server = LocalPrefectServer(
        prefect_home=_SESSION_HOME / "prefect-server",
        port=_PREFECT_PORT,
        database_url=database_url,
        auth_string=PREFECT_AUTH,
    )
    api_url = server.start()
    assert api_url == os.environ["PREFECT_API_URL"]
    _server_started.append(True)
    _prefect_db.append(
        database_url or f"sqlite+aiosqlite:///{_SESSION_HOME / 'prefect-server' / 'prefect.db'}"
    )
    try:
        yield api_url
    finally:
        server.stop()
        if db_name:
            _pg_drop(db_name)


@pytest.fixture(scope="session")
def prefect_auth() -> str:
    """The session server's credential (what PREFECT_API_AUTH_STRING holds in the tests)."""
    return PREFECT_AUTH


@pytest.fixture(scope="session")
def store_prefect_auth() -> Callable[[Path], Path]:
    """Put the session server's credential in a Fleetwright home, where `fleetwright up`
    keeps its own; returns the file."""
    from fleetwright.prefect_auth import auth_path
    from fleetwright.private import write_private

    def store(home: Path) -> Path:
        path = auth_path(home)
        write_private(path, PREFECT_AUTH + "\n")
        return path

    return store


@pytest.fixture(scope="session")
def prefect_database(prefect_api: str) -> str:
    """The session Prefect server's own database URL (what bulk block writes write into)."""
    return _prefect_db[-1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh Fleetwright home with a fresh SQLite catalogue for one test."""
    from fleetwright.catalogue.db import dispose_engines
    from fleetwright.settings import reset_settings

    h = tmp_path / "home"
    monkeypatch.setenv("FLEETWRIGHT_HOME", str(h))
    monkeypatch.delenv("FLEETWRIGHT_DATABASE_URL", raising=False)
    reset_settings()
    if _server_started:
        _delete_fleetwright_blocks()
    yield h
    dispose_engines()
    reset_settings()


def _pg_create(name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _pg_drop(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty Postgres database for one test (dropped afterwards)."""
    name = f"fw_test_{uuid.uuid4().hex[:10]}"
    try:
        url = _pg_create(name)
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is needed at {PG_ADMIN_URL} (set FLEETWRIGHT_TEST_DATABASE_URL): {exc}"
        )
    yield url
    from fleetwright.catalogue.db import dispose_engines

    dispose_engines()
    _pg_drop(name)


@pytest.fixture(params=["sqlite", "postgres"])
def catalogue_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """The catalogue URL, once on SQLite and once on a fresh Postgres database."""
    if request.param == "sqlite":
        yield f"sqlite:///{home / 'catalogue.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Any]:
    """A real tinyproxy with BasicAuth; its outgoing side is 127.0.0.2."""
    from fleetwright.testing.proxies import TinyProxy

    with TinyProxy(username="fleet", password="tiny-secret", workdir=tmp_path) as server:
        yield server


@pytest.fixture
def microsocks() -> Iterator[Any]:
    """A real microsocks with -u/-P; its outgoing side is 127.0.0.3."""
    from fleetwright.testing.proxies import MicroSocks

    with MicroSocks(username="fleet", password="socks-secret") as server:
        yield server

"""What every benchmark runs against: a scratch home, throwaway Postgres databases, the bench
site, and one local Prefect server on Postgres, all started on demand and torn down at the end.

Environment variables for Fleetwright and Prefect are set here before Prefect is imported, so
the bench never touches the user's own ~/.fleetwright, ~/.prefect or Prefect server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fleetwright.catalogue.db import dispose_engines, session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.embedded.prefect_server import free_port

if TYPE_CHECKING:
    from fleetwright.embedded.prefect_server import LocalPrefectServer
    from fleetwright.testing.site import SiteProcess

__all__ = ["PG_ADMIN_URL", "Bench", "Mode", "Sizes"]

logger = logging.getLogger(__name__)
Mode = Literal["smoke", "full"]
PG_ADMIN_URL = os.environ.get(
    "FLEETWRIGHT_BENCH_DATABASE_URL",
    os.environ.get(
        "FLEETWRIGHT_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
    ),
)


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """How much each benchmark does; `full` is what the issue asks, `smoke` only proves it runs."""

    ab_rounds: int
    overhead_per_round: int
    start_n: int
    persistent_n: int
    throughput_sessions: int
    lease_sessions: int
    warm_n: int
    process_n: int
    catalogue_total: int
    catalogue_select: int
    select_repeats: int
    import_n: int
    memory_concurrency: int
    memory_rounds: int
    long_run: int
    empty_task_n: int
    cli_n: int
    state_n: int
    deployment_sessions: int
    deployment_rounds: int

    @classmethod
    def for_mode(cls, mode: Mode) -> Sizes:
        if mode == "full":
            return cls(
                ab_rounds=int(os.environ.get("FLEETWRIGHT_BENCH_AB_ROUNDS", "5")),
                overhead_per_round=24,
                start_n=60,
                persistent_n=20,
                throughput_sessions=48,
                lease_sessions=40,
                warm_n=20,
                process_n=5,
                catalogue_total=100_000,
                catalogue_select=1_000,
                select_repeats=15,
                import_n=10_000,
                memory_concurrency=8,
                memory_rounds=3,
                long_run=1_000,
                empty_task_n=200,
                cli_n=10,
                state_n=20,
                deployment_sessions=200,
                deployment_rounds=5,
            )
        return cls(
            ab_rounds=1,
            overhead_per_round=2,
            start_n=3,
            persistent_n=2,
            throughput_sessions=2,
            lease_sessions=2,
            warm_n=2,
            process_n=1,
            catalogue_total=2_000,
            catalogue_select=20,
            select_repeats=3,
            import_n=40,
            memory_concurrency=2,
            memory_rounds=1,
            long_run=6,
            empty_task_n=10,
            cli_n=2,
            state_n=2,
            deployment_sessions=3,
            deployment_rounds=2,
        )


def _admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _quiet_prefect_logging(folder: Path) -> Path:
    """Prefect's logging config with the console at WARNING (run logs still go to the API)."""
    import importlib.util

    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).parent / "logging" / "logging.yml"
    config = source.read_text().replace(
        "  console:\n    level: 0\n", "  console:\n    level: WARNING\n", 1
    )
    target = folder / "logging.yml"
    target.write_text(config)
    return target


def _drain_prefect() -> None:
    """Send Prefect's queued logs and events before its server goes away."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=10)


@dataclass
class Bench:
    """The shared environment of one bench run."""

    mode: Mode
    sizes: Sizes
    root: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    prefect_port: int = field(default_factory=free_port)
    databases: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    catalogue_url: str = ""
    prefect_database_url: str = ""
    prefect_encryption_key: str = ""
    _server: LocalPrefectServer | None = None
    _sites: dict[int, SiteProcess] = field(default_factory=dict)
    _profiles: set[str] = field(default_factory=set)

    # -- set-up ------------------------------------------------------------------------
    @classmethod
    def create(cls, mode: Mode) -> Bench:
        """A fresh environment: scratch home, catalogue database, Prefect settings in env."""
        root = Path(tempfile.mkdtemp(prefix="fw-bench-"))
        bench = cls(mode=mode, sizes=Sizes.for_mode(mode), root=root)
        try:
            bench.catalogue_url = bench.new_database("cat")
            bench._set_env()
        except BaseException:
            bench.close()
            raise
        return bench

    def _set_env(self) -> None:
        from fleetwright.settings import reset_settings

        client_home = self.root / "prefect-client"
        client_home.mkdir(parents=True)
        env = {
            "FLEETWRIGHT_HOME": str(self.root / "home"),
            "FLEETWRIGHT_DATABASE_URL": self.catalogue_url,
            "FLEETWRIGHT_PREFECT_API_URL": self.prefect_api_url,
            # the baseline reuses one shared browser; so does Fleetwright here
            "FLEETWRIGHT_BROWSERS_PER_WORKER": "1",
            "PREFECT_HOME": str(client_home),
            "PREFECT_PROFILES_PATH": str(client_home / "profiles.toml"),
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_SETTINGS_PATH": str(_quiet_prefect_logging(client_home)),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(client_home / "results"),
        }
        os.environ.update(env)
        if not os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE"):
            for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
                if Path(candidate).exists():
                    os.environ["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] = candidate
                    break
        reset_settings()

    def new_database(self, suffix: str, *, trgm: bool = False) -> str:
        """A throwaway Postgres database (dropped at close); returns its psycopg URL."""
        name = f"fw_bench_{self.run_id}_{suffix}"
        _admin(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        url = make_url(PG_ADMIN_URL).set(database=name)
        if trgm:
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(text("create extension if not exists pg_trgm"))
            finally:
                engine.dispose()
        return url.render_as_string(hide_password=False)

    # -- shared services ---------------------------------------------------------------
    @property
    def prefect_api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    def prefect(self) -> str:
        """Start the bench's Prefect server (Postgres) on first use; returns its API URL."""
        if self._server is None:
            from fleetwright.embedded.prefect_server import LocalPrefectServer

            url = make_url(self.new_database("prefect", trgm=True))
            from cryptography.fernet import Fernet

            self.prefect_encryption_key = Fernet.generate_key().decode()
            self.prefect_database_url = url.set(drivername="postgresql+asyncpg").render_as_string(
                hide_password=False
            )
            server = LocalPrefectServer(
                prefect_home=self.root / "prefect-server",
                port=self.prefect_port,
                # a fresh server generates its block encryption key on first use, and
                # concurrent first block writes race for it (409s); give it one up front
                extra_env={"PREFECT_SERVER_ENCRYPTION_KEY": self.prefect_encryption_key},
                database_url=self.prefect_database_url,
            )
            self._server = server
            server.start(timeout=timedelta(seconds=180))
        return self.prefect_api_url

    @property
    def prefect_server_pid(self) -> int | None:
        proc = self._server.process if self._server is not None else None
        return proc.pid if proc is not None else None

    def site_pids(self) -> list[int]:
        """The processes of the bench sites started so far."""
        return [pid for site in self._sites.values() if (pid := site.pid) is not None]

    def site(self, delay_ms: int = 0) -> SiteProcess:
        """The bench site answering every request after `delay_ms` (started once per delay),
        in a process of its own, as a real site is: served from a thread of the bench's
        process, its requests would wait for that process's GIL, and the side running more
        Python threads (Fleetwright) would be answered more slowly."""
        if delay_ms not in self._sites:
            from fleetwright.testing.site import SiteProcess

            site = SiteProcess(
                delay=timedelta(milliseconds=delay_ms),
                log_path=self.root / "logs" / f"site-{delay_ms}ms.log",
            )
            self._sites[delay_ms] = site.start()
        return self._sites[delay_ms]

    def start_warm_worker(self, *, limit: int = 4) -> subprocess.Popen[bytes]:
        """A warm worker (`deployments.warm_worker`) logging into the scratch folder; the caller
        stops it (`fleetwright.embedded.stack.stop_process`)."""
        from fleetwright.embedded.stack import PROJECT_DIR

        log = open(self.root / "warm-worker.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            argv = [sys.executable, "-m", "fleetwright.deployments.warm_worker"]
            return subprocess.Popen(
                [*argv, "--limit", str(limit)],
                cwd=PROJECT_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def profiles(
        self, count: int, *, prefix: str = "bench", state_mode: str = "storage"
    ) -> list[str]:
        """`count` catalogue profiles named prefix-0000.. (created once)."""
        names = [f"{prefix}-{i:04d}" for i in range(count)]
        todo = [n for n in names if n not in self._profiles]
        if todo:
            with session_scope(self.catalogue_url) as session:
                session.add_all(Profile(name=n, state_mode=state_mode) for n in todo)
            self._profiles.update(todo)
        return names

    # -- tear-down ---------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server, drop the databases, remove the scratch folder."""
        for site in self._sites.values():
            with contextlib.suppress(Exception):
                site.stop()
        self._sites.clear()
        _drain_prefect()
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None
        dispose_engines()
        for name in reversed(self.databases):
            try:
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                logger.warning("Could not drop bench database %s: %s", name, type(exc).__name__)
        self.databases.clear()
        if os.environ.get("FLEETWRIGHT_BENCH_KEEP"):
            print(f"[bench] kept {self.root} (logs of the servers and workers)", flush=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

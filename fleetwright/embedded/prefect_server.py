"""A local Prefect server in a child process, isolated from the user's own Prefect profile."""

from __future__ import annotations

import base64
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from fleetwright.embedded.stack import stop_process
from fleetwright.errors import ConfigurationError, PrefectUnavailableError
from fleetwright.private import PRIVATE_UMASK, private_dir
from fleetwright.processes import open_log
from fleetwright.tls import TLSFiles

__all__ = ["LocalPrefectServer", "free_port", "prefect_env", "redis_env"]

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def prefect_env(prefect_home: Path, *, database_url: str | None = None) -> dict[str, str]:
    """Environment for Prefect processes that keeps them off the user's ~/.prefect."""
    db = database_url or f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    return {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_PROFILES_PATH": str(prefect_home / "profiles.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": db,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": db,
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
        # The server records task runs from their state events one event per transaction by
        # default; a fleet run sends three per session. In batches of up to 50, flushed every
        # second, the server spends ~40 % less CPU per fleet run (2.4 → 1.45 s per 48 sessions
        # at concurrency 8, 2026-11-27, 2 cores), CPU that the browsers get instead. Task-run
        # states then reach the API and UI up to a second later; the events themselves (what
        # futures and automations wait on) are not delayed.
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    }


def redis_env(redis_url: str) -> dict[str, str]:
    """Prefect server settings for messaging, ordering and leases on Redis (prefect-redis)."""
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    env = {
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_HOST": parts.hostname or "127.0.0.1",
        "PREFECT_REDIS_MESSAGING_PORT": str(parts.port or 6379),
        "PREFECT_REDIS_MESSAGING_DB": (parts.path or "/0").lstrip("/") or "0",
    }
    if parts.password:
        env["PREFECT_REDIS_MESSAGING_PASSWORD"] = parts.password
    return env


class LocalPrefectServer:
    """`prefect server start` on 127.0.0.1, with its own home and database.

    Runs until stop(); logs go to `<prefect_home>/server.log`. With `auth_string`, the API
    answers 401 to any request without it (Prefect's basic auth; /health stays open) and the
    UI asks for it; the string reaches the server through its environment, never its argv.
    Everything the server writes (database, logs, results) is readable by its owner only.
    """

    def __init__(
        self,
        *,
        prefect_home: Path,
        port: int | None = None,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        workers: int = 1,
        redis_url: str | None = None,
        auth_string: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        """`workers` > 1 needs Postgres and `redis_url` (Prefect's scale-out set-up): the API
        then runs in `workers` processes and the services in one more process."""
        if workers > 1 and not (redis_url and database_url and "postgresql" in database_url):
            raise ConfigurationError(
                f"a Prefect server with {workers} API workers needs a PostgreSQL database_url "
                "and a redis_url (Prefect's multi-worker set-up)"
            )
        self.workers = workers
        self.redis_url = redis_url
        self.prefect_home = prefect_home
        self.port = port or free_port()
        self.database_url = database_url
        self.extra_env = extra_env or {}
        self.auth_string = auth_string
        self.tls = tls.check() if tls is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self.services: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _verify(self) -> ssl.SSLContext | bool:
        """How this process verifies the server: its CA when it serves TLS with one."""
        if self.tls is not None and self.tls.ca is not None:
            return ssl.create_default_context(cafile=str(self.tls.ca))
        return True

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def is_healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.api_url}/health", timeout=2, verify=self._verify())
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    def check_auth(self) -> None:
        """Make sure the server answering on this port demands this server's credential.

        A server left running by an earlier `fleetwright up` may have no authentication or
        another credential; PrefectUnavailableError then says what to do.
        """
        if self.auth_string is None:
            return
        token = base64.b64encode(self.auth_string.encode()).decode()
        url = f"{self.api_url}/admin/version"
        try:
            with httpx.Client(timeout=10, verify=self._verify()) as client:
                anonymous = client.get(url).status_code
                ours = client.get(url, headers={"Authorization": f"Basic {token}"})
        except httpx.HTTPError as exc:
            raise PrefectUnavailableError(
                f"the Prefect server at {self.url} did not answer ({type(exc).__name__})"
            ) from None
        if anonymous != 401:
            raise PrefectUnavailableError(
                f"a Prefect server without authentication is running at {self.url}; stop it, "
                "then run `fleetwright up` again (it starts one that asks for a credential)",
                retryable=False,
            )
        if ours.status_code == 401:
            raise PrefectUnavailableError(
                f"the Prefect server at {self.url} refuses the credential in the Fleetwright "
                "home (it was started with another one); stop it and run `fleetwright up` again",
                retryable=False,
            )

    def start(self, *, timeout: timedelta = timedelta(seconds=90)) -> str:
        """Start the server and wait until it answers; returns the API URL."""
        private_dir(self.prefect_home)
        env = {**os.environ, **prefect_env(self.prefect_home, database_url=self.database_url)}
        if self.redis_url:
            env.update(redis_env(self.redis_url))
        # The UI asks its browser to call PREFECT_UI_API_URL, which Prefect derives from
        # PREFECT_SERVER_API_PORT (4200), not from `--port`: on any other port the UI would
        # show "Can't connect to Server API". Tell it the real address (a URL the user set wins).
        env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
        env["PREFECT_SERVER_API_PORT"] = str(self.port)
        if not (env.get("PREFECT_UI_API_URL") or env.get("PREFECT_SERVER_UI_API_URL")):
            env["PREFECT_UI_API_URL"] = self.api_url
        env.update(self.extra_env)
        env.pop("PREFECT_API_URL", None)
        if self.auth_string is not None:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
            # the server's own clients (services calling the API) authenticate with it too
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        cmd = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.tls is not None:
            # Prefect's own app under uvicorn's TLS (`prefect server start` has no TLS options)
            cmd = [
                sys.executable,
                "-m",
                "fleetwright.embedded.tls_server",
                "--port",
                str(self.port),
                "--certfile",
                str(self.tls.cert),
                "--keyfile",
                str(self.tls.key),
            ]
        if self.workers > 1:
            # `--workers N` runs the API only (Prefect turns its services off): the services
            # (events, automations, scheduler, ...) run in a process of their own. The workers
            # and the services would race to migrate the database: migrate once, first.
            self._migrate(env, timeout)
            env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
            cmd += ["--workers", str(self.workers)]
        self.process = self._spawn(cmd, env, "server.log")
        if self.workers > 1:
            self.services = self._spawn(
                [sys.executable, "-m", "prefect", "server", "services", "start"],
                env,
                "services.log",
            )
        deadline = time.monotonic() + timeout.total_seconds()
        while time.monotonic() < deadline:
            if self.process.poll() is not None or (
                self.services is not None and self.services.poll() is not None
            ):
                self.stop()
                tail = (self.prefect_home / "server.log").read_text(errors="replace")[-800:]
                raise PrefectUnavailableError(
                    "The local Prefect server exited at start; "
                    f"see {self.prefect_home / 'server.log'}: {tail.strip().splitlines()[-1:]}",
                    retryable=False,
                )
            if self.is_healthy():
                logger.info("Prefect server ready at %s", self.url)
                return self.api_url
            time.sleep(0.3)
        self.stop()
        raise PrefectUnavailableError(
            f"The local Prefect server did not answer within {timeout.total_seconds():.0f}s; "
            f"see {self.prefect_home / 'server.log'}",
            retryable=False,
        )

    def _migrate(self, env: dict[str, str], timeout: timedelta) -> None:
        with open_log(self.prefect_home / "server.log") as log:
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout.total_seconds(),
                check=False,
                umask=PRIVATE_UMASK,
            )
        if done.returncode != 0:
            raise PrefectUnavailableError(
                f"Migrating the Prefect database failed (code {done.returncode}); "
                f"see {self.prefect_home / 'server.log'}",
                retryable=False,
            )

    def _spawn(self, cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        with open_log(self.prefect_home / log_name) as log:
            return subprocess.Popen(
                cmd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )

    def stop(self, *, timeout: timedelta = timedelta(seconds=15)) -> None:
        """Stop the server (and its services process) and every process they started."""
        services, self.services = self.services, None
        for proc in (self.process, services):
            if proc is not None:
                stop_process(proc, timeout=timeout.total_seconds())
        self.process = None

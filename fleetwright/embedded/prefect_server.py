"""A local Prefect server in a child process, isolated from the user's own Prefect profile."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from fleetwright.errors import PrefectUnavailableError

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

    Runs until stop(); logs go to `<prefect_home>/server.log`.
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
    ) -> None:
        """`workers` > 1 needs Postgres and `redis_url` (Prefect's scale-out set-up)."""
        self.workers = workers
        self.redis_url = redis_url
        self.prefect_home = prefect_home
        self.port = port or free_port()
        self.database_url = database_url
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def is_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, *, timeout: timedelta = timedelta(seconds=90)) -> str:
        """Start the server and wait until it answers; returns the API URL."""
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **prefect_env(self.prefect_home, database_url=self.database_url)}
        if self.redis_url:
            env.update(redis_env(self.redis_url))
        env.update(self.extra_env)
        env.pop("PREFECT_API_URL", None)
        log = open(self.prefect_home / "server.log", "ab")  # noqa: SIM115 - owned by the child
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
        self.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout.total_seconds()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.prefect_home / "server.log").read_text(errors="replace")[-800:]
                raise PrefectUnavailableError(
                    f"The local Prefect server exited at start (code {self.process.returncode}); "
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

    def stop(self, *, timeout: timedelta = timedelta(seconds=15)) -> None:
        """Stop the server and every process it started."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout.total_seconds())
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

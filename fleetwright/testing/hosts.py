"""Worker hosts across a network, on one machine, with Linux network namespaces.

`Cluster` builds a central side in the root namespace and N worker hosts, each in a network
namespace of its own (`ip netns`), joined by a veth pair per host to a Linux bridge:

    root namespace (bridge fwbr…, 10.231.0.1/24)        host a (netns, 10.231.0.11)
      scripts/ha.sh: 2 API servers + services + nginx ── prefect worker --work-queue host-a
        (nginx listens on the bridge address)               its flow-run processes, Chromium
      redis-server of its own (Prefect messaging,        host b (netns, 10.231.0.12)
        Fleetwright's shared state)                        ...
      socat: bridge:port → Postgres on 127.0.0.1:5432
      moto's S3 server (state backend `object`)
      the demo site

Each host has its own FLEETWRIGHT_HOME and PREFECT_HOME (separate temp folders, nothing shared
on disk) and reaches the central services by bridge address only. Its worker polls its own
queue (`host-<name>`) and the pool's `default` queue, where deployment runs without a queue
(the resume trigger's, a fleet run's children) go. The harness starts, stops and SIGKILLs a
host's worker with every process in its namespace. Everything is torn down by `stop()`.

Needs root (or CAP_NET_ADMIN), `ip`, `socat`, `redis-server`, nginx and a checkout (for
scripts/ha.sh). `namespaces_refused()` says why a machine cannot run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["Cluster", "Host", "namespaces_refused"]

ROOT = Path(__file__).resolve().parents[2]
HA_SCRIPT = ROOT / "scripts" / "ha.sh"
POOL = "fleetwright"
# What a host's processes keep from the caller's environment (the rest is set by the harness).
_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR")
_KEEP_FLEETWRIGHT = ("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "FLEETWRIGHT_HEADLESS")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def namespaces_refused() -> str | None:
    """Why this machine cannot build namespaced hosts (None: it can). Tries `ip netns add`."""
    if shutil.which("ip") is None:
        return "the `ip` command (Debian package iproute2) is not installed"
    probe = f"fwprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` could not run: {exc}"
    if made.returncode != 0:
        return f"the kernel or this user may not create network namespaces: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    for tool in ("socat", "redis-server", "nginx"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package {tool.replace('-server', '')})"
    if not HA_SCRIPT.exists():
        return f"{HA_SCRIPT} is missing (the multi-host harness runs from a checkout)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_port(host: str, port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {host}:{port}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> Any:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


class RedisServer:
    """A redis-server of the cluster's own (no persistence), restartable on the same port."""

    def __init__(self, binds: Sequence[str], log: Path) -> None:
        self.binds = list(binds)
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", *self.binds, "--save", "",
               "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"]  # fmt: skip
        self.proc = _spawn(cmd, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, self.log)
        _wait_port("127.0.0.1", self.port, "redis-server")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, *, down_for: float = 1.0) -> None:
        """Stop (SIGTERM; nothing is saved, so every key and stream is gone) and start again."""
        self.stop()
        time.sleep(down_for)
        self.start()


class Host:
    """A worker host: a network namespace, an address on the bridge, a home of its own."""

    def __init__(self, cluster: Cluster, name: str, index: int) -> None:
        self.cluster = cluster
        self.name = name
        self.queue = f"host-{name}"
        self.netns = f"fw{cluster.tag}{name}"
        self.address = f"{cluster.subnet}.{10 + index}"
        self.veth = f"fwv{cluster.tag}{name}"
        self.dir = cluster.dir / f"host-{name}"
        self.home = self.dir / "home"
        self.prefect_home = self.dir / "prefect"
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "worker.log"

    def create(self) -> None:
        c = self.cluster
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        _ip("link", "set", self.veth, "master", c.bridge)
        _ip("link", "set", self.veth, "up")
        for args in (
            ("addr", "add", f"{self.address}/24", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip("-n", self.netns, *args)
        for d in (self.home, self.prefect_home):
            d.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The environment of this host's processes: central services by bridge address only."""
        env = {k: os.environ[k] for k in _KEEP + _KEEP_FLEETWRIGHT if k in os.environ}
        env.update(self.cluster.service_env())
        env.update(
            FLEETWRIGHT_HOME=str(self.home),
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_PROFILES_PATH=str(self.prefect_home / "profiles.toml"),
            PREFECT_WORKER_QUERY_SECONDS=str(self.cluster.query_seconds),
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30",
            # one shared Chromium per flow-run process: hosts share this machine's cores
            FLEETWRIGHT_BROWSERS_PER_WORKER="1",
            FLEETWRIGHT_PROJECT_DIR=str(_project_dir()),
        )
        return env

    def exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host's namespace, with its environment."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *cmd],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def start_worker(self, *, limit: int | None = None, timeout: float = 120) -> None:
        """A Prefect process worker in this namespace for the pool, its queue and `default`;
        `limit`: at most that many flow runs at once (the worker's --limit)."""
        if self.worker is not None and self.worker.poll() is None:
            return
        cmd = ["ip", "netns", "exec", self.netns, sys.executable, "-m", "prefect", "worker",
               "start", "--pool", self.cluster.pool, "--type", "process",
               "--work-queue", self.queue, "--work-queue", "default",
               "--name", f"{self.netns}-worker"]  # fmt: skip
        if limit is not None:
            cmd += ["--limit", str(limit)]
        self.worker = _spawn(cmd, self.env(), self.log, cwd=_project_dir())
        self.cluster.wait_worker(f"{self.netns}-worker", self.worker, self.log, timeout=timeout)

    def pids(self) -> list[int]:
        """Every process in this host's namespace (the worker, flow runs, Chromium)."""
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process it started (all of the namespace's)."""
        killed = []
        for _ in range(10):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.2)
        if self.worker is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.worker.wait(timeout=10)
            self.worker = None
        return killed

    def stop_worker(self) -> None:
        """SIGTERM the worker's process group, then SIGKILL whatever is left in the namespace."""
        _stop(self.worker)
        self.worker = None
        self.kill()

    def destroy(self) -> None:
        self.stop_worker()
        _ip("netns", "del", self.netns, check=False)  # takes its veth end, and so the pair
        _ip("link", "del", self.veth, check=False)


def _project_dir() -> Path:
    """The folder `fleetwright up` deploys from (fleetwright.embedded.stack.PROJECT_DIR)."""
    return Path(__file__).resolve().parents[1] / "project"


# Deploys as `fleetwright up` does (fleetwright/cli/up.py), in a child process pointed at the
# cluster: the harness does not import the stack it drives (the engine imports this package).
_DEPLOY = """
import asyncio, sys
from fleetwright.deployments.automations import ensure_heartbeat_automation
from fleetwright.embedded.stack import deploy_project, ensure_work_pool
asyncio.run(ensure_work_pool(sys.argv[1]))
deploy_project({}, names=["run-command", "run-command-resume"])
asyncio.run(ensure_heartbeat_automation())


async def queues(pool, names):
    # a worker polling a queue that does not exist gets nothing from any of its queues
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        for name in names:
            try:
                await client.create_work_queue(name=name, work_pool_name=pool)
            except ObjectAlreadyExists:
                pass


asyncio.run(queues(sys.argv[1], sys.argv[2:]))
"""


class Cluster:
    """The central stack plus `hosts` namespaced worker hosts (see the module docstring).

    Use as a context manager, or `start()` / `stop()`; `use()` points this process (the test
    or benchmark driving the cluster) at the central services.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        hosts: Sequence[str] = ("a", "b"),
        subnet: str = "10.231.0",
        pg_url: str = "postgresql://root@127.0.0.1:5432",
        pool: str = POOL,
        query_seconds: float = 1,
        site_delay_ms: int = 0,
    ) -> None:
        self.tag = f"{os.getpid() % 100000:05d}"
        self.dir = workdir
        self.subnet = subnet
        self.address = f"{subnet}.1"
        self.bridge = f"fwbr{self.tag}"
        self.pg_url = pg_url.rstrip("/")
        self.pool = pool
        self.query_seconds = query_seconds
        self.site_delay_ms = site_delay_ms
        self.hosts = {name: Host(self, name, i + 1) for i, name in enumerate(hosts)}
        self.catalogue_db = f"fw_hosts_{uuid.uuid4().hex[:10]}"
        self.ha_db = f"fw_hosts_ha_{uuid.uuid4().hex[:10]}"
        self.lb_port = free_port()
        self.api_ports = (free_port(), free_port())
        self.pg_port = free_port()
        self.s3_port = free_port()
        self.redis = RedisServer(["127.0.0.1", self.address], self.dir / "redis.log")
        self.bucket = f"fw-hosts-{uuid.uuid4().hex[:10]}"
        self._forwarder: subprocess.Popen[bytes] | None = None
        self._s3: Any = None
        self._site: Any = None
        self._started: list[str] = []

    # addresses every host uses
    @property
    def api_url(self) -> str:
        return f"http://{self.address}:{self.lb_port}/api"

    @property
    def database_url(self) -> str:
        user = self.pg_url.removeprefix("postgresql://").split("@")[0]
        return f"postgresql+psycopg://{user}@{self.address}:{self.pg_port}/{self.catalogue_db}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.address}:{self.s3_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.address}:{self.redis.port}/0"

    @property
    def site_url(self) -> str:
        assert self._site is not None, "the cluster is not started"
        url: str = self._site.url
        return url

    def service_env(self) -> dict[str, str]:
        """Settings naming the central services by bridge address (hosts and this process)."""
        return {
            "PREFECT_API_URL": self.api_url,
            "FLEETWRIGHT_PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            "FLEETWRIGHT_DATABASE_URL": self.database_url,
            "FLEETWRIGHT_STATE_BACKEND": "object",
            "FLEETWRIGHT_STATE_BUCKET": self.bucket,
            "FLEETWRIGHT_STATE_ENDPOINT_URL": self.s3_url,
            "FLEETWRIGHT_REDIS_URL": self.redis_url,
            "AWS_ACCESS_KEY_ID": "fleetwright-test",
            "AWS_SECRET_ACCESS_KEY": "fleetwright-test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    # lifecycle
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        refused = namespaces_refused()
        if refused:
            raise RuntimeError(refused)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._started.append("bridge")
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host in self.hosts.values():
            self._started.append(f"host:{host.name}")
            host.create()
        self._started.append("redis")
        self.redis.start()
        self._started.append("ha")
        up = self.ha("up", timeout=600)
        if up.returncode != 0:
            raise RuntimeError(f"scripts/ha.sh up failed: {(up.stdout + up.stderr)[-2000:]}")
        self._started.append("forwarder")
        self._forwarder = _spawn(
            ["socat", f"TCP-LISTEN:{self.pg_port},bind={self.address},reuseaddr,fork",
             f"TCP:{self.pg_url.split('@')[-1]}"],
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, self.dir / "socat.log",
        )  # fmt: skip
        _wait_port(self.address, self.pg_port, "the Postgres forwarder")
        self._create_database()
        from fleetwright.testing.s3 import S3Server

        self._s3 = S3Server(self.address, self.s3_port).start()
        from fleetwright.testing.site import SiteServer

        self._site = SiteServer(
            host=self.address, delay=timedelta(milliseconds=self.site_delay_ms)
        ).start()
        self._s3.create_bucket(
            self.bucket, aws_access_key_id="fleetwright-test",
            aws_secret_access_key="fleetwright-test", region_name="us-east-1",
        )  # fmt: skip
        self._deploy()

    def _deploy(self) -> None:
        """The work pool, run-command and run-command-resume from prefect.yaml, and the
        heartbeat automation, as `fleetwright up` deploys them; a work queue per host."""
        host = next(iter(self.hosts.values()))
        env = {**host.env(), "FLEETWRIGHT_HOME": str(self.dir / "deployer")}
        done = subprocess.run(
            [sys.executable, "-c", _DEPLOY, self.pool, *(h.queue for h in self.hosts.values())],
            env=env, capture_output=True, text=True,
            timeout=300, check=False, cwd=_project_dir(),
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"deploying to the cluster failed: {done.stderr[-2000:]}")

    def stop(self) -> None:
        """Tear everything down (idempotent; what was never started is skipped)."""
        errors: list[str] = []

        def step(what: str, fn: Any) -> None:
            try:
                fn()
            except Exception as exc:  # teardown goes on; the first problems are reported
                errors.append(f"{what}: {exc}")

        for host in self.hosts.values():
            step(f"host {host.name}", host.destroy)
        if self._site is not None:
            step("site", self._site.stop)
            self._site = None
        if self._s3 is not None:
            step("s3", self._s3.stop)
            self._s3 = None
        if "ha" in self._started:
            step("ha", lambda: self.ha("down", "--purge", timeout=300))
        step("forwarder", lambda: _stop(self._forwarder))
        self._forwarder = None
        step("redis", self.redis.stop)
        if "bridge" in self._started:
            _ip("link", "del", self.bridge, check=False)
        if self._started:
            step("catalogue", self._drop_database)
        self._started = []
        if errors:
            raise RuntimeError("tearing the cluster down: " + "; ".join(errors))

    def ha(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """scripts/ha.sh with this cluster's settings (up, status, kill-api N, down)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            FLEETWRIGHT_HA_DIR=str(self.dir / "ha"),
            FLEETWRIGHT_HA_PORT=str(self.lb_port),
            FLEETWRIGHT_HA_LISTEN=self.address,
            FLEETWRIGHT_HA_API_PORTS=" ".join(map(str, self.api_ports)),
            FLEETWRIGHT_HA_PG=self.pg_url,
            FLEETWRIGHT_HA_DATABASE=self.ha_db,
            FLEETWRIGHT_HA_REDIS=f"127.0.0.1:{self.redis.port}",
            FLEETWRIGHT_HA_REDIS_DB="1",
        )
        return subprocess.run(
            ["bash", str(HA_SCRIPT), *args], env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type,unused-ignore]

    def _create_database(self) -> None:
        self._admin(f'create database "{self.catalogue_db}"')

    def _drop_database(self) -> None:
        from fleetwright.catalogue.db import dispose_engines

        dispose_engines()
        self._admin(f'drop database if exists "{self.catalogue_db}" with (force)')

    @contextlib.contextmanager
    def use(self) -> Iterator[None]:
        """Point this process's Fleetwright and Prefect settings at the central services."""
        from fleetwright.catalogue.db import dispose_engines
        from fleetwright.settings import reset_settings

        env = self.service_env()
        saved = {k: os.environ.get(k) for k in [*env, "PREFECT_API_AUTH_STRING"]}
        os.environ.pop("PREFECT_API_AUTH_STRING", None)  # the HA stack asks for none
        os.environ.update(env)
        self._refresh(reset_settings, dispose_engines)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._refresh(reset_settings, dispose_engines)

    @staticmethod
    def _refresh(reset_settings: Any, dispose_engines: Any) -> None:
        dispose_engines()
        reset_settings()
        context = sys.modules.get("prefect.context")
        refresh = getattr(context, "refresh_global_settings_context", None)
        if refresh is not None:
            refresh()

    def wait_worker(
        self, name: str, proc: subprocess.Popen[bytes], log: Path, *, timeout: float
    ) -> None:
        """Until the worker `name` has polled the pool (the server lists it as online)."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
                raise RuntimeError(f"worker {name} exited at start: {tail}")
            try:
                found = httpx.post(
                    f"{self.api_url}/work_pools/{self.pool}/workers/filter", json={}, timeout=10
                ).json()
                if any(w.get("name") == name and w.get("status") == "ONLINE" for w in found):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not come online within {timeout:g}s")
            time.sleep(0.5)

    async def asubmit(
        self, parameters: dict[str, Any], *, queue: str | None = None,
        deployment: str = "run-command/run-command",
    ) -> str:  # fmt: skip
        """A flow run of `deployment` on `queue` (a host's, or None: the pool's default)."""
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            dep = await client.read_deployment_by_name(deployment)
            run = await client.create_flow_run_from_deployment(
                dep.id, parameters=parameters, work_queue_name=queue
            )
        return str(run.id)

    def submit(self, parameters: dict[str, Any], *, queue: str | None = None) -> str:
        return asyncio.run(self.asubmit(parameters, queue=queue))

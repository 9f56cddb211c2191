"""The secrets sweep: distinctive fake secrets go in the way a user puts them in (proxy passwords
on stdin, a GitHub token, its webhook secret and an OpenAI key in environment variables for
`service add`, site passwords on stdin for `secret set`), real fleet runs use all of them with
traces on (`fleetwright run ... --trace on`: in-process, through the run-command deployment on
a process worker, and on a warm worker; Prefect at DEBUG), `fleetwright webhooks serve`
receives a signed delivery, and then every place a secret could end up is searched for every
form of every value (fleetwright.testing.sweep):

- stdout and stderr of every CLI process, both workers and the webhook receiver;
- the Prefect API: logs, artifacts, flow runs (with their parameters), task runs, events,
  variables, deployments and block documents as listed (secret fields must come back
  obfuscated unless include_secrets is asked for);
- every table of Prefect's database, and every file under the Prefect homes and the result
  storage;
- the Fleetwright home: an SQL dump of every catalogue table, and every file (traces, state,
  logs), with every member of every Playwright trace unzipped;
- /proc/*/cmdline and /proc/*/environ of every process, sampled every 50 ms during the run.

Zero hits are expected. Every channel also has a positive control (something that must be
found there), so an empty or unread channel fails instead of passing, and the /proc sampler
must find a value planted in a process's argv and environment during the run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetwright.embedded.stack import deploy_project, start_worker, stop_process
from fleetwright.fleet.warm import await_warm_worker
from fleetwright.testing.fake_github import FakeGitHub, deliver_webhook
from fleetwright.testing.fake_openai import FakeOpenAI
from fleetwright.testing.proxies import MicroSocks, TinyProxy, free_port, wait_port
from fleetwright.testing.site import SiteServer, serve_site
from fleetwright.testing.sweep import Hit, ProcSampler, search
from fleetwright.testing.webhook_payloads import webhook_payload

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

FLEETWRIGHT = str(Path(sys.executable).parent / "fleetwright")
_TAG = uuid.uuid4().hex[:10]

#: The swept values: distinctive, random per test session, never used for anything else.
SECRETS = {
    "http proxy password": f"FwSweepHttpProxy{_TAG}",
    "socks5 proxy password": f"FwSweepSocksProxy{_TAG}",
    "github token": f"ghp_FwSweepGitHub{_TAG}",
    "openai key": f"sk-FwSweepOpenAI{_TAG}",
    "webhook secret": f"whsec-FwSweepWebhook{_TAG}",
    "site password (storage profile)": f"Fw-sweep&site!{_TAG}a",
    "site password (persistent profile)": f"Fw-sweep&site!{_TAG}b",
}

COMMAND = """\
name: sweep
version: "1"
description: Sign in with a secret parameter, ask a model, file an issue.
params:
  base_url: {type: str}
  password: {type: secret, default: "sweep-site-{{ profile.name }}"}
steps:
  - goto: "{{ params.base_url }}/login"
  - fill: {selector: "#user", value: "{{ profile.name }}"}
  - fill: {selector: "#password", value: "{{ params.password }}"}
  - click: "#submit"
  - wait_for: {url: "**/account"}
  - extract: {id: greeting, selector: "#who", kind: text}
  - openai.respond: {account: ai, prompt: "Greet {{ profile.name }} in five words"}
    id: hello
  - github.create_issue:
      account: ops
      repo: octo/sweep
      title: "Swept {{ profile.name }}"
      body: "{{ steps.hello.text }}"
    id: issue
"""

STORAGE_PROFILE, PERSISTENT_PROFILE = "sweep-storage", "sweep-persistent"
WEBHOOK_DELIVERY = str(uuid.uuid4())
ISSUE_LABELLED = webhook_payload(
    "issues",
    action="labeled",
    label={"name": "recheck"},
    issue={"number": 1, "title": "Recheck", "body": f"profile: {STORAGE_PROFILE}"},
    repository={"full_name": "octo/sweep"},
)


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


class _Cli:
    """The `fleetwright` console script as a user runs it; keeps every output for the sweep."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, bytes]] = []

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            [FLEETWRIGHT, *args],
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=600,
        )
        label = " ".join(args[:3])
        self.outputs += [(f"{label}: stdout", done.stdout), (f"{label}: stderr", done.stderr)]
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done


def _api() -> httpx.Client:
    """The Prefect API, with the credential the tests' server asks for (Basic, as Prefect's
    client sends it)."""
    headers = {}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return httpx.Client(base_url=os.environ["PREFECT_API_URL"], timeout=60, headers=headers)


def _paged(client: httpx.Client, path: str, body: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    offset = 0
    while True:
        resp = client.post(path, json={**body, "limit": 200, "offset": offset})
        resp.raise_for_status()
        page = resp.json()
        items += page
        if len(page) < 200:
            return items
        offset += 200


def _prefect_api_blobs(since: datetime) -> dict[str, list[tuple[str, bytes]]]:
    """What the Prefect API hands out, as JSON text per record, by kind."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    with _api() as client:
        for kind, path in [
            ("logs", "/logs/filter"),
            ("artifacts", "/artifacts/filter"),
            ("flow runs", "/flow_runs/filter"),
            ("task runs", "/task_runs/filter"),
            ("variables", "/variables/filter"),
            ("deployments", "/deployments/filter"),
            ("block documents", "/block_documents/filter"),
        ]:
            out[kind] = [
                (f"{kind} {item.get('id', i)}", json.dumps(item).encode())
                for i, item in enumerate(_paged(client, path, {}))
            ]
        events: list[Any] = []
        resp = client.post(
            "/events/filter",
            json={"filter": {"occurred": {"since": since.isoformat()}}, "limit": 50},
        )
        resp.raise_for_status()
        page = resp.json()
        while True:
            events += page["events"]
            if not page.get("next_page"):
                break
            resp = client.get(page["next_page"])
            resp.raise_for_status()
            page = resp.json()
        out["events"] = [(f"event {e['event']} {e['id']}", json.dumps(e).encode()) for e in events]
    return out


def _wait_for_event(event_id: str, timeout: float = 60) -> None:
    """Until the Prefect API has stored the event `event_id` (events are stored in batches)."""
    deadline = time.monotonic() + timeout
    with _api() as client:
        while time.monotonic() < deadline:
            resp = client.post("/events/filter", json={"filter": {"id": {"id": [event_id]}}})
            if resp.status_code == 200 and resp.json()["events"]:
                return
            time.sleep(0.5)
    raise AssertionError(f"event {event_id} was not stored")


def _revealed_blocks() -> list[tuple[str, bytes]]:
    """Block documents with include_secrets: the positive control for the block listing."""
    with _api() as client:
        docs = _paged(client, "/block_documents/filter", {"include_secrets": True})
    return [(f"block {d['name']}", json.dumps(d).encode()) for d in docs]


def _database_rows(url: str) -> list[tuple[str, bytes]]:
    """Every row of every table of Prefect's database, as text."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    sync_url = make_url(url)
    if sync_url.drivername.startswith("postgresql"):
        sync_url = sync_url.set(drivername="postgresql+psycopg")
        row_text = "SELECT t::text FROM {} AS t"
    else:
        sync_url = sync_url.set(drivername="sqlite")
        row_text = ""
    engine = create_engine(sync_url)
    rows: list[tuple[str, bytes]] = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                if row_text:
                    result = conn.execute(text(row_text.format(f'"{table}"')))
                    rows += [(f"prefect db {table}", r[0].encode()) for r in result]
                else:
                    result = conn.execute(text(f'SELECT * FROM "{table}"'))
                    rows += [(f"prefect db {table}", repr(tuple(r)).encode()) for r in result]
    finally:
        engine.dispose()
    return rows


def _catalogue_dump(home: Path) -> list[tuple[str, bytes]]:
    """An SQL dump of every table of the catalogue (SQLite in the home)."""
    db = home / "catalogue.db"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    return [("catalogue.db SQL dump", dump.encode())]


def _files(*roots: Path) -> list[tuple[str, bytes]]:
    """Every file under `roots`, and every member of every zip file (Playwright traces)."""
    blobs: list[tuple[str, bytes]] = []
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            blobs.append((str(path), data))
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as z:
                    blobs += [(f"{path}!{member}", z.read(member)) for member in z.namelist()]
    return blobs


def _found(value: str, blobs: list[tuple[str, bytes]]) -> bool:
    needle = value.encode()
    return any(needle in blob for _, blob in blobs)


def test_no_secret_is_left_anywhere_after_a_real_run(
    prefect_api: str,
    prefect_database: str,
    home: Path,
    site: SiteServer,
    tmp_path: Path,
) -> None:
    cli = _Cli()
    since = datetime.now(UTC)
    (tmp_path / "tp").mkdir()
    with (
        TinyProxy(
            username="sweep", password=SECRETS["http proxy password"], workdir=tmp_path / "tp"
        ) as tiny,
        MicroSocks(username="sweep", password=SECRETS["socks5 proxy password"]) as socks,
        FakeGitHub(repos=["octo/sweep"]) as github,
        FakeOpenAI(api_key=SECRETS["openai key"]) as openai,
    ):
        github.add_token(SECRETS["github token"])

        # -- secrets go in the way a user puts them in ------------------------------------
        cli("proxy", "add", "sweep-http", f"http://sweep@127.0.0.1:{tiny.port}",
            "--password-stdin", stdin=SECRETS["http proxy password"] + "\n")  # fmt: skip
        cli("proxy", "add", "sweep-socks", f"socks5://sweep@127.0.0.1:{socks.port}",
            "--password-stdin", stdin=SECRETS["socks5 proxy password"] + "\n")  # fmt: skip
        cli("profile", "add", STORAGE_PROFILE, "--proxy", "sweep-http")
        cli("profile", "add", PERSISTENT_PROFILE, "--proxy", "sweep-socks", "--mode", "persistent")
        gh_env = {"SWEEP_GH_TOKEN": SECRETS["github token"],
                  "SWEEP_WH_SECRET": SECRETS["webhook secret"]}  # fmt: skip
        cli("service", "add", "github", "--account", "ops", "--base-url", github.url,
            "--token-env", "SWEEP_GH_TOKEN", "--webhook-secret-env", "SWEEP_WH_SECRET",
            env=gh_env)  # fmt: skip
        ai_env = {"SWEEP_OPENAI_KEY": SECRETS["openai key"]}
        cli("service", "add", "openai", "--account", "ai", "--base-url", openai.base_url,
            "--api-key-env", "SWEEP_OPENAI_KEY", env=ai_env)  # fmt: skip
        for profile, which in [(STORAGE_PROFILE, "storage"), (PERSISTENT_PROFILE, "persistent")]:
            cli("secret", "set", f"sweep-site-{profile}",
                stdin=SECRETS[f"site password ({which} profile)"] + "\n")  # fmt: skip
        command_file = tmp_path / "sweep.yaml"
        command_file.write_text(COMMAND)
        cli("commands", "load", str(command_file))

        # -- three runs (in this process; through the run-command deployment on a process
        # worker; on a warm worker, whose task parameters travel through result storage), and
        # a webhook; every process's argv and environment sampled throughout ---------------
        debug = {"PREFECT_LOGGING_LEVEL": "DEBUG"}
        deploy_project({"FLEETWRIGHT_HOME": str(home)}, names=["run-command"])
        worker_log = tmp_path / "process-worker.log"
        run_args = ["sweep", STORAGE_PROFILE, PERSISTENT_PROFILE, "--trace", "on", "--json",
                    "-p", f"base_url={site.url}"]  # fmt: skip
        plant = f"FwSweepPlanted{_TAG}"
        warm_log, hook_log = tmp_path / "warm-worker.log", tmp_path / "webhooks.log"
        hook_port = free_port()
        with ProcSampler() as sampler:
            planted = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(600)", f"--planted={plant}"],
                env={"FW_PLANTED": plant},
            )
            with open(warm_log, "wb") as out:
                warm = subprocess.Popen(
                    [sys.executable, "-m", "fleetwright.deployments.warm_worker", "--limit", "4"],
                    env={**os.environ, **debug}, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            with open(hook_log, "wb") as out:  # the receiver reads its secret from the block
                hooks = subprocess.Popen(
                    [FLEETWRIGHT, "webhooks", "serve", "--account", "ops", "--port",
                     str(hook_port)],
                    env={**os.environ, **debug}, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            worker = start_worker({"FLEETWRIGHT_HOME": str(home), **debug}, log_path=worker_log)
            try:
                local = cli("run", *run_args, "--local", env=debug)
                deployed = cli("run", *run_args, "--wait", env=debug)
                asyncio.run(await_warm_worker(timeout=timedelta(seconds=120)))
                now = cli("run", *run_args, "--now", env=debug)
                wait_port(hook_port, timeout=timedelta(seconds=60))
                delivered = deliver_webhook(
                    f"http://127.0.0.1:{hook_port}/github", "issues", ISSUE_LABELLED,
                    secret=SECRETS["webhook secret"], delivery=WEBHOOK_DELIVERY,
                )  # fmt: skip
                assert delivered.status_code == 202, delivered.text
                _wait_for_event(WEBHOOK_DELIVERY)
                sampler.wait_rounds(2)
            finally:
                stop_process(worker)
                stop_process(warm)
                stop_process(hooks)
                planted.kill()
                planted.wait()
        cli.outputs.append(("process worker output", worker_log.read_bytes()))
        cli.outputs.append(("warm worker output", warm_log.read_bytes()))
        cli.outputs.append(("webhooks serve output", hook_log.read_bytes()))
        for run in (local, deployed, now):
            summary = json.loads(run.stdout)
            assert summary["ok"] == 2 and summary["failed"] == 0, summary

        # the runs really used every secret
        assert github.issue("octo/sweep", 6)["title"].startswith("Swept ")
        assert len([r for r in openai.requests if r.path == "/v1/responses"]) == 6
        for profile, which in [(STORAGE_PROFILE, "storage"), (PERSISTENT_PROFILE, "persistent")]:
            value = SECRETS[f"site password ({which} profile)"]
            assert site.logins[profile] == hashlib.sha256(value.encode()).hexdigest()
        assert "127.0.0.1" in tiny.log_text()  # the storage profile went through tinyproxy
        socks_pid = socks._proc.pid if socks._proc else -1
        tiny_pid = tiny._proc.pid if tiny._proc else -1

    # -- gather every channel -------------------------------------------------------------
    session_home = Path(os.environ["PREFECT_HOME"]).parent  # the Prefect homes and results
    channels: dict[str, list[tuple[str, bytes]]] = {
        "cli output": cli.outputs,
        **{f"prefect api {k}": v for k, v in _prefect_api_blobs(since).items()},
        "prefect database": _database_rows(prefect_database),
        "prefect homes and result storage": _files(session_home),
        "fleetwright home catalogue": _catalogue_dump(home),
        "fleetwright home files": _files(home),
        # the upstream proxies' own processes are the test's, not Fleetwright's (microsocks
        # takes its password as an argument)
        "processes": sampler.blobs(exclude_pids=[socks_pid, tiny_pid, planted.pid]),
    }

    # -- positive controls: every channel was read and holds what it should ----------------
    assert _found(STORAGE_PROFILE, [b for b in cli.outputs if "run sweep" in b[0]])
    assert _found("sweep", [b for b in cli.outputs if "warm worker" in b[0]])
    assert _found("sweep", [b for b in cli.outputs if "process worker" in b[0]])
    assert _found("POST /github", [b for b in cli.outputs if "webhooks serve" in b[0]])
    assert _found(WEBHOOK_DELIVERY, channels["prefect api events"]), "no webhook event"
    for kind in ("logs", "flow runs", "task runs", "events", "block documents"):
        assert _found(STORAGE_PROFILE, channels[f"prefect api {kind}"]), kind
    assert channels["prefect api artifacts"], "no artifacts listed"
    assert _found(STORAGE_PROFILE, channels["prefect database"])
    stored = channels["prefect homes and result storage"]
    assert any("prefect-storage" in label for label, _ in stored), "no result storage"
    assert _found('INSERT INTO "profiles"', channels["fleetwright home catalogue"])
    assert _found(PERSISTENT_PROFILE, channels["fleetwright home catalogue"])
    traces = [b for b in channels["fleetwright home files"] if ".zip!" in b[0]]
    assert traces and _found("#password", traces), "no trace recorded the password fill"
    assert sampler.rounds >= 10
    procs = sampler.blobs()
    assert _found("--remote-debugging-pipe", procs), "the sampler saw no Chromium"
    assert _found(f"--planted={plant}", procs) and _found(f"FW_PLANTED={plant}", procs)
    assert any(label.endswith("server.log") for label, _ in stored), "no Prefect server log"
    revealed = _revealed_blocks()  # every secret is in a block, and the API gives it on request
    for name, value in SECRETS.items():
        assert search("revealed", revealed, {name: value}), name
    listed = [b for _, b in channels["prefect api block documents"]]
    assert any(b'"********"' in b for b in listed), "secret fields are not obfuscated"

    # -- the sweep -------------------------------------------------------------------------
    hits: list[Hit] = []
    for channel, blobs in channels.items():
        hits += search(channel, blobs, SECRETS)
        print(f"swept {channel}: {len(blobs)} items, {sum(len(b) for _, b in blobs)} bytes")
    print(f"/proc sampled {sampler.rounds} times, {len(sampler.pids_seen)} processes seen")
    assert not hits, "\n".join(str(h) for h in hits)

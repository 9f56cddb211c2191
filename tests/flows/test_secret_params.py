"""Secret command parameters: the demo command signs in with a password read from the
profile's Prefect Secret block, stored through `fleetwright secret set` from stdin. The site
receives it; flow-run parameters, logs, run rows, outputs, artifacts, result storage and the
unzipped trace never hold it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run
from fleetwright.commands import load_commands

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

CANARY = "Fw canary&pw!7731"
FORMS = {CANARY, quote(CANARY, safe=""), quote_plus(CANARY, safe=""), "canary&pw", "pw!7731"}


def _leaks(blob: str | bytes) -> list[str]:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return [form for form in FORMS if form in text]


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str) -> int:
    import os

    from fleetwright.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    env = dict(os.environ)
    try:
        main(list(args))
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(env)


async def _prefect_records(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter

    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        runs = await client.read_flow_runs()
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id={"any_": [flow_run.id]}), limit=200
        )
        artifacts = await client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
        task_runs = await client.read_task_runs()
    return {
        "parameters": [r.parameters for r in runs],
        "logs": [entry.message for entry in logs],
        "artifacts": [a.model_dump(mode="json") for a in artifacts],
        "task_runs": [t.model_dump(mode="json") for t in task_runs],
    }


def test_secret_parameter_reaches_the_site_and_nothing_else(
    site, make_profiles, home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from fleetwright.flows.run_command import run_command

    load_commands()
    [name] = make_profiles(1, prefix="sec")
    assert _cli(monkeypatch, "secret", "set", f"demo-site-{name}", stdin=CANARY + "\n") == 0
    assert f"stored Secret block demo-site-{name}" in capsys.readouterr().out

    state = asyncio.run(
        run_command(
            command="demo",
            profiles=[name],
            params={"base_url": site.url},
            trace="on",
            return_state=True,
        )
    )
    assert state.is_completed(), state.message
    assert site.logins[name] == hashlib.sha256(CANARY.encode()).hexdigest()

    with session_scope() as s:
        run = s.scalars(select(Run).where(Run.profile_name == name)).one()
        row = {c.name: getattr(run, c.name) for c in Run.__table__.columns}
    assert run.status == "ok" and run.outputs["greeting"]["text"] == f"Signed in as {name}"
    assert not _leaks(json.dumps(row, default=str))

    records = asyncio.run(_prefect_records(run.flow_run_id))
    assert records["logs"] and records["parameters"]
    for kind, values in records.items():
        assert not _leaks(json.dumps(values, default=str)), kind

    traces = [Path(p) for p in run.artifacts.values() if str(p).endswith(".zip")]
    assert traces, run.artifacts
    for trace in traces:
        with zipfile.ZipFile(trace) as z:
            files = {n: z.read(n) for n in z.namelist()}
        assert any(b"#password" in data for data in files.values())  # the fill is recorded
        for member, data in files.items():
            assert not _leaks(data), member

    # every file Fleetwright and Prefect wrote in this test's home (artifacts, result storage)
    import os

    roots = [home, Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])]
    for root in roots:
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and path.suffix not in {".db", ".db-wal", ".db-shm"}:
                assert not _leaks(path.read_bytes()), path


def test_secret_set_refuses_empty_input_and_a_missing_block_fails_clearly(
    site, make_profiles, home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from fleetwright.flows.run_command import run_command

    assert _cli(monkeypatch, "secret", "set", "empty-one", stdin="") == 2
    assert "stdin was empty" in capsys.readouterr().err

    load_commands()
    [name] = make_profiles(1, prefix="nosec")
    state = asyncio.run(
        run_command(
            command="demo",
            profiles=[name],
            params={"base_url": site.url, "password": "no-such-block"},
            return_state=True,
        )
    )
    summary = state.result(raise_on_failure=False)
    text = json.dumps(summary, default=str)
    assert "no Secret block named 'no-such-block'" in text
    assert "fleetwright secret set no-such-block" in text

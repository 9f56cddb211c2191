"""Circuit breaker: a 5xx burst opens it, calls fail fast, one trial call closes it again —
in one process, and across two worker processes sharing Redis, with Prefect events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.errors import CircuitOpenError, ServiceUnavailableError
from fleetwright.integrations.breaker import RedisBreakerStore, breaker_for
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub

WORKER = Path(__file__).with_name("breaker_worker.py")
COOLDOWN = 20.0  # longer than a worker process takes to start, even on a busy machine


def _repo_calls(fake: FakeGitHub) -> int:
    return sum(1 for r in fake.requests if r.path == "/repos/octo/demo")


@pytest.mark.prefect
async def test_breaker_opens_fails_fast_then_one_trial_closes_it(
    prefect_api: str, fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    gh = Integrations.with_credentials(
        github_block,
        prefect_rate_limits=False,
        redis_url="",
        breaker_threshold=3,
        breaker_cooldown=timedelta(seconds=1),
        timeout=timedelta(seconds=0.5),
    )
    fake_github.inject(503, body={"message": "Service Unavailable"}, times=2)
    fake_github.inject(200, body={}, delay=timedelta(seconds=1.5))  # a timeout
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError):
            await gh.call("github.get_repo", {"repo": "octo/demo"})
    before = _repo_calls(fake_github)
    started = time.monotonic()
    with pytest.raises(CircuitOpenError, match="resume in about 1 s") as exc:
        await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert time.monotonic() - started < 0.2 and not exc.value.retryable
    assert _repo_calls(fake_github) == before  # failed fast, GitHub not called
    await asyncio.sleep(1.1)
    # half-open: the trial call fails → open again
    fake_github.inject(502, body={"message": "Bad Gateway"})
    with pytest.raises(ServiceUnavailableError):
        await gh.call("github.get_repo", {"repo": "octo/demo"})
    with pytest.raises(CircuitOpenError):
        await gh.call("github.get_repo", {"repo": "octo/demo"})
    await asyncio.sleep(1.1)
    assert (await gh.call("github.get_repo", {"repo": "octo/demo"}))["full_name"] == "octo/demo"
    assert await breaker_for("github", github_block.account).state() == "closed"


async def test_client_errors_do_not_trip_the_breaker(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    gh = Integrations.with_credentials(
        github_block, prefect_rate_limits=False, redis_url="", breaker_threshold=2
    )
    for _ in range(4):
        with pytest.raises(Exception, match="404"):
            await gh.call("github.get_repo", {"repo": "octo/nope"})
    assert await breaker_for("github", github_block.account).state() == "closed"


@pytest.mark.prefect
async def test_connection_errors_count(prefect_api: str, account: str) -> None:
    block = GitHubCredentials(account=account, token="ghp_x", base_url="http://127.0.0.1:9")
    gh = Integrations.with_credentials(
        block, prefect_rate_limits=False, redis_url="", breaker_threshold=2
    )
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError, match="could not reach GitHub"):
            await gh.call("github.get_repo", {"repo": "octo/demo"})
    with pytest.raises(CircuitOpenError):
        await gh.call("github.get_repo", {"repo": "octo/demo"})


def _worker(fake: FakeGitHub, token: str, account: str, redis_url: str, calls: int) -> list[str]:
    config = {
        "url": fake.url, "token": token, "account": account, "redis_url": redis_url,
        "threshold": 3, "cooldown": COOLDOWN, "calls": calls,
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcomes


async def _events(resource: str, wanted: int) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter

    deadline = time.monotonic() + 20
    events: list[Any] = []
    while time.monotonic() < deadline:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(resource=EventResourceFilter(id=[resource])), limit=50
            )
        events = sorted(page.events, key=lambda e: e.occurred)
        if len(events) >= wanted:
            break
        await asyncio.sleep(0.5)
    return events


@pytest.mark.prefect
async def test_breaker_is_shared_by_two_worker_processes(
    prefect_api: str,
    fake_github: FakeGitHub,
    github_token: str,
    account: str,
    redis_url: str,
) -> None:
    await RedisBreakerStore(redis_url).clear(f"github:{account}")
    fake_github.inject(503, body={"message": "Service Unavailable"}, times=3)
    first = await asyncio.to_thread(_worker, fake_github, github_token, account, redis_url, 4)
    opened = time.monotonic()
    assert first == ["ServiceUnavailableError"] * 3 + ["CircuitOpenError"]
    calls = _repo_calls(fake_github)
    second = await asyncio.to_thread(_worker, fake_github, github_token, account, redis_url, 1)
    assert second == ["CircuitOpenError"]  # another process sees the open breaker
    assert _repo_calls(fake_github) == calls
    await asyncio.sleep(max(0.0, COOLDOWN + 0.3 - (time.monotonic() - opened)))
    assert await asyncio.to_thread(_worker, fake_github, github_token, account, redis_url, 1) == [
        "ok"
    ]  # the trial call closes it
    assert await asyncio.to_thread(_worker, fake_github, github_token, account, redis_url, 2) == [
        "ok",
        "ok",
    ]
    assert await RedisBreakerStore(redis_url).state(f"github:{account}") == "closed"

    events = await _events(f"fleetwright.service.github.{account}", 3)
    assert [e.event for e in events] == [
        "fleetwright.breaker.opened",
        "fleetwright.breaker.half-open",
        "fleetwright.breaker.closed",
    ]
    assert events[0].payload["failures"] == 3

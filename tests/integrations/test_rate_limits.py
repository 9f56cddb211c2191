"""Rate limits: GitHub's and OpenAI's signals are waited out; Prefect limits pace each account."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import timedelta

import pytest

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.errors import FleetwrightError, RateLimitedError
from fleetwright.integrations.ratelimit import rate_limit_name
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub
from fleetwright.testing.fake_openai import FakeOpenAI


def _error(message: str, code: str) -> dict[str, object]:
    return {"error": {"message": message, "type": "requests", "param": None, "code": code}}


def _local(*blocks: object) -> Integrations:
    return Integrations.with_credentials(*blocks, prefect_rate_limits=False, redis_url="")  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [403, 429])
async def test_github_retry_after_waits_then_succeeds(
    fake_github: FakeGitHub, github_block: GitHubCredentials, status: int
) -> None:
    fake_github.inject(
        status,
        body={"message": "You have exceeded a secondary rate limit.", "documentation_url": "x"},
        headers={"retry-after": "1"},
        path_prefix="/repos/octo/demo",
    )
    started = time.monotonic()
    result = await _local(github_block).call("github.get_repo", {"repo": "octo/demo"})
    assert result["full_name"] == "octo/demo"
    assert time.monotonic() - started >= 1.0
    assert [r.path for r in fake_github.requests].count("/repos/octo/demo") == 2


async def test_github_primary_limit_waits_for_reset(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    reset = str(int(time.time()) + 2)
    fake_github.inject(
        403,
        body={"message": "API rate limit exceeded for user.", "documentation_url": "x"},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    )
    started = time.monotonic()
    await _local(github_block).call("github.get_repo", {"repo": "octo/demo"})
    assert time.monotonic() - started >= 1.0


async def test_github_quota_used_up_blocks_until_reset_or_fails_fast(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    fake_github.rate_remaining = 0
    fake_github.rate_reset = int(time.time()) + 3600
    gh = _local(github_block)
    await gh.call("github.get_repo", {"repo": "octo/demo"})  # answered, quota now 0
    with pytest.raises(RateLimitedError, match="resets in"):
        await gh.call("github.get_repo", {"repo": "octo/demo"})


async def test_mutating_github_calls_are_a_second_apart(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    gh = _local(github_block)
    for n in range(3):
        await gh.call("github.create_issue", {"repo": "octo/demo", "title": f"t{n}"})
    times = [r.at for r in fake_github.requests if r.method == "POST"]
    assert len(times) == 3
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


async def test_the_next_mutation_waits_a_second_after_a_slow_answer(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    """The spacing runs from a mutation's answer, not its start: one answered after 1.5 s
    holds the next back for 1 s more, so GitHub never sees two arrive less than 1 s apart
    however long a request spends on the way (a loaded worker, a slow network)."""
    gh = _local(github_block)
    fake_github.inject(
        422, body={"message": "Validation Failed", "documentation_url": "x"},
        path_prefix="/repos/octo/demo/issues", delay=timedelta(seconds=1.5),
    )  # fmt: skip
    first = asyncio.create_task(
        gh.call("github.create_issue", {"repo": "octo/demo", "title": "slow"})
    )
    await asyncio.sleep(0.2)
    await gh.call("github.create_issue", {"repo": "octo/demo", "title": "next"})
    with pytest.raises(FleetwrightError):
        await first
    times = [r.at for r in fake_github.requests if r.method == "POST"]
    assert len(times) == 2
    assert times[1] - times[0] >= 2.5, times


async def test_mutation_spacing_is_shared_through_redis(
    fake_github: FakeGitHub, github_block: GitHubCredentials, redis_url: str
) -> None:
    one = Integrations.with_credentials(
        github_block, prefect_rate_limits=False, redis_url=redis_url
    )
    two = Integrations.with_credentials(
        github_block, prefect_rate_limits=False, redis_url=redis_url
    )
    await asyncio.gather(
        *(gh.call("github.create_issue", {"repo": "octo/demo", "title": f"t{n}"})
          for n, gh in enumerate([one, two, one]))
    )  # fmt: skip
    times = sorted(r.at for r in fake_github.requests if r.method == "POST")
    assert len(times) == 3
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


async def test_openai_429_retry_after_waits_then_succeeds(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials
) -> None:
    fake_openai.inject(
        429,
        body=_error("Rate limit reached", "rate_limit_exceeded"),
        headers={"retry-after": "1"},
    )  # fmt: skip
    fake_openai.answer("fine")
    started = time.monotonic()
    result = await _local(openai_block).call("openai.respond", {"prompt": "hi"})
    assert result["text"] == "fine"
    assert time.monotonic() - started >= 1.0
    assert len(fake_openai.requests) == 2


async def test_openai_429_without_end_is_rate_limited_error(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials
) -> None:
    fake_openai.inject(
        429,
        body=_error("quota", "insufficient_quota"),
        times=5,
    )  # fmt: skip
    with pytest.raises(RateLimitedError, match="rate limited") as exc:
        await _local(openai_block).call("openai.respond", {"prompt": "hi"})
    assert exc.value.retryable


@pytest.mark.prefect
async def test_prefect_rate_limit_paces_an_account(
    prefect_api: str, fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    from prefect.client.orchestration import get_client

    from fleetwright.integrations.ratelimit import delete_rate_limit, ensure_rate_limit

    name = await ensure_rate_limit("github", github_block.account, burst=1, per_second=2.0)
    assert name == rate_limit_name("github", github_block.account)
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 1 and limit.slot_decay_per_second == 2.0
    gh = Integrations.with_credentials(github_block, redis_url="")
    started = time.monotonic()
    for _ in range(4):
        await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert time.monotonic() - started >= 1.2  # 1 slot, refilled at 2/s
    await delete_rate_limit("github", github_block.account)


@pytest.mark.prefect
async def test_missing_prefect_rate_limit_is_a_clear_error(
    prefect_api: str, github_block: GitHubCredentials
) -> None:
    gh = Integrations.with_credentials(
        github_block.model_copy(update={"account": f"nolimit-{uuid.uuid4().hex[:6]}"}),
        redis_url="",
        require_rate_limit=True,
    )
    with pytest.raises(RateLimitedError, match="missing on the Prefect server"):
        await gh.call("github.get_repo", {"repo": "octo/demo"})

"""Fixtures for the integrations tests: loopback fake GitHub/OpenAI and credentials blocks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.integrations.breaker import reset_breakers
from fleetwright.testing.fake_github import FakeGitHub
from fleetwright.testing.fake_openai import FakeOpenAI

REDIS_URL = os.environ.get("FLEETWRIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def github_token() -> str:
    return "ghp_" + uuid.uuid4().hex


@pytest.fixture
def openai_key() -> str:
    return "sk-test-" + uuid.uuid4().hex


@pytest.fixture
def fake_github(github_token: str) -> Iterator[FakeGitHub]:
    with FakeGitHub(repos=["octo/demo"]) as fake:
        fake.add_token(github_token)
        yield fake


@pytest.fixture
def fake_openai(openai_key: str) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=openai_key) as fake:
        yield fake


@pytest.fixture
def account() -> str:
    """A fresh account name, so breaker and limiter state never leaks between tests."""
    return f"acct-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def github_block(fake_github: FakeGitHub, github_token: str, account: str) -> GitHubCredentials:
    return GitHubCredentials(account=account, token=github_token, base_url=fake_github.url)


@pytest.fixture
def openai_block(fake_openai: FakeOpenAI, openai_key: str, account: str) -> OpenAICredentials:
    return OpenAICredentials(account=account, api_key=openai_key, base_url=fake_openai.base_url)


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL}: {exc}")
    return REDIS_URL

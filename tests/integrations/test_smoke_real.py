"""Opt-in smoke tests against the real GitHub and OpenAI APIs (GITHUB_TOKEN / OPENAI_API_KEY)."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.integrations.steps import Integrations


@pytest.mark.skipif(
    not os.environ.get("GITHUB_TOKEN"), reason="GITHUB_TOKEN is not set: real GitHub not tried"
)
async def test_real_github_get_repo() -> None:
    block = GitHubCredentials(account="smoke", token=SecretStr(os.environ["GITHUB_TOKEN"]))
    gh = Integrations.with_credentials(block, prefect_rate_limits=False, redis_url="")
    repo = os.environ.get("FLEETWRIGHT_SMOKE_REPO", "octocat/Hello-World")
    result = await gh.call("github.get_repo", {"repo": repo})
    assert result["full_name"].lower() == repo.lower()


@pytest.mark.skipif(
    not os.environ.get("OPENAI_API_KEY"), reason="OPENAI_API_KEY is not set: real OpenAI not tried"
)
async def test_real_openai_structured_output() -> None:
    block = OpenAICredentials(account="smoke", api_key=SecretStr(os.environ["OPENAI_API_KEY"]))
    ai = Integrations.with_credentials(block, prefect_rate_limits=False, redis_url="")
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    result = await ai.call("openai.respond", {"prompt": "What is 2+3?", "schema": schema})
    assert result["json"] == {"answer": 5} and result["tokens_used"] > 0

"""Prefect tasks for GitHub: thin wrappers over fleetwright.integrations, taking the block."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.integrations.steps import Integrations
from fleetwright.tasks.retries import retry_if_retryable

__all__ = [
    "add_github_labels",
    "close_github_issue",
    "comment_on_github_issue",
    "create_github_issue",
    "dispatch_github_workflow",
    "get_github_repo",
    "put_github_file",
    "retry_if_retryable",
    "search_github_issues",
]


_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": retry_if_retryable,
    "cache_policy": NO_CACHE,
}


async def _call(credentials: GitHubCredentials, op: str, **args: Any) -> dict[str, Any]:
    return await Integrations.with_credentials(credentials).call(f"github.{op}", args)


@task(name="github-create-issue", **_OPTIONS)
async def create_github_issue(
    credentials: GitHubCredentials,
    repo: str,
    title: str,
    body: str | None = None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Open an issue in `repo` (owner/name)."""
    return await _call(
        credentials, "create_issue", repo=repo, title=title, body=body, labels=labels
    )


@task(name="github-comment", **_OPTIONS)
async def comment_on_github_issue(
    credentials: GitHubCredentials, repo: str, number: int, body: str
) -> dict[str, Any]:
    """Comment on issue or pull request `number`."""
    return await _call(credentials, "comment", repo=repo, number=number, body=body)


@task(name="github-add-labels", **_OPTIONS)
async def add_github_labels(
    credentials: GitHubCredentials, repo: str, number: int, labels: list[str]
) -> dict[str, Any]:
    """Add `labels` to issue `number`."""
    return await _call(credentials, "add_labels", repo=repo, number=number, labels=labels)


@task(name="github-close-issue", **_OPTIONS)
async def close_github_issue(
    credentials: GitHubCredentials, repo: str, number: int, reason: str = "completed"
) -> dict[str, Any]:
    """Close issue `number`."""
    return await _call(credentials, "close_issue", repo=repo, number=number, reason=reason)


@task(name="github-put-file", **_OPTIONS)
async def put_github_file(
    credentials: GitHubCredentials,
    repo: str,
    path: str,
    content: str,
    message: str,
    branch: str | None = None,
) -> dict[str, Any]:
    """Create or update the file at `path`."""
    return await _call(
        credentials, "put_file", repo=repo, path=path, content=content, message=message,
        branch=branch,
    )  # fmt: skip


@task(name="github-dispatch-workflow", **_OPTIONS)
async def dispatch_github_workflow(
    credentials: GitHubCredentials,
    repo: str,
    workflow: str,
    ref: str = "main",
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trigger `workflow` (file name or id) on `ref`."""
    return await _call(
        credentials, "dispatch_workflow", repo=repo, workflow=workflow, ref=ref, inputs=inputs
    )


@task(name="github-search-issues", **_OPTIONS)
async def search_github_issues(
    credentials: GitHubCredentials, query: str, limit: int = 30
) -> dict[str, Any]:
    """Search issues and pull requests."""
    return await _call(credentials, "search_issues", query=query, limit=limit)


@task(name="github-get-repo", **_OPTIONS)
async def get_github_repo(credentials: GitHubCredentials, repo: str) -> dict[str, Any]:
    """Repository facts."""
    return await _call(credentials, "get_repo", repo=repo)

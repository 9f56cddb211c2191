"""GitHub operations Fleetwright steps use, over a githubkit client, with errors mapped to
Fleetwright's hierarchy (5xx/timeouts → ServiceUnavailableError, 403/429 → RateLimitedError)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import httpx
from githubkit import GitHub
from githubkit.exception import (
    AuthCredentialError,
    AuthExpiredError,
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.retry import RetryOption
from githubkit.utils import UNSET

from fleetwright.errors import (
    FleetwrightError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
)

__all__ = [
    "RateLimitRetry",
    "add_labels",
    "close_issue",
    "comment",
    "create_issue",
    "dispatch_workflow",
    "get_repo",
    "github_error",
    "put_file",
    "search_issues",
    "split_repo",
]


def split_repo(repo: str) -> tuple[str, str]:
    """`owner/name` → (owner, name), with a clear error otherwise."""
    owner, _, name = (repo or "").strip().partition("/")
    if not owner or not name or "/" in name:
        raise ValidationError(f"repo {repo!r} is not 'owner/name'; write e.g. 'octo-org/website'")
    return owner, name


class RateLimitRetry:
    """githubkit retry decision: wait out 403/429 rate limits up to `max_wait`, `tries` times."""

    def __init__(self, *, tries: int = 3, max_wait: timedelta = timedelta(seconds=60)) -> None:
        self.tries, self.max_wait = tries, max_wait

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if (
            isinstance(exc, RateLimitExceeded)
            and retry_count < self.tries
            and exc.retry_after <= self.max_wait
        ):
            return RetryOption(True, max(exc.retry_after, timedelta(milliseconds=100)))
        return RetryOption(False)


def _reason(exc: RequestFailed) -> str:
    try:
        data = exc.response.raw_response.json()
    except Exception:
        return exc.response.raw_response.reason_phrase or ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = ", ".join(
            str(e.get("message") or f"{e.get('field')} {e.get('code')}")
            for e in errors
            if isinstance(e, dict)
        )
        message = f"{message} ({details})"
    return message


def github_error(
    exc: BaseException, *, account: str, what: str, scrub: Callable[[str], str]
) -> FleetwrightError:
    """The Fleetwright error for a githubkit/httpx failure of `what` as `account`."""
    where = f"GitHub {what} as account {account!r}"
    if isinstance(exc, FleetwrightError):
        return exc
    if isinstance(exc, RateLimitExceeded):
        wait = int(exc.retry_after.total_seconds())
        return RateLimitedError(f"{where} hit GitHub's rate limit; retry in about {wait} s")
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        reason = scrub(_reason(exc))
        if status >= 500:
            return ServiceUnavailableError(f"{where} failed: GitHub answered {status} {reason}")
        if status == 401:
            return ServiceError(
                f"{where} failed: GitHub rejected the credentials (401 {reason}); "
                "update the token or log in again with `fleetwright service login github`"
            )
        if status == 404:
            return ServiceError(
                f"{where} failed: not found (404); check the name and that the account can see it"
            )
        return ServiceError(f"{where} failed: GitHub answered {status} {reason}")
    if isinstance(exc, RequestTimeout):
        return ServiceUnavailableError(f"{where} timed out")
    if isinstance(exc, RequestError):
        inner = exc.exc
        if isinstance(inner, FleetwrightError | GitHubException):
            return github_error(inner, account=account, what=what, scrub=scrub)
        return ServiceUnavailableError(f"{where} could not reach GitHub ({type(inner).__name__})")
    if isinstance(exc, AuthExpiredError | AuthCredentialError):
        return ServiceError(
            f"{where} failed: the credentials are expired or incomplete; "
            "log in again with `fleetwright service login github`"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ServiceUnavailableError(f"{where} timed out")
    if isinstance(exc, httpx.TransportError | OSError):
        return ServiceUnavailableError(f"{where} could not reach GitHub ({type(exc).__name__})")
    return ServiceError(f"{where} failed: {type(exc).__name__}: {scrub(str(exc))}")


def _issue(data: Any) -> dict[str, Any]:
    return {
        "number": data.number,
        "url": data.html_url,
        "state": data.state,
        "title": data.title,
        "labels": [label if isinstance(label, str) else label.name for label in data.labels],
    }


async def create_issue(
    gh: GitHub[Any],
    repo: str,
    *,
    title: str,
    body: str | None = None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Open an issue; returns number, url, state, title, labels."""
    owner, name = split_repo(repo)
    if not title:
        raise ValidationError("github.create_issue needs a non-empty title")
    extra: dict[str, Any] = {"labels": labels} if labels else {}
    resp = await gh.rest.issues.async_create(owner, name, title=title, body=body, **extra)
    return _issue(resp.parsed_data)


async def comment(gh: GitHub[Any], repo: str, *, number: int, body: str) -> dict[str, Any]:
    """Comment on an issue or pull request; returns id and url."""
    owner, name = split_repo(repo)
    resp = await gh.rest.issues.async_create_comment(owner, name, int(number), body=body)
    return {"id": resp.parsed_data.id, "url": resp.parsed_data.html_url, "number": int(number)}


async def add_labels(
    gh: GitHub[Any], repo: str, *, number: int, labels: list[str]
) -> dict[str, Any]:
    """Add labels to an issue; returns the issue's labels afterwards."""
    owner, name = split_repo(repo)
    if not labels:
        raise ValidationError("github.add_labels needs at least one label")
    resp = await gh.rest.issues.async_add_labels(owner, name, int(number), labels=list(labels))
    added: list[Any] = list(cast(Any, resp.parsed_data))
    return {"number": int(number), "labels": [label.name for label in added]}


async def close_issue(
    gh: GitHub[Any], repo: str, *, number: int, reason: str = "completed"
) -> dict[str, Any]:
    """Close an issue (reason `completed` or `not_planned`)."""
    owner, name = split_repo(repo)
    if reason not in ("completed", "not_planned"):
        raise ValidationError(f"close reason {reason!r} is not 'completed' or 'not_planned'")
    resp = await gh.rest.issues.async_update(
        owner, name, int(number), data=cast(Any, {"state": "closed", "state_reason": reason})
    )
    return _issue(resp.parsed_data)


async def put_file(
    gh: GitHub[Any],
    repo: str,
    *,
    path: str,
    content: str,
    message: str,
    branch: str | None = None,
) -> dict[str, Any]:
    """Create or update a file (fetches the current sha to update); returns commit and url."""
    owner, name = split_repo(repo)
    sha: str | None = None
    extra: dict[str, Any] = {"branch": branch} if branch else {}
    try:
        current = await gh.rest.repos.async_get_content(owner, name, path, ref=branch or UNSET)
        sha = getattr(current.parsed_data, "sha", None)
    except RequestFailed as exc:
        if exc.response.status_code != 404:
            raise
    if sha:
        extra["sha"] = sha
    resp = await gh.rest.repos.async_create_or_update_file_contents(
        owner,
        name,
        path,
        message=message,
        content=base64.b64encode(content.encode()).decode(),
        **extra,
    )
    data = resp.parsed_data
    return {
        "path": path,
        "created": sha is None,
        "sha": data.content.sha if data.content else None,
        "commit": data.commit.sha,
        "url": data.content.html_url if data.content else None,
    }


async def dispatch_workflow(
    gh: GitHub[Any],
    repo: str,
    *,
    workflow: str,
    ref: str = "main",
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trigger a workflow_dispatch; returns the run id and url when GitHub reports them."""
    owner, name = split_repo(repo)
    resp = await gh.rest.actions.async_create_workflow_dispatch(
        owner,
        name,
        workflow,
        ref=ref,
        inputs={k: str(v) for k, v in (inputs or {}).items()},
    )
    if resp.status_code == 204 or not resp.raw_response.content:
        return {"dispatched": True, "run_id": None, "url": None}
    data = resp.parsed_data
    return {"dispatched": True, "run_id": data.workflow_run_id, "url": data.html_url}


async def search_issues(gh: GitHub[Any], *, query: str, limit: int = 30) -> dict[str, Any]:
    """Search issues and pull requests (GitHub search syntax); returns count and items."""
    if not query.strip():
        raise ValidationError("github.search_issues needs a query, e.g. 'repo:o/r is:open bug'")
    resp = await gh.rest.search.async_issues_and_pull_requests(
        q=query, per_page=max(1, min(100, limit))
    )
    data = resp.parsed_data
    return {
        "total": data.total_count,
        "items": [
            {
                "number": item.number,
                "title": item.title,
                "state": item.state,
                "url": item.html_url,
                "is_pull_request": bool(item.pull_request),
            }
            for item in data.items[:limit]
        ],
    }


async def get_repo(gh: GitHub[Any], repo: str) -> dict[str, Any]:
    """Repository facts: name, url, default branch, visibility, open issues, stars."""
    owner, name = split_repo(repo)
    data = (await gh.rest.repos.async_get(owner, name)).parsed_data
    return {
        "full_name": data.full_name,
        "url": data.html_url,
        "default_branch": data.default_branch,
        "private": data.private,
        "open_issues": data.open_issues_count,
        "stars": data.stargazers_count,
        "description": data.description,
    }

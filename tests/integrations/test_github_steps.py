"""GitHub steps through Integrations.call against the loopback fake (personal token auth)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.errors import CommandSpecError, ServiceError, ValidationError
from fleetwright.integrations.steps import STEP_KINDS, Integrations
from fleetwright.testing.fake_github import FakeGitHub


def _integrations(*blocks: object) -> Integrations:
    return Integrations.with_credentials(*blocks, prefect_rate_limits=False, redis_url="")  # type: ignore[arg-type]


async def test_every_github_step(fake_github: FakeGitHub, github_block: GitHubCredentials) -> None:
    gh = _integrations(github_block)
    issue = await gh.call(
        "github.create_issue",
        {"account": github_block.account, "repo": "octo/demo", "title": "Price changed on /p/1",
         "body": "was 10, now 12", "labels": ["price"]},
    )  # fmt: skip
    assert issue["number"] == 1 and issue["labels"] == ["price"]
    assert issue["url"].endswith("/octo/demo/issues/1")
    assert fake_github.issue("octo/demo", 1)["body"] == "was 10, now 12"

    comment = await gh.call("github.comment", {"repo": "octo/demo", "number": 1, "body": "seen"})
    assert comment["number"] == 1 and "issuecomment" in comment["url"]
    labels = await gh.call("github.add_labels", {"repo": "octo/demo", "number": 1, "labels": ["x"]})
    assert labels["labels"] == ["price", "x"]
    closed = await gh.call("github.close_issue", {"repo": "octo/demo", "number": 1})
    assert closed["state"] == "closed"
    assert fake_github.issue("octo/demo", 1)["state_reason"] == "completed"

    first = await gh.call(
        "github.put_file",
        {"repo": "octo/demo", "path": "reports/p1.md", "content": "v1", "message": "add"},
    )
    second = await gh.call(
        "github.put_file",
        {"repo": "octo/demo", "path": "reports/p1.md", "content": "v2", "message": "update"},
    )
    assert first["created"] is True and second["created"] is False
    assert fake_github.file("octo/demo", "reports/p1.md") == b"v2"

    run = await gh.call(
        "github.dispatch_workflow",
        {"repo": "octo/demo", "workflow": "recheck.yml", "ref": "main", "inputs": {"n": 3}},
    )
    assert run["dispatched"] is True and run["run_id"]
    assert fake_github.dispatches("octo/demo")[0]["inputs"] == {"n": "3"}

    found = await gh.call("github.search_issues", {"query": "repo:octo/demo price"})
    assert found["total"] == 1 and found["items"][0]["number"] == 1
    repo = await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert repo["full_name"] == "octo/demo" and repo["default_branch"] == "main"
    assert set(STEP_KINDS) >= {"github.get_repo", "openai.respond"}


@pytest.mark.parametrize(
    ("kind", "args", "error", "text"),
    [
        ("github.delete_repo", {"repo": "octo/demo"}, CommandSpecError, "unknown integration step"),
        ("github.get_repo", {"repo": "octo/demo", "colour": 1}, CommandSpecError, "colour"),
        ("github.comment", {"repo": "octo/demo", "body": "x"}, CommandSpecError, "number"),
        ("github.get_repo", {"repo": "no-slash"}, ValidationError, "owner/name"),
        ("github.create_issue", {"repo": "octo/demo", "title": ""}, ValidationError, "title"),
        (
            "github.close_issue",
            {"repo": "octo/demo", "number": 1, "reason": "meh"},
            ValidationError,
            "not_planned",
        ),
    ],
)  # fmt: skip
async def test_bad_step_input_is_one_clear_error(
    github_block: GitHubCredentials, kind: str, args: dict[str, object], error: type, text: str
) -> None:
    with pytest.raises(error, match=text):
        await _integrations(github_block).call(kind, args)


async def test_not_found_and_bad_credentials(
    fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    with pytest.raises(ServiceError, match="not found \\(404\\)") as exc:
        await _integrations(github_block).call("github.get_repo", {"repo": "octo/missing"})
    assert not exc.value.retryable
    wrong = github_block.model_copy(update={"token": SecretStr("ghp_wrong_wrong_wrong")})
    with pytest.raises(ServiceError, match="rejected the credentials") as exc:
        await _integrations(wrong).call("github.get_repo", {"repo": "octo/demo"})
    assert "ghp_wrong_wrong_wrong" not in str(exc.value)


async def test_unknown_account_is_refused(github_block: GitHubCredentials) -> None:
    with pytest.raises(ValidationError, match="no github credentials"):
        await _integrations(github_block).call(
            "github.get_repo", {"account": "someone-else", "repo": "octo/demo"}
        )

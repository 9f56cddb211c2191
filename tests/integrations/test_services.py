"""Service accounts: block + catalogue row saved together, rate limit created, CLI commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.cli.service import app as service_app
from fleetwright.errors import (
    AlreadyExistsError,
    CatalogueUnavailableError,
    NotFoundError,
    ValidationError,
)
from fleetwright.integrations.ratelimit import rate_limit_name
from fleetwright.integrations.services import (
    add_service,
    list_services,
    load_credentials,
    remove_service,
    service_block_name,
)
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub, OAuthApp

pytestmark = pytest.mark.prefect


async def _block_exists(kind: type[GitHubCredentials], name: str) -> bool:
    try:
        await kind.aload(name)
    except ValueError:
        return False
    return True


async def test_add_service_saves_block_row_and_rate_limit(
    prefect_api: str, home: Path, github_block: GitHubCredentials, account: str
) -> None:
    info = await add_service("github", account, github_block, rate_limit_per_second=3.0)
    assert info.block_name == service_block_name("github", account)
    assert [(s.kind, s.account) for s in list_services()] == [("github", account)]
    loaded = await load_credentials("github", account)
    assert isinstance(loaded, GitHubCredentials)
    assert loaded.token is not None and github_block.token is not None
    assert loaded.token.get_secret_value() == github_block.token.get_secret_value()
    assert (await load_credentials("github", None)).account == account  # the only one
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(
            rate_limit_name("github", account)
        )
    assert limit.slot_decay_per_second == 3.0

    # the default resolver reads the catalogue and the block; the limit is taken
    result = await Integrations(redis_url="").call(
        "github.get_repo", {"account": account, "repo": "octo/demo"}
    )
    assert result["full_name"] == "octo/demo"

    with pytest.raises(AlreadyExistsError, match="already exists"):
        await add_service("github", account, github_block)
    await remove_service("github", account)
    assert list_services() == []
    assert not await _block_exists(GitHubCredentials, info.block_name)
    with pytest.raises(NotFoundError, match="no github account"):
        await load_credentials("github", account)


async def test_failed_row_removes_the_block(
    prefect_api: str, home: Path, github_block: GitHubCredentials, account: str
) -> None:
    list_services()  # creates and migrates the catalogue
    db = home / "catalogue.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON services "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
    with pytest.raises(CatalogueUnavailableError, match="nothing was saved"):
        await add_service("github", account, github_block)
    assert not await _block_exists(GitHubCredentials, service_block_name("github", account))
    assert list_services() == []


async def test_bad_service_input(
    prefect_api: str, home: Path, github_block: GitHubCredentials, openai_block: OpenAICredentials
) -> None:
    with pytest.raises(ValidationError, match="unknown service kind"):
        await add_service("gitlab", "x", github_block)
    with pytest.raises(ValidationError, match="take GitHubCredentials"):
        await add_service("github", openai_block.account, openai_block)
    with pytest.raises(ValidationError, match="credentials say account"):
        await add_service("github", "someone-else", github_block)
    with pytest.raises(ValidationError, match="path separator"):
        await add_service("github", "a/b", github_block.model_copy(update={"account": "a/b"}))
    with pytest.raises(ValidationError, match="which github account"):
        await load_credentials("github", None)


def test_cli_add_list_login_and_errors(
    prefect_api: str, home: Path, fake_github: FakeGitHub, account: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    runner = CliRunner()
    monkeypatch.setenv("FW_TEST_TOKEN", "ghp_cli_token_0123456789")
    added = runner.invoke(
        service_app,
        ["add", "github", "--account", account, "--token-env", "FW_TEST_TOKEN",
         "--base-url", fake_github.url],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "ghp_cli_token" not in added.output
    again = runner.invoke(
        service_app, ["add", "github", "--account", account, "--token-env", "FW_TEST_TOKEN"]
    )
    assert again.exit_code == 2
    assert again.output.strip().startswith("error:") and "already exists" in again.output
    assert len(again.output.strip().splitlines()) == 1
    unset = runner.invoke(
        service_app, ["add", "openai", "--account", "ai", "--api-key-env", "FW_TEST_UNSET"]
    )
    assert unset.exit_code == 2 and "FW_TEST_UNSET is empty or unset" in unset.output

    oauth_account = f"{account}-oauth"
    app = fake_github.add_oauth_app(OAuthApp(client_id=f"Iv1.{account}", pending_polls=0))
    assert runner.invoke(
        service_app,
        ["add", "github", "--account", oauth_account, "--client-id", app.client_id,
         "--base-url", fake_github.url],
    ).exit_code == 0  # fmt: skip
    login = runner.invoke(service_app, ["login", "github", "--account", oauth_account])
    assert login.exit_code == 0, login.output
    assert "WDJB-MJHT" in login.output and f"{fake_github.url}/login/device" in login.output
    listed = runner.invoke(service_app, ["list"])
    assert account in listed.output and oauth_account in listed.output
    import asyncio

    block = asyncio.run(load_credentials("github", oauth_account))
    assert block.access_token is not None and block.refresh_token is not None
    for name in (account, oauth_account):
        assert runner.invoke(service_app, ["remove", "github", name]).exit_code == 0

"""Secrets never reach logs, exception messages, Prefect logs or the catalogue — checked by
scanning for the secret values after calls that fail and calls that succeed."""

from __future__ import annotations

import logging
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.integrations.services import add_service, remove_service
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub, OAuthApp
from fleetwright.testing.fake_openai import FakeOpenAI

pytestmark = pytest.mark.prefect


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _scan(text: str, secrets: list[str]) -> list[str]:
    found = []
    for secret in secrets:
        pieces = [secret] + [line for line in secret.splitlines() if len(line) >= 16]
        found += [p[:12] + "…" for p in pieces if p in text]
    return found


async def test_no_secret_in_logs_errors_or_catalogue(
    prefect_api: str,
    home: Path,
    fake_github: FakeGitHub,
    fake_openai: FakeOpenAI,
    github_block: GitHubCredentials,
    openai_block: OpenAICredentials,
    account: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = _pem()
    oauth_app = fake_github.add_oauth_app(
        OAuthApp(client_id=f"Iv1.{account}", client_secret="cs_" + uuid.uuid4().hex,
                 access_ttl=timedelta(seconds=60))
    )  # fmt: skip
    access = "ghu_" + uuid.uuid4().hex
    refresh = "ghr_" + uuid.uuid4().hex
    oauth_app.refresh_tokens[refresh] = datetime.now(UTC) + timedelta(days=1)
    blocks = {
        "token": github_block,
        "app": GitHubCredentials(
            account=f"{account}-app", auth_mode="app", app_id="999", private_key=SecretStr(pem),
            installation_id=5, base_url=fake_github.url,
        ),
        "oauth": GitHubCredentials(
            account=f"{account}-oauth", auth_mode="oauth", client_id=oauth_app.client_id,
            client_secret=SecretStr(oauth_app.client_secret or ""), access_token=SecretStr(access),
            access_token_expires_at=datetime.now(UTC),
            refresh_token=SecretStr(refresh), base_url=fake_github.url,
            webhook_secret=SecretStr("whsec_" + uuid.uuid4().hex),
        ),
    }  # fmt: skip
    secrets = [
        pem, access, refresh, oauth_app.client_secret or "",
        openai_block.api_key.get_secret_value(),
    ] + [b.token.get_secret_value() for b in blocks.values() if b.token]  # fmt: skip
    for block in blocks.values():
        await add_service("github", block.account, block)
    await add_service("openai", openai_block.account, openai_block)

    errors: list[str] = []
    gh = Integrations(redis_url="")

    async def attempt(kind: str, args: dict[str, object]) -> None:
        try:
            await gh.call(kind, args)
        except Exception as exc:
            errors.append("".join(traceback.format_exception(exc)))

    # succeeding calls (the OAuth one refreshes its tokens and saves them back)
    await attempt("github.get_repo", {"account": github_block.account, "repo": "octo/demo"})
    await attempt("github.get_repo", {"account": f"{account}-oauth", "repo": "octo/demo"})
    fake_openai.answer('{"ok": true}')
    await attempt("openai.respond", {"account": openai_block.account, "prompt": "hi"})
    # failing calls: 5xx, 401 (the App is unknown to the fake), schema, bad input
    fake_github.inject(502, body={"message": "Bad Gateway"})
    await attempt("github.get_repo", {"account": github_block.account, "repo": "octo/demo"})
    await attempt("github.get_repo", {"account": f"{account}-app", "repo": "octo/demo"})
    fake_github.tokens.clear()
    await attempt(
        "github.create_issue", {"account": github_block.account, "repo": "octo/demo", "title": "x"}
    )
    fake_openai.api_key = "sk-other"
    await attempt("openai.respond", {"account": openai_block.account, "prompt": "hi"})
    fake_openai.api_key = openai_block.api_key.get_secret_value()
    fake_openai.answer("not json")
    await attempt(
        "openai.respond",
        {"account": openai_block.account, "prompt": "x", "schema": {"type": "object"}},
    )
    assert len(errors) == 5, errors

    refreshed = await GitHubCredentials.aload(f"github-{account}-oauth".lower())
    assert refreshed.access_token is not None and refreshed.refresh_token is not None
    secrets += [
        refreshed.access_token.get_secret_value(),
        refreshed.refresh_token.get_secret_value(),
    ]

    assert _scan(caplog.text, secrets) == []
    assert _scan("\n".join(errors), secrets) == []
    catalogue = b"".join(p.read_bytes() for p in home.glob("catalogue.db*"))
    assert _scan(catalogue.decode("latin-1"), secrets) == []
    for block in (*blocks.values(), openai_block):
        kind = "openai" if isinstance(block, OpenAICredentials) else "github"
        await remove_service(kind, block.account)


async def test_no_secret_in_prefect_task_logs(
    prefect_api: str, fake_github: FakeGitHub, github_block: GitHubCredentials
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from fleetwright.tasks.github import get_github_repo

    fake_github.tokens.clear()  # the token is refused: the task fails and logs why

    @flow(name="fw-secret-scan")
    async def scan_flow(credentials: GitHubCredentials) -> None:
        await get_github_repo.with_options(retries=0)(credentials, "octo/demo")

    state = await scan_flow(github_block, return_state=True)
    assert state.is_failed()
    import asyncio

    await asyncio.sleep(2)
    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    text = "\n".join(log.message for log in logs)
    assert "rejected the credentials" in text
    assert github_block.token is not None
    assert github_block.token.get_secret_value() not in text

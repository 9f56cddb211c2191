"""GitHub auth modes: App installation tokens, OAuth device flow and token refresh."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.errors import ConfigurationError, ValidationError
from fleetwright.integrations.github_login import device_login
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub, OAuthApp


def _integrations(block: GitHubCredentials) -> Integrations:
    return Integrations.with_credentials(block, prefect_rate_limits=False, redis_url="")


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_app_installation_token_fetched_and_refreshed(
    fake_github: FakeGitHub, app_key: tuple[str, str], account: str
) -> None:
    private, public = app_key
    app_id = str(uuid.uuid4().int % 1_000_000)
    fake_github.add_app(app_id, public, installation_id=77)
    # githubkit keeps a token until a minute before it expires: 62 s makes it ~1 s here.
    fake_github.installation_token_ttl = timedelta(seconds=62)
    block = GitHubCredentials(
        account=account, auth_mode="app", app_id=app_id, private_key=SecretStr(private),
        installation_id=77, base_url=fake_github.url,
    )  # fmt: skip
    gh = _integrations(block)
    assert (await gh.call("github.get_repo", {"repo": "octo/demo"}))["full_name"] == "octo/demo"
    assert (await gh.call("github.get_repo", {"repo": "octo/demo"}))["full_name"] == "octo/demo"
    assert fake_github.installation_tokens_issued == 1
    await asyncio.sleep(2.2)
    await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert fake_github.installation_tokens_issued == 2
    used = {
        r.headers["authorization"] for r in fake_github.requests if r.path == "/repos/octo/demo"
    }
    assert len(used) == 2 and all(u.startswith("token ghs_") for u in used)


async def test_app_with_wrong_key_is_refused(
    fake_github: FakeGitHub, app_key: tuple[str, str], account: str
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake_github.add_app("4242", app_key[1], installation_id=1)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    block = GitHubCredentials(
        account=account, auth_mode="app", app_id="4242", private_key=SecretStr(pem),
        installation_id=1, base_url=fake_github.url,
    )  # fmt: skip
    with pytest.raises(Exception, match="rejected the credentials") as exc:
        await _integrations(block).call("github.get_repo", {"repo": "octo/demo"})
    assert "PRIVATE KEY" not in str(exc.value)


async def test_incomplete_modes_say_what_is_missing(account: str) -> None:
    with pytest.raises(ConfigurationError, match="app_id, private_key and installation_id"):
        GitHubCredentials(account=account, auth_mode="app", app_id="1").auth_strategy()
    with pytest.raises(ConfigurationError, match="service login github"):
        GitHubCredentials(account=account, auth_mode="oauth", client_id="Iv1.x").auth_strategy()
    with pytest.raises(ValidationError, match="not an OAuth app"):
        await device_login(GitHubCredentials(account=account, token="t"), on_code=print)


@pytest.mark.prefect
async def test_device_flow_login_then_refresh_persists_tokens(
    prefect_api: str, fake_github: FakeGitHub, account: str
) -> None:
    app = fake_github.add_oauth_app(
        OAuthApp(client_id=f"Iv1.{account}", pending_polls=1, access_ttl=timedelta(seconds=60))
    )
    name = f"gh-{account}"
    block = GitHubCredentials(
        account=account, auth_mode="oauth", client_id=app.client_id, base_url=fake_github.url
    )
    await block.asave(name)
    block = await GitHubCredentials.aload(name)
    shown: list[tuple[str, str]] = []
    await device_login(block, on_code=lambda code, url: shown.append((code, url)))
    assert shown == [("WDJB-MJHT", f"{fake_github.url}/login/device")]
    polls = [r for r in fake_github.requests if r.path == "/login/oauth/access_token"]
    assert len(polls) == 2  # authorization_pending, then the tokens

    saved = await GitHubCredentials.aload(name)
    assert saved.access_token is not None and saved.refresh_token is not None
    first_access = saved.access_token.get_secret_value()
    first_refresh = saved.refresh_token.get_secret_value()

    # The access token "expires" at once (expires_in=60 minus githubkit's minute of margin):
    # the next call refreshes it with the refresh_token grant and saves both back.
    result = await _integrations(saved).call("github.get_repo", {"repo": "octo/demo"})
    assert result["full_name"] == "octo/demo"
    assert app.refreshes == 1
    again = await GitHubCredentials.aload(name)
    assert again.access_token is not None and again.refresh_token is not None
    assert again.access_token.get_secret_value() != first_access
    assert again.refresh_token.get_secret_value() != first_refresh
    grant = [r.json() for r in fake_github.requests if r.path == "/login/oauth/access_token"][-1]
    assert grant["grant_type"] == "refresh_token" and grant["refresh_token"] == first_refresh
    await GitHubCredentials.adelete(name)

"""GitHub tokens shared by the fleet through Redis: one installation-token mint per expiry for
2 hosts × 4 processes, one OAuth refresh under concurrency, encrypted values, bad entries."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.integrations.shared_tokens import (
    KEY_PREFIX,
    app_namespace,
    derive_fernet,
    oauth_key,
)
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_github import FakeGitHub, OAuthApp
from fleetwright.testing.token_fleet import run_token_fleet


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client; every shared-token key the test made is deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    before = set(client.scan_iter(f"{KEY_PREFIX}:*"))
    yield client
    for key in set(client.scan_iter(f"{KEY_PREFIX}:*")) - before:
        client.delete(key)
    client.close()


@pytest.fixture
def app_block(fake_github: FakeGitHub, app_key: tuple[str, str], account: str) -> dict[str, Any]:
    """GitHubCredentials fields of an App the fake knows (a fresh app id per test)."""
    app_id = str(uuid.uuid4().int % 10_000_000)
    fake_github.add_app(app_id, app_key[1], installation_id=77)
    return {
        "account": account, "auth_mode": "app", "app_id": app_id, "private_key": app_key[0],
        "installation_id": 77, "base_url": fake_github.url,
    }  # fmt: skip


def _block(fields: dict[str, Any]) -> GitHubCredentials:
    data = dict(fields)
    for name in ("private_key", "client_secret", "access_token", "refresh_token"):
        if data.get(name):
            data[name] = SecretStr(data[name])
    for name in ("access_token_expires_at", "refresh_token_expires_at"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    return GitHubCredentials(**data)


def _app_keys(client: redis.Redis, fields: dict[str, Any]) -> list[bytes]:
    """The App's shared token entries (not its mint locks)."""
    prefix = app_namespace(_block(fields))
    return [k for k in client.scan_iter(f"{prefix}:*") if b":mint:" not in k]


def _ok(results: list[dict[str, int]]) -> int:
    bad = [r for r in results if set(r) != {"ok"}]
    assert not bad, bad
    return sum(r["ok"] for r in results)


def _minted(fake: FakeGitHub) -> set[str]:
    return {t for t in fake.tokens if t.startswith("ghs_")}


def test_two_hosts_of_four_processes_mint_once_per_expiry(
    fake_github: FakeGitHub, app_block: dict[str, Any], redis_url: str,
    raw_redis: redis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    # githubkit keeps a token until a minute before it expires: 90 s makes it ~30 s here.
    fake_github.installation_token_ttl = timedelta(seconds=90)
    results = run_token_fleet(
        app_block, redis_url=redis_url, root=tmp_path / "a", calls=4, parallel=2
    )
    assert _ok(results) == 2 * 4 * 4
    assert fake_github.installation_tokens_issued == 1
    used = {
        r.headers["authorization"] for r in fake_github.requests if r.path == "/repos/octo/demo"
    }
    assert len(used) == 1

    # The value Redis holds is not the token, and its key names no secret.
    (token,) = _minted(fake_github)
    pem = app_block["private_key"]
    entries = _app_keys(raw_redis, app_block)
    assert len(entries) == 1, "the token was not shared through Redis"
    sealed = [raw_redis.get(k) or b"" for k in entries]
    assert all(
        token.encode() not in v and token.encode() not in k
        for k, v in zip(entries, sealed, strict=True)
    )
    assert all(b"PRIVATE KEY" not in k for k in entries)
    fernet = derive_fernet(pem, context=f"app:{app_block['app_id']}")
    assert token in {fernet.decrypt(v).decode() for v in sealed}

    # After the expiry the fleet mints exactly one new token.
    time_left = raw_redis.pttl(
        next(k for k in entries if token in fernet.decrypt(raw_redis.get(k) or b"").decode())
    )
    assert 0 < time_left <= 30_000
    time.sleep(time_left / 1000 + 0.3)
    results = run_token_fleet(
        app_block, redis_url=redis_url, root=tmp_path / "b", calls=4, parallel=2
    )
    assert _ok(results) == 2 * 4 * 4
    assert fake_github.installation_tokens_issued == 2


def test_without_redis_every_process_mints_its_own(
    fake_github: FakeGitHub, app_block: dict[str, Any], tmp_path: Path
) -> None:
    results = run_token_fleet(app_block, redis_url="", root=tmp_path, calls=3, parallel=1)
    assert _ok(results) == 2 * 4 * 3
    assert fake_github.installation_tokens_issued == 2 * 4  # per process, as before sharing


async def test_a_corrupted_or_foreign_entry_is_a_miss_logged_without_secrets(
    fake_github: FakeGitHub, app_block: dict[str, Any], redis_url: str,
    raw_redis: redis.Redis, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    block = _block(app_block)
    gh = Integrations.with_credentials(block, prefect_rate_limits=False, redis_url=redis_url)
    await gh.call("github.get_repo", {"repo": "octo/demo"})
    await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert fake_github.installation_tokens_issued == 1
    (key,) = _app_keys(raw_redis, app_block)
    ttl = raw_redis.pttl(key)

    bad_values = [
        b"not a fernet token",
        b"\xff\xfe\x00 binary",
        derive_fernet("another fleet's key", context="app:x").encrypt(b"ghs_forged"),
    ]
    caplog.set_level(logging.WARNING, logger="fleetwright.integrations.shared_tokens")
    for n, value in enumerate(bad_values, start=2):
        raw_redis.set(key, value, px=ttl)
        assert (await gh.call("github.get_repo", {"repo": "octo/demo"}))["full_name"]
        assert fake_github.installation_tokens_issued == n  # a miss: minted again, then shared
    assert "ghs_forged" not in {r.headers.get("authorization", "") for r in fake_github.requests}
    warned = [r.getMessage() for r in caplog.records if "does not decrypt" in r.getMessage()]
    assert len(warned) >= len(bad_values)  # read before and again under the mint lock
    text = caplog.text
    assert "PRIVATE KEY" not in text and not any(t in text for t in _minted(fake_github))


def _oauth_block(
    fake: FakeGitHub, account: str, *, secret: str | None = "oauth-client-secret"
) -> tuple[OAuthApp, dict[str, Any]]:
    app = fake.add_oauth_app(OAuthApp(client_id=f"Iv1.{account}", client_secret=secret))
    pair = fake.grant_oauth(app)
    now = datetime.now(UTC)
    return app, {
        "account": account, "auth_mode": "oauth", "client_id": app.client_id,
        "client_secret": secret, "base_url": fake.url,
        "access_token": pair["access_token"],
        "access_token_expires_at": (now - timedelta(seconds=5)).isoformat(),  # due
        "refresh_token": pair["refresh_token"],
        "refresh_token_expires_at": (now + timedelta(days=180)).isoformat(),
    }  # fmt: skip


def _refresh_requests(fake: FakeGitHub) -> int:
    return sum(
        1
        for r in fake.requests
        if r.path == "/login/oauth/access_token" and r.json().get("grant_type") == "refresh_token"
    )


def test_oauth_refresh_under_concurrency_happens_once_for_the_fleet(
    fake_github: FakeGitHub, account: str, redis_url: str, raw_redis: redis.Redis,
    tmp_path: Path,
) -> None:  # fmt: skip
    app, fields = _oauth_block(fake_github, account)
    results = run_token_fleet(fields, redis_url=redis_url, root=tmp_path, calls=3, parallel=2)
    assert _ok(results) == 2 * 4 * 4  # 3 calls at 2 a time: 4 per process
    assert _refresh_requests(fake_github) == 1 and app.refreshes == 1
    used = {
        r.headers["authorization"] for r in fake_github.requests if r.path == "/repos/octo/demo"
    }
    assert len(used) == 1
    key = oauth_key(_block(fields))
    assert all(s not in key for s in (fields["refresh_token"], "oauth-client-secret"))
    sealed = raw_redis.get(key) or b""
    (new_token,) = {u.split(" ", 1)[1] for u in used}
    assert sealed and new_token.encode() not in sealed


def test_oauth_without_redis_each_process_refreshes_and_all_but_one_lose(
    fake_github: FakeGitHub, account: str, tmp_path: Path
) -> None:
    """Why the lock exists: GitHub rotates refresh tokens, so concurrent refreshes of one
    pair leave one winner; without Redis that is what happens."""
    app, fields = _oauth_block(fake_github, account)
    results = run_token_fleet(fields, redis_url="", root=tmp_path, calls=1, parallel=1)
    assert _refresh_requests(fake_github) == 2 * 4
    assert app.refreshes == 1
    assert sum(r.get("ok", 0) for r in results) == 1


async def test_oauth_without_client_secret_uses_the_fleet_secret(
    fake_github: FakeGitHub, account: str, redis_url: str, raw_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    app, fields = _oauth_block(fake_github, account, secret=None)
    first = Integrations.with_credentials(
        _block(fields), prefect_rate_limits=False, redis_url=redis_url
    )
    first.token_cache_secret = None
    caplog.set_level(logging.INFO, logger="fleetwright.integrations.shared_tokens")
    await first.call("github.get_repo", {"repo": "octo/demo"})
    assert "its tokens are not shared" in caplog.text
    assert not raw_redis.exists(oauth_key(_block(fields)))

    assert app.refreshes == 1  # refreshed in this process, as without Redis

    app, fields = _oauth_block(fake_github, f"{account}-2", secret=None)
    shared = [
        Integrations.with_credentials(
            _block(fields), prefect_rate_limits=False, redis_url=redis_url
        )
        for _ in range(2)
    ]
    for gh in shared:
        gh.token_cache_secret = "fleet-wide secret"
        await gh.call("github.get_repo", {"repo": "octo/demo"})
    assert app.refreshes == 1  # the second process took the first one's pair
    assert raw_redis.exists(oauth_key(_block(fields)))
    assert "fleet-wide secret" not in caplog.text


async def test_a_failed_mint_holds_the_others_only_until_its_lock_expires(
    fake_github: FakeGitHub, app_block: dict[str, Any], redis_url: str, raw_redis: redis.Redis
) -> None:
    fake_github.inject(500, body={"message": "boom"}, path_prefix="/app/installations")
    first, second = (
        Integrations.with_credentials(
            _block(app_block), prefect_rate_limits=False, redis_url=redis_url
        )
        for _ in range(2)
    )
    with pytest.raises(Exception, match="500"):
        await first.call("github.get_repo", {"repo": "octo/demo"})
    began = time.monotonic()
    assert (await second.call("github.get_repo", {"repo": "octo/demo"}))["full_name"]
    waited = time.monotonic() - began
    assert 8.0 <= waited <= 15.0  # the failed mint's 10 s lock, then a mint of its own
    assert fake_github.installation_tokens_issued == 1

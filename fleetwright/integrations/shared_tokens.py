"""GitHub tokens minted once per expiry for the whole fleet, shared through Redis, encrypted.

App installation tokens: githubkit's App auth keeps them in its client's cache strategy.
`SharedTokenStrategy` is such a strategy: its storage wraps githubkit's `AsyncRedisCache`,
encrypts every value with Fernet under a key derived (HKDF) from the App's private key, and
lets one process in the fleet mint a missing token while the others wait for it.

OAuth tokens: GitHub rotates the refresh token on every refresh, so two processes refreshing
the same pair would knock each other out. `share_oauth_tokens` takes a Redis lock, adopts the
newest pair another process stored, and refreshes only when that one is due too; the new pair
goes to Redis (encrypted, key from the client secret or FLEETWRIGHT_TOKEN_CACHE_SECRET).

Redis alone reveals nothing: its keys are digests of public ids and its values need secret
material only hosts that load the credentials block have. Without Redis nothing is shared:
each process keeps its tokens in githubkit's in-memory cache, as before.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from githubkit.cache import DEFAULT_CACHE_STRATEGY
from githubkit.cache.base import AsyncBaseCache, BaseCache, BaseCacheStrategy
from githubkit.cache.redis import AsyncRedisCache
from redis.exceptions import RedisError

from fleetwright.integrations.ratelimit import redis_client

if TYPE_CHECKING:
    from githubkit.auth import OAuthTokenAuthStrategy
    from hishel import AsyncBaseStorage, SyncBaseStorage

    from fleetwright.blocks.github import GitHubCredentials

__all__ = [
    "KEY_PREFIX",
    "SharedTokenCache",
    "SharedTokenStrategy",
    "app_namespace",
    "derive_fernet",
    "oauth_key",
    "share_oauth_tokens",
    "shared_strategy_for",
]

logger = logging.getLogger(__name__)

KEY_PREFIX = "fleetwright:tokens"
_SALT = b"fleetwright shared github tokens v1"
_LOCAL = DEFAULT_CACHE_STRATEGY  # githubkit's per-process memory cache: the fallback
_unshared: set[str] = set()  # OAuth accounts already logged as not shared


def derive_fernet(secret: str, *, context: str) -> Fernet:
    """A Fernet key derived (HKDF-SHA256) from `secret` for one `context` (app, oauth client)."""
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=_SALT, info=context.encode())
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret.encode())))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class SharedTokenCache(AsyncBaseCache):
    """githubkit cache storage over Redis: values encrypted; a missing installation token is
    minted by one process while the others wait for it (up to `wait`).

    A value that does not decrypt (another key, a corrupted entry) is a miss; a Redis error
    falls back to the process's memory cache. Neither is ever logged with a value."""

    def __init__(
        self,
        client: Any,
        *,
        namespace: str,
        fernet: Fernet,
        lock_ttl: timedelta = timedelta(seconds=10),
        wait: timedelta = timedelta(seconds=15),
    ) -> None:
        self._client, self._fernet = client, fernet
        self._inner = AsyncRedisCache(client, prefix=namespace)
        self._namespace, self._lock_ttl, self._wait = namespace, lock_ttl, wait
        self._locks: dict[str, Any] = {}

    @staticmethod
    def _shared_mint(key: str) -> bool:
        return ":installation:" in key  # githubkit's INSTALLATION_CACHE_KEY; JWTs stay local

    def _label(self, key: str) -> str:
        return f"{self._namespace}:{_digest(key)[:12]}"

    async def _read(self, key: str) -> str | None:
        try:
            raw = await self._inner.aget(key)
        except RedisError as exc:
            logger.warning("Redis unreachable for shared GitHub tokens (%s)", type(exc).__name__)
            return await (await _LOCAL.get_async_cache_storage()).aget(key)
        except UnicodeDecodeError:
            raw = "\0"  # not even text: a corrupted entry
        if raw is None:
            return None
        try:
            return self._fernet.decrypt(raw.encode()).decode()
        except (InvalidToken, ValueError):
            logger.warning(
                "Shared GitHub token entry %s does not decrypt (another key or a corrupted "
                "entry); treated as a miss",
                self._label(key),
            )
            return None

    async def aget(self, key: str) -> str | None:
        if not self._shared_mint(key):
            return await (await _LOCAL.get_async_cache_storage()).aget(key)
        value = await self._read(key)
        if value is not None:
            return value
        deadline = time.monotonic() + self._wait.total_seconds()
        while True:
            lock = self._client.lock(
                f"{self._namespace}:mint:{_digest(key)}",
                timeout=self._lock_ttl.total_seconds(),
            )
            try:
                taken = await lock.acquire(blocking=False)
            except RedisError:
                return None
            if taken:
                value = await self._read(key)  # minted between our read and the lock
                if value is not None:
                    await _release(lock)
                    return value
                self._locks[key] = lock  # released by aset once the new token is stored
                return None
            await asyncio.sleep(0.05)
            value = await self._read(key)
            if value is not None or time.monotonic() > deadline:
                return value  # past the wait: mint ourselves rather than fail

    async def aset(self, key: str, value: str, ex: timedelta) -> None:
        if not self._shared_mint(key):
            await (await _LOCAL.get_async_cache_storage()).aset(key, value, ex)
            return
        try:
            if ex.total_seconds() >= 1:
                sealed = self._fernet.encrypt(value.encode()).decode()
                await self._inner.aset(key, sealed, ex)
        except RedisError as exc:
            logger.warning("Redis unreachable for shared GitHub tokens (%s)", type(exc).__name__)
            await (await _LOCAL.get_async_cache_storage()).aset(key, value, ex)
        finally:
            lock = self._locks.pop(key, None)
            if lock is not None:
                await _release(lock)


async def _release(lock: Any) -> None:
    try:
        await lock.release()
    except Exception:  # expired meanwhile, or Redis gone: it frees itself
        logger.debug("Shared GitHub token mint lock was already free")


class SharedTokenStrategy(BaseCacheStrategy):
    """githubkit cache strategy: tokens in Redis (async clients), everything else in memory.

    HTTP response caching (hishel) stays in process memory, never in Redis unencrypted."""

    def __init__(self, client: Any, *, namespace: str, fernet: Fernet) -> None:
        self._storage = SharedTokenCache(client, namespace=namespace, fernet=fernet)

    def get_cache_storage(self) -> BaseCache:
        return _LOCAL.get_cache_storage()

    async def get_async_cache_storage(self) -> AsyncBaseCache:
        return self._storage

    def get_hishel_storage(self) -> SyncBaseStorage:
        return _LOCAL.get_hishel_storage()

    async def get_async_hishel_storage(self) -> AsyncBaseStorage:
        return await _LOCAL.get_async_hishel_storage()


def app_namespace(block: GitHubCredentials) -> str:
    """The Redis key prefix of an App's shared installation tokens (no secret in it)."""
    return f"{KEY_PREFIX}:app:{_digest(block.base_url, block.app_id or '')}"


def shared_strategy_for(
    block: GitHubCredentials, redis_url: str | None
) -> BaseCacheStrategy | None:
    """The shared cache strategy for an App-mode block, or None (no Redis, or not an App)."""
    if not redis_url or block.auth_mode != "app" or not block.app_id or not block.private_key:
        return None
    namespace = app_namespace(block)
    fernet = derive_fernet(block.private_key.get_secret_value(), context=f"app:{block.app_id}")
    return SharedTokenStrategy(redis_client(redis_url), namespace=namespace, fernet=fernet)


# OAuth ------------------------------------------------------------------------------------


def oauth_key(block: GitHubCredentials) -> str:
    """The Redis key of an OAuth account's shared token pair (no secret in it)."""
    return f"{KEY_PREFIX}:oauth:{_digest(block.base_url, block.client_id or '', block.account)}"


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _stamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _due(strategy: OAuthTokenAuthStrategy, margin: timedelta) -> bool:
    if not strategy.refresh_token:
        return False
    if not strategy.token or strategy.expire_time is None:
        return strategy.token is None
    expires = strategy.expire_time
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    return datetime.now(UTC) >= expires - margin


async def _read_pair(client: Any, key: str, fernet: Fernet) -> dict[str, Any] | None:
    raw = await client.get(key)
    if raw is None:
        return None
    try:
        data = json.loads(fernet.decrypt(raw))
        return data if isinstance(data, dict) and data.get("token") else None
    except (InvalidToken, ValueError, TypeError):
        logger.warning(
            "Shared OAuth token entry %s does not decrypt (another key or a corrupted entry); "
            "treated as a miss",
            key,
        )
        return None


def _adopt(strategy: OAuthTokenAuthStrategy, pair: dict[str, Any] | None) -> bool:
    """Take the shared pair when it is newer than the strategy's; True if taken."""
    if pair is None:
        return False
    theirs = _when(pair.get("expire_time"))
    ours = strategy.expire_time
    if ours is not None and ours.tzinfo is None:
        ours = ours.replace(tzinfo=UTC)
    if pair["token"] == strategy.token or (
        ours is not None and theirs is not None and theirs <= ours
    ):
        return False
    strategy.token = pair["token"]
    strategy.expire_time = theirs
    strategy.refresh_token = pair.get("refresh_token")
    strategy.refresh_token_expire_time = _when(pair.get("refresh_token_expire_time"))
    return True


async def share_oauth_tokens(
    block: GitHubCredentials,
    redis_url: str | None,
    *,
    fleet_secret: str | None = None,
    margin: timedelta = timedelta(minutes=1),
    lock_wait: timedelta = timedelta(seconds=30),
) -> bool:
    """Bring an OAuth block's tokens up to date with the fleet; refresh once if due.

    Returns True when this process refreshed (the caller persists the block as before).
    No-op without Redis, outside OAuth mode, or with no secret to derive the key from."""
    if not redis_url or block.auth_mode != "oauth":
        return False
    secret = block.client_secret.get_secret_value() if block.client_secret else fleet_secret
    if not secret:
        if block.account in _unshared:
            return False
        _unshared.add(block.account)
        logger.info(
            "OAuth account %s has no client secret and FLEETWRIGHT_TOKEN_CACHE_SECRET is unset: "
            "its tokens are not shared",
            block.account,
        )
        return False
    try:
        return await _share(block, redis_url, secret, margin=margin, lock_wait=lock_wait)
    except RedisError as exc:
        logger.warning(
            "Redis unreachable for shared OAuth tokens of %s (%s); refreshing in this process",
            block.account,
            type(exc).__name__,
        )
        return False


async def _share(
    block: GitHubCredentials,
    redis_url: str,
    secret: str,
    *,
    margin: timedelta,
    lock_wait: timedelta,
) -> bool:
    from githubkit import GitHub

    strategy = block.auth_strategy()
    fernet = derive_fernet(secret, context=f"oauth:{block.client_id}")
    client, key = redis_client(redis_url), oauth_key(block)
    if _adopt(strategy, await _read_pair(client, key, fernet)):
        block.store_oauth_tokens(strategy)  # fields follow; nothing new to save
    if not _due(strategy, margin):
        return False
    lock = client.lock(f"{key}:refresh", timeout=lock_wait.total_seconds())
    if not await lock.acquire(blocking=True, blocking_timeout=lock_wait.total_seconds()):
        return False  # githubkit refreshes inline if it still must
    try:
        if _adopt(strategy, await _read_pair(client, key, fernet)):
            block.store_oauth_tokens(strategy)
        if not _due(strategy, margin):
            return False
        await strategy.async_refresh(GitHub(strategy, base_url=block.base_url))
        pair = {
            "token": strategy.token,
            "expire_time": _stamp(strategy.expire_time),
            "refresh_token": strategy.refresh_token,
            "refresh_token_expire_time": _stamp(strategy.refresh_token_expire_time),
        }
        ttl = timedelta(days=1)
        if strategy.refresh_token_expire_time is not None:
            until = strategy.refresh_token_expire_time
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            ttl = max(until - datetime.now(UTC), timedelta(seconds=1))
        await client.set(
            key, fernet.encrypt(json.dumps(pair).encode()), px=ttl // timedelta(milliseconds=1)
        )
        logger.info("Refreshed the OAuth tokens of %s for the fleet", block.account)
        return True
    finally:
        await _release(lock)

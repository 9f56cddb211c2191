"""Rate limits: a Prefect global concurrency limit with slot decay per service account, and
GitHub's own signals (x-ratelimit-remaining/reset; ≥ 1 s between mutating calls per token)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import httpx
from githubkit.throttling import BaseThrottler

from fleetwright.errors import PrefectUnavailableError, RateLimitedError
from fleetwright.observability import record as observe

__all__ = [
    "DEFAULT_LIMITS",
    "GitHubThrottler",
    "delete_rate_limit",
    "ensure_rate_limit",
    "rate_limit_name",
    "redis_client",
    "take_rate_limit",
]

logger = logging.getLogger(__name__)

DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    # kind: (burst, refill per second). GitHub allows 5000 requests/hour per token.
    "github": (20, 1.0),
    "openai": (10, 1.0),
}
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def rate_limit_name(kind: str, account: str) -> str:
    """The Prefect global concurrency limit that rate-limits one service account."""
    slug = re.sub(r"[^a-z0-9-]+", "-", account.lower()).strip("-") or "x"
    return f"fleetwright-rate-{kind}-{slug}"


async def ensure_rate_limit(
    kind: str, account: str, *, burst: int | None = None, per_second: float | None = None
) -> str:
    """Create (or update) the account's rate limit on the Prefect server; returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    default_burst, default_rate = DEFAULT_LIMITS.get(kind, (10, 1.0))
    name = rate_limit_name(kind, account)
    limit, decay = burst or default_burst, per_second or default_rate
    try:
        async with get_client() as client:
            try:
                await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=name, limit=limit, slot_decay_per_second=decay
                    )
                )
            else:
                await client.update_global_concurrency_limit(
                    name,
                    GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay),
                )
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        raise PrefectUnavailableError(
            f"Could not create the rate limit {name!r} on the Prefect server "
            f"({type(exc).__name__}); start it with `fleetwright up` or set PREFECT_API_URL"
        ) from None
    return name


async def delete_rate_limit(kind: str, account: str) -> None:
    """Remove the account's rate limit (if any)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.delete_global_concurrency_limit_by_name(rate_limit_name(kind, account))
        except ObjectNotFound:
            return


async def take_rate_limit(
    kind: str, account: str, *, timeout: timedelta, strict: bool = True
) -> None:
    """Wait for one slot of the account's rate limit (`strict`: the limit must exist)."""
    from prefect.concurrency.asyncio import rate_limit

    name = rate_limit_name(kind, account)
    try:
        await rate_limit(name, occupy=1, timeout_seconds=timeout.total_seconds(), strict=strict)
    except TimeoutError:
        raise RateLimitedError(
            f"{kind} account {account!r} is over its Fleetwright rate limit {name!r} "
            f"(waited {timeout.total_seconds():.0f} s); slow down or raise the limit"
        ) from None
    except httpx.HTTPError as exc:
        raise PrefectUnavailableError(
            f"The Prefect server did not grant the rate limit {name!r} ({type(exc).__name__})"
        ) from None
    except Exception as exc:
        if (
            "not found" in str(exc).lower()
            or type(exc).__name__ == "ConcurrencySlotAcquisitionError"
        ):
            raise RateLimitedError(
                f"The rate limit {name!r} for {kind} account {account!r} is missing on the "
                f"Prefect server; add the service again with `fleetwright service add {kind}`",
                retryable=False,
            ) from None
        raise


class _Pacer:
    """Spacing between mutating calls and waits for a used-up quota, for one token."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Mutating calls go one at a time (GitHub: "make requests for a single user or client
        # ID serially"); the next may start `spacing` after the last one's answer.
        self.mutation = asyncio.Lock()
        self.next_mutation = 0.0
        self.blocked_until = 0.0


_redis_clients: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    """One redis.asyncio client per URL and event loop."""
    from redis.asyncio import Redis

    key = f"{url}#{id(asyncio.get_running_loop())}"
    client = _redis_clients.get(key)
    if client is None:
        client = _redis_clients[key] = Redis.from_url(url)
    return client


def _mutation_mark(key: str, spacing: timedelta) -> tuple[str, int]:
    """The Redis key that marks a token's last mutation, and how long it holds (ms)."""
    return f"fleetwright:github-mutation:{key}", max(1, int(spacing.total_seconds() * 1000))


async def _space_in_redis(url: str, key: str, spacing: timedelta) -> None:
    """Wait until no mutating call with this token happened in the last `spacing`, anywhere."""
    client = redis_client(url)
    name, millis = _mutation_mark(key, spacing)
    while not await client.set(name, "1", nx=True, px=millis):
        left = await client.pttl(name)
        await asyncio.sleep(max(int(left), 10) / 1000)


class GitHubThrottler(BaseThrottler):
    """githubkit throttler honouring GitHub's limits for one token.

    Mutating calls are spaced by `spacing` (across processes when `redis_url` is given);
    when a response said x-ratelimit-remaining: 0, calls wait until x-ratelimit-reset (or
    fail with RateLimitedError past `max_wait`).
    """

    _pacers: dict[str, _Pacer] = {}
    _guard = threading.Lock()

    def __init__(
        self,
        key: str,
        *,
        spacing: timedelta = timedelta(seconds=1),
        max_wait: timedelta = timedelta(seconds=60),
        max_concurrency: int = 100,
        redis_url: str | None = None,
    ) -> None:
        self.key, self.spacing, self.max_wait = key, spacing, max_wait
        self.redis_url = redis_url
        self._semaphore = threading.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._async_semaphores: dict[int, asyncio.Semaphore] = {}

    def _pacer(self) -> _Pacer:
        loop_key = f"{self.key}#{id(asyncio.get_running_loop())}"
        with self._guard:
            return self._pacers.setdefault(loop_key, _Pacer())

    def observe(self, response: httpx.Response) -> None:
        """Note GitHub's quota headers from a response (an httpx response hook)."""
        observe.github_response(response.status_code)
        if response.headers.get("x-ratelimit-remaining") != "0":
            return
        reset = response.headers.get("x-ratelimit-reset")
        if not reset or not reset.isdigit():
            return
        wait = max(0.0, int(reset) - time.time())
        loop_key = f"{self.key}#{id(asyncio.get_running_loop())}"
        with self._guard:
            pacer = self._pacers.setdefault(loop_key, _Pacer())
            pacer.blocked_until = max(pacer.blocked_until, time.monotonic() + wait)
        logger.info("GitHub quota used up for %s; next calls wait %.0f s", self.key, wait)

    async def _wait(self, request: httpx.Request) -> None:
        pacer = self._pacer()
        async with pacer.lock:
            now = time.monotonic()
            blocked = pacer.blocked_until - now
            if blocked > self.max_wait.total_seconds():
                raise RateLimitedError(
                    f"GitHub's rate limit for this token resets in {blocked:.0f} s; "
                    "try again later or use another account"
                )
            if blocked > 0:
                await asyncio.sleep(blocked)
            if request.method in _MUTATING and self.redis_url:
                await _space_in_redis(self.redis_url, self.key, self.spacing)
            elif request.method in _MUTATING:
                delay = pacer.next_mutation - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _mutation_done(self, pacer: _Pacer) -> None:
        """A mutating call was answered: the next waits `spacing` from now, so GitHub sees
        them at least that far apart however long the request took to arrive."""
        pacer.next_mutation = time.monotonic() + self.spacing.total_seconds()
        if self.redis_url:
            name, millis = _mutation_mark(self.key, self.spacing)
            with contextlib.suppress(Exception):  # Redis gone: its own error comes on the next call
                await redis_client(self.redis_url).set(name, "1", px=millis)

    @contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        with self._semaphore:
            yield

    @asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        loop = id(asyncio.get_running_loop())
        sem = self._async_semaphores.setdefault(loop, asyncio.Semaphore(self._max_concurrency))
        async with sem:
            if request.method not in _MUTATING:
                began = time.monotonic()
                await self._wait(request)
                observe.ratelimit_waited("github", time.monotonic() - began)
                yield
                return
            pacer = self._pacer()
            began = time.monotonic()
            async with pacer.mutation:
                await self._wait(request)
                observe.ratelimit_waited("github", time.monotonic() - began)
                try:
                    yield
                finally:
                    await self._mutation_done(pacer)

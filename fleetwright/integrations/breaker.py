"""A circuit breaker per service account, shared by every worker through Redis when configured.

N consecutive failures (5xx, timeouts, connection errors) open it: calls fail fast with
CircuitOpenError for a cool-down, then one trial call decides (half-open). Transitions are
decided atomically (a Lua script on Redis, a lock in-process) so exactly one process emits
each `fleetwright.breaker.opened/half-open/closed` Prefect event.

Libraries considered: pybreaker (sync; asyncio only via tornado), purgatory (non-atomic
read-modify-write on Redis, no single trial call), aiobreaker (unmaintained since 2021).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar

from fleetwright.errors import CircuitOpenError, ServiceUnavailableError
from fleetwright.observability import record as observe

__all__ = [
    "BreakerStore",
    "CircuitBreaker",
    "Decision",
    "LocalBreakerStore",
    "RedisBreakerStore",
    "breaker_for",
    "reset_breakers",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
Transition = Literal["opened", "half-open", "closed"]


@dataclass(frozen=True)
class Decision:
    """Whether a call may go ahead, and the transition (if any) taking it caused."""

    allowed: bool
    state: str
    retry_after: timedelta = timedelta(0)
    transition: Transition | None = None


class BreakerStore(Protocol):
    """Where breaker state lives; every method is atomic per key."""

    async def acquire(self, key: str, *, cooldown: timedelta, trial: timedelta) -> Decision: ...

    async def record(
        self, key: str, *, ok: bool, threshold: int, cooldown: timedelta
    ) -> tuple[Transition | None, int]: ...

    async def state(self, key: str) -> str: ...


@dataclass
class _Local:
    state: str = "closed"
    failures: int = 0
    opened_until: float = 0.0
    trial_until: float = 0.0


class LocalBreakerStore:
    """In-process state (one worker process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _Local] = {}

    async def acquire(self, key: str, *, cooldown: timedelta, trial: timedelta) -> Decision:
        now = time.monotonic()
        with self._lock:
            s = self._states.setdefault(key, _Local())
            if s.state == "closed":
                return Decision(True, "closed")
            if s.state == "open":
                if now < s.opened_until:
                    return Decision(False, "open", timedelta(seconds=s.opened_until - now))
                s.state, s.trial_until = "half-open", now + trial.total_seconds()
                return Decision(True, "half-open", transition="half-open")
            if now < s.trial_until:
                return Decision(False, "half-open", timedelta(seconds=s.trial_until - now))
            s.trial_until = now + trial.total_seconds()
            return Decision(True, "half-open")

    async def record(
        self, key: str, *, ok: bool, threshold: int, cooldown: timedelta
    ) -> tuple[Transition | None, int]:
        now = time.monotonic()
        with self._lock:
            s = self._states.setdefault(key, _Local())
            if ok:
                was = s.state
                s.state, s.failures = "closed", 0
                return ("closed" if was != "closed" else None), 0
            s.failures += 1
            if s.state == "half-open" or (s.state == "closed" and s.failures >= threshold):
                s.state, s.opened_until = "open", now + cooldown.total_seconds()
                return "opened", s.failures
            return None, s.failures

    async def state(self, key: str) -> str:
        with self._lock:
            return self._states.get(key, _Local()).state


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {1, 'closed', 0, ''} end
if state == 'open' then
  local untilms = tonumber(redis.call('HGET', KEYS[1], 'opened_until') or '0')
  if now < untilms then return {0, 'open', untilms - now, ''} end
  redis.call('HSET', KEYS[1], 'state', 'half-open', 'trial_until', now + tonumber(ARGV[1]))
  return {1, 'half-open', 0, 'half-open'}
end
local trial = tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0')
if now < trial then return {0, 'half-open', trial - now, ''} end
redis.call('HSET', KEYS[1], 'trial_until', now + tonumber(ARGV[1]))
return {1, 'half-open', 0, ''}
"""

_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('PEXPIRE', KEYS[1], 86400000)
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
  if state ~= 'closed' then return {'closed', 0} end
  return {'', 0}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if state == 'half-open' or (state == 'closed' and failures >= tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_until', now + tonumber(ARGV[3]))
  return {'opened', failures}
end
return {'', failures}
"""


class RedisBreakerStore:
    """State in Redis, shared by every worker process that points at the same server."""

    def __init__(self, url: str, *, prefix: str = "fleetwright:breaker:") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._record = self._redis.register_script(_RECORD)

    async def acquire(self, key: str, *, cooldown: timedelta, trial: timedelta) -> Decision:
        allowed, state, wait_ms, transition = await self._acquire(
            keys=[self._prefix + key], args=[int(trial.total_seconds() * 1000)]
        )
        return Decision(
            bool(int(allowed)),
            str(state),
            timedelta(milliseconds=int(wait_ms)),
            transition or None,
        )

    async def record(
        self, key: str, *, ok: bool, threshold: int, cooldown: timedelta
    ) -> tuple[Transition | None, int]:
        transition, failures = await self._record(
            keys=[self._prefix + key],
            args=["1" if ok else "0", threshold, int(cooldown.total_seconds() * 1000)],
        )
        return (transition or None), int(failures)

    async def state(self, key: str) -> str:
        value = await self._redis.hget(self._prefix + key, "state")
        return str(value or "closed")

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


def _emit(transition: Transition, kind: str, account: str, payload: dict[str, Any]) -> None:
    """Emit a Prefect event for a state change (never fails the call)."""
    try:
        from prefect.events import emit_event

        emit_event(
            event=f"fleetwright.breaker.{transition}",
            resource={
                "prefect.resource.id": f"fleetwright.service.{kind}.{account}",
                "prefect.resource.name": f"{kind}:{account}",
                "fleetwright.service.kind": kind,
            },
            payload=payload,
        )
    except Exception as exc:
        logger.warning("Could not emit the breaker event for %s:%s: %s", kind, account, exc)


class CircuitBreaker:
    """The breaker of one service account (`kind`, `account`)."""

    def __init__(
        self,
        kind: str,
        account: str,
        *,
        store: BreakerStore,
        threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=30),
        trial_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self.kind, self.account = kind, account
        self.store, self.threshold = store, threshold
        self.cooldown, self.trial_timeout = cooldown, trial_timeout
        self.key = f"{kind}:{account}"

    async def state(self) -> str:
        return await self.store.state(self.key)

    def _changed(self, transition: Transition | None, failures: int) -> None:
        if transition is None:
            return
        logger.warning("Circuit breaker for %s is now %s", self.key, transition)
        observe.breaker_changed(self.kind, self.account, transition)
        _emit(
            transition,
            self.kind,
            self.account,
            {
                "failures": failures,
                "threshold": self.threshold,
                "cooldown_seconds": self.cooldown.total_seconds(),
            },
        )

    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run `op` through the breaker; ServiceUnavailableError from it counts as a failure."""
        decision = await self.store.acquire(
            self.key, cooldown=self.cooldown, trial=self.trial_timeout
        )
        if not decision.allowed:
            seconds = max(1, round(decision.retry_after.total_seconds()))
            logger.warning("Circuit breaker for %s refused a call (%s)", self.key, decision.state)
            raise CircuitOpenError(
                f"{self.kind} account {self.account!r} is failing ({decision.state} circuit "
                f"after {self.threshold} consecutive errors); calls resume in about "
                f"{seconds} s — check the service's status"
            )
        self._changed(decision.transition, 0)
        try:
            result = await op()
        except ServiceUnavailableError:
            self._changed(
                *await self.store.record(
                    self.key, ok=False, threshold=self.threshold, cooldown=self.cooldown
                )
            )
            raise
        except Exception:
            # The service answered (4xx, schema, rate limit): it is up.
            self._changed(
                *await self.store.record(
                    self.key, ok=True, threshold=self.threshold, cooldown=self.cooldown
                )
            )
            raise
        self._changed(
            *await self.store.record(
                self.key, ok=True, threshold=self.threshold, cooldown=self.cooldown
            )
        )
        return result


_stores: dict[str, BreakerStore] = {}
_lock = threading.Lock()


def _store(redis_url: str | None) -> BreakerStore:
    key = redis_url or ""
    if redis_url:
        # redis.asyncio connections belong to one event loop.
        key = f"{redis_url}#{id(asyncio.get_running_loop())}"
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = RedisBreakerStore(redis_url) if redis_url else LocalBreakerStore()
            _stores[key] = store
        return store


def breaker_for(
    kind: str,
    account: str,
    *,
    redis_url: str | None = None,
    threshold: int = 5,
    cooldown: timedelta = timedelta(seconds=30),
) -> CircuitBreaker:
    """The breaker of (`kind`, `account`): Redis-backed when `redis_url`, else in-process."""
    return CircuitBreaker(
        kind, account, store=_store(redis_url), threshold=threshold, cooldown=cooldown
    )


def reset_breakers() -> None:
    """Forget in-process breaker state and Redis connections (tests)."""
    with _lock:
        _stores.clear()

"""The step dispatcher the command runner calls: `await Integrations().call(kind, args)`.

Every call resolves the account's credentials block, takes a slot of the account's Prefect
rate limit, goes through the account's circuit breaker, and maps SDK errors to Fleetwright's
hierarchy with secret values scrubbed from every message.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.errors import CommandSpecError, FleetwrightError, ValidationError
from fleetwright.integrations import github_api, openai_api
from fleetwright.integrations.breaker import breaker_for
from fleetwright.integrations.ratelimit import GitHubThrottler, take_rate_limit
from fleetwright.integrations.services import Credentials, load_credentials
from fleetwright.integrations.shared_tokens import share_oauth_tokens, shared_strategy_for
from fleetwright.redaction import Scrubber, secret_values
from fleetwright.settings import get_settings

__all__ = ["GITHUB_STEPS", "STEP_KINDS", "Integrations", "Resolver"]

logger = logging.getLogger(__name__)

Resolver = Callable[[str, str | None], Awaitable[Credentials]]
"""(service kind, account or None) → the account's credentials block."""

GITHUB_STEPS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "create_issue": github_api.create_issue,
    "comment": github_api.comment,
    "add_labels": github_api.add_labels,
    "close_issue": github_api.close_issue,
    "put_file": github_api.put_file,
    "dispatch_workflow": github_api.dispatch_workflow,
    "search_issues": github_api.search_issues,
    "get_repo": github_api.get_repo,
}
STEP_KINDS: tuple[str, ...] = (*(f"github.{k}" for k in GITHUB_STEPS), "openai.respond")


async def _catalogue_resolver(kind: str, account: str | None) -> Credentials:
    block: Credentials = await load_credentials(kind, account)
    return block


def _bind(kind: str, fn: Callable[..., Any], args: dict[str, Any], *, skip: int) -> None:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    names = [p.name for p in params]
    unknown = sorted(set(args) - set(names))
    if unknown:
        raise CommandSpecError(
            f"{kind}: unknown argument(s) {', '.join(unknown)}; it takes {', '.join(names)}"
        )
    missing = [
        p.name for p in params if p.default is inspect.Parameter.empty and p.name not in args
    ]
    if missing:
        raise CommandSpecError(f"{kind}: missing argument(s) {', '.join(missing)}")


class Integrations:
    """Calls GitHub and OpenAI steps on behalf of service accounts."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        redis_url: str | None = None,
        prefect_rate_limits: bool = True,
        require_rate_limit: bool = True,
        rate_limit_wait: timedelta = timedelta(seconds=60),
        breaker_threshold: int = 5,
        breaker_cooldown: timedelta = timedelta(seconds=30),
        github_spacing: timedelta = timedelta(seconds=1),
        timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self.resolver: Resolver = resolver or _catalogue_resolver
        settings = get_settings()
        self.redis_url = redis_url if redis_url is not None else settings.redis_url
        secret = settings.token_cache_secret
        self.token_cache_secret = secret.get_secret_value() if secret else None
        self.prefect_rate_limits = prefect_rate_limits
        self.require_rate_limit = require_rate_limit
        self.rate_limit_wait = rate_limit_wait
        self.breaker_threshold, self.breaker_cooldown = breaker_threshold, breaker_cooldown
        self.github_spacing, self.timeout = github_spacing, timeout

    @classmethod
    def with_credentials(cls, *blocks: Credentials, **options: Any) -> Integrations:
        """Integrations that use the given blocks (tasks take blocks as parameters).

        The account's Prefect rate limit is taken when it exists (added services have one).
        """
        options.setdefault("require_rate_limit", False)

        async def resolve(kind: str, account: str | None) -> Credentials:
            for block in blocks:
                wanted = GitHubCredentials if kind == "github" else OpenAICredentials
                if isinstance(block, wanted) and account in (None, block.account):
                    return block
            raise ValidationError(f"no {kind} credentials given for account {account!r}")

        return cls(resolve, **options)

    async def call(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run step `kind` (e.g. "github.create_issue") with rendered `args`; JSON-able result."""
        if kind not in STEP_KINDS:
            raise CommandSpecError(
                f"unknown integration step {kind!r}; use one of: {', '.join(STEP_KINDS)}"
            )
        service, _, op = kind.partition(".")
        args = dict(args)
        account = args.pop("account", None)
        block = await self.resolver(service, str(account) if account else None)
        scrub = Scrubber(secret_values(block))
        breaker = breaker_for(
            service,
            block.account,
            redis_url=self.redis_url,
            threshold=self.breaker_threshold,
            cooldown=self.breaker_cooldown,
        )
        if isinstance(block, GitHubCredentials):
            fn = GITHUB_STEPS[op]
            _bind(kind, fn, args, skip=1)
            call = self._github(block, fn, args, op, scrub)
        elif isinstance(block, OpenAICredentials):
            _bind(kind, openai_api.respond, {"model": None, **args}, skip=1)
            call = self._openai(block, args, scrub)
        else:
            raise ValidationError(f"{kind}: the resolver returned {type(block).__name__}")
        if self.prefect_rate_limits:
            await take_rate_limit(
                service,
                block.account,
                timeout=self.rate_limit_wait,
                strict=self.require_rate_limit,
            )
        result: dict[str, Any] = await breaker.call(call)
        return result

    def _github(
        self,
        block: GitHubCredentials,
        fn: Callable[..., Awaitable[dict[str, Any]]],
        args: dict[str, Any],
        op: str,
        scrub: Scrubber,
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        throttler = GitHubThrottler(
            f"github:{block.base_url}:{block.account}",
            spacing=self.github_spacing,
            max_wait=self.rate_limit_wait,
            redis_url=self.redis_url or None,
        )

        async def observe(response: Any) -> None:
            throttler.observe(response)

        shared = shared_strategy_for(block, self.redis_url or None)
        extra: dict[str, Any] = {"cache_strategy": shared} if shared is not None else {}

        async def run() -> dict[str, Any]:
            try:
                await share_oauth_tokens(
                    block, self.redis_url or None, fleet_secret=self.token_cache_secret
                )
                gh = block.get_client(
                    auto_retry=github_api.RateLimitRetry(max_wait=self.rate_limit_wait),
                    throttler=throttler,
                    async_event_hooks={"response": [observe]},
                    timeout=self.timeout.total_seconds(),
                    http_cache=False,
                    **extra,
                )
                return await fn(gh, **args)
            except FleetwrightError as exc:
                raise type(exc)(scrub(exc.message), retryable=exc.retryable) from None
            except Exception as exc:
                raise github_api.github_error(
                    exc, account=block.account, what=op.replace("_", " "), scrub=scrub
                ) from None
            finally:
                try:
                    if await block.persist_refreshed_tokens():
                        logger.info("Saved refreshed GitHub tokens of %s", block.account)
                except Exception as exc:
                    logger.warning(
                        "Could not save refreshed GitHub tokens of %s: %s",
                        block.account,
                        type(exc).__name__,
                    )

        return run

    def _openai(
        self, block: OpenAICredentials, args: dict[str, Any], scrub: Scrubber
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def run() -> dict[str, Any]:
            options = dict(args)
            model = str(options.pop("model", None) or block.model)
            client = block.get_client(max_retries=0, timeout=self.timeout.total_seconds())
            try:
                return await openai_api.respond(
                    client, model=model, max_wait=self.rate_limit_wait, **options
                )
            except FleetwrightError as exc:
                raise type(exc)(scrub(exc.message), retryable=exc.retryable) from None
            except Exception as exc:
                raise openai_api.openai_error(exc, account=block.account, scrub=scrub) from None
            finally:
                await client.close()

        return run

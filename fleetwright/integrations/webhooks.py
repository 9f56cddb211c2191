"""GitHub webhooks into Prefect events: an ASGI app that refuses bodies over a size cap before
reading them, checks X-Hub-Signature-256 with githubkit, parses the payload into githubkit's
typed model of the event, refuses replayed deliveries, and emits `fleetwright.github.<event>`
carrying a small typed summary (GitHubEventPayload) so deployment triggers can match.

A delivery id is claimed before the event is emitted and confirmed only after: a failed emit
gives the claim back, so GitHub's redelivery goes through instead of being refused as a replay.
A payload githubkit does not accept is refused (400) before its id is claimed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from enum import Enum
from typing import Any, Protocol

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = [
    "MAX_BODY",
    "MAX_TEXT",
    "BadDelivery",
    "CatalogueDeliveryLog",
    "DeliveryLog",
    "GitHubEventPayload",
    "IssueSummary",
    "MemoryDeliveryLog",
    "RedisDeliveryLog",
    "create_app",
    "event_for",
    "parse_delivery",
    "profiles_named",
    "verify_signature",
]

logger = logging.getLogger(__name__)
Emit = Callable[..., Any]


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether `header` is GitHub's HMAC-SHA256 of `body` with `secret` (githubkit's constant-
    time check; the older SHA-1 signature is not accepted)."""
    from githubkit.webhooks import verify

    if not header or not header.startswith("sha256="):
        return False
    return bool(verify(secret, body, header.strip()))


class DeliveryLog(Protocol):
    """Remembers delivery ids. `claim` is atomic and holds an id while its event is emitted;
    `confirm` keeps it for the replay window; `release` gives a claim back (emit failed)."""

    async def claim(self, delivery: str) -> bool: ...

    async def confirm(self, delivery: str) -> None: ...

    async def release(self, delivery: str) -> None: ...


#: How long a claim holds a delivery id while its event is emitted.
_CLAIM_TTL = timedelta(minutes=2)


class MemoryDeliveryLog:
    """A bounded in-memory LRU of delivery ids, each kept for `ttl`. It lasts as long as the
    process: CatalogueDeliveryLog and RedisDeliveryLog keep the window across restarts and
    share it between replicas."""

    def __init__(self, *, size: int = 10_000, ttl: timedelta = timedelta(days=3)) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._size, self._ttl = size, ttl.total_seconds()
        self._lock = threading.Lock()

    def _put(self, delivery: str, ttl: float) -> None:
        self._seen[delivery] = time.monotonic() + ttl
        self._seen.move_to_end(delivery)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    async def claim(self, delivery: str) -> bool:
        now = time.monotonic()
        with self._lock:
            expires = self._seen.get(delivery)
            if expires is not None and expires >= now:
                return False
            self._put(delivery, min(_CLAIM_TTL.total_seconds(), self._ttl))
            return True

    async def confirm(self, delivery: str) -> None:
        with self._lock:
            self._put(delivery, self._ttl)

    async def release(self, delivery: str) -> None:
        with self._lock:
            self._seen.pop(delivery, None)

    async def first_time(self, delivery: str) -> bool:
        """Claim and confirm at once (callers with nothing to emit)."""
        if not await self.claim(delivery):
            return False
        await self.confirm(delivery)
        return True


class RedisDeliveryLog:
    """Delivery ids in Redis (SET NX EX), shared by every webhook server replica and kept
    across restarts."""

    def __init__(self, url: str, *, ttl: timedelta = timedelta(days=3)) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._ttl = int(ttl.total_seconds())

    @staticmethod
    def _key(delivery: str) -> str:
        return f"fleetwright:webhook:delivery:{delivery}"

    async def claim(self, delivery: str) -> bool:
        claim_ttl = min(int(_CLAIM_TTL.total_seconds()), self._ttl)
        return bool(await self._redis.set(self._key(delivery), "claimed", nx=True, ex=claim_ttl))

    async def confirm(self, delivery: str) -> None:
        await self._redis.set(self._key(delivery), "done", ex=self._ttl)

    async def release(self, delivery: str) -> None:
        await self._redis.delete(self._key(delivery))

    async def first_time(self, delivery: str) -> bool:
        """Claim and confirm at once (callers with nothing to emit)."""
        if not await self.claim(delivery):
            return False
        await self.confirm(delivery)
        return True


class CatalogueDeliveryLog:
    """Delivery ids in the catalogue (`webhook_deliveries`), kept across restarts and shared
    by every receiver on the same catalogue; expiry is judged by the database's clock. The
    default of `fleetwright webhooks serve` without Redis."""

    def __init__(self, url: str | None = None, *, ttl: timedelta = timedelta(days=3)) -> None:
        self._url, self._ttl = url, ttl

    def _claim(self, delivery: str) -> bool:
        from sqlalchemy import delete
        from sqlalchemy.exc import IntegrityError

        from fleetwright.catalogue.db import db_now, session_scope
        from fleetwright.catalogue.models import WebhookDelivery as Row

        try:
            with session_scope(self._url) as s:
                now = db_now(s)
                s.execute(delete(Row).where(Row.expires_at < now))  # expired ids are free again
                s.add(Row(delivery_id=delivery, confirmed=False, expires_at=now + _CLAIM_TTL))
                s.flush()
        except IntegrityError:  # taken (claimed or confirmed), here or by another receiver
            return False
        return True

    def _confirm(self, delivery: str) -> None:
        from sqlalchemy import update

        from fleetwright.catalogue.db import db_now, session_scope
        from fleetwright.catalogue.models import WebhookDelivery as Row

        with session_scope(self._url) as s:
            expires = db_now(s) + self._ttl
            s.execute(
                update(Row)
                .where(Row.delivery_id == delivery)
                .values(confirmed=True, expires_at=expires)
            )

    def _release(self, delivery: str) -> None:
        from sqlalchemy import delete

        from fleetwright.catalogue.db import session_scope
        from fleetwright.catalogue.models import WebhookDelivery as Row

        with session_scope(self._url) as s:
            s.execute(delete(Row).where(Row.delivery_id == delivery))

    async def claim(self, delivery: str) -> bool:
        return await asyncio.to_thread(self._claim, delivery)

    async def confirm(self, delivery: str) -> None:
        await asyncio.to_thread(self._confirm, delivery)

    async def release(self, delivery: str) -> None:
        await asyncio.to_thread(self._release, delivery)

    async def first_time(self, delivery: str) -> bool:
        """Claim and confirm at once (callers with nothing to emit)."""
        if not await self.claim(delivery):
            return False
        await self.confirm(delivery)
        return True


_PROFILES = re.compile(r"^\s*(?:[-*]\s*)?profiles?\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


def profiles_named(text: str | None) -> list[str]:
    """Profile names listed in an issue body as `profile: a` or `profiles: a, b` lines."""
    names: list[str] = []
    for match in _PROFILES.finditer(text or ""):
        for name in re.split(r"[,\s]+", match[1].strip().strip("`")):
            if name and name not in names:
                names.append(name)
    return names


#: Longest text (issue body, comment, title) carried into an event; GitHub allows 65,536
#: characters and Prefect refuses events over PREFECT_EVENTS_MAXIMUM_SIZE_BYTES.
MAX_TEXT = 8_192


def _trim(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + "…[trimmed]"
    return text


class BadDelivery(Exception):
    """A signed delivery that is not a GitHub event githubkit accepts (answered 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_delivery(event: str, body: bytes) -> Any:
    """The delivery as githubkit's typed model of `event` (e.g. WebhookIssuesLabeled); a
    BadDelivery naming the first problem when the event is unknown or the payload is not one."""
    from githubkit.exception import WebhookTypeNotFound
    from githubkit.webhooks import parse
    from pydantic import ValidationError as PydanticValidationError

    try:
        return parse(event, body)
    except WebhookTypeNotFound:
        raise BadDelivery(f"X-GitHub-Event {event!r} is not a GitHub webhook event") from None
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            raise BadDelivery("the body is not JSON") from None
        where = ".".join(str(part) for part in first["loc"][:8]) or "the payload"
        raise BadDelivery(
            f"the payload is not a GitHub {event!r} event: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None


class IssueSummary(BaseModel):
    """An issue or pull request as an event carries it."""

    number: int
    title: str | None = None
    body: str | None = None
    state: str | None = None
    url: str | None = None
    labels: list[str] = []


class GitHubEventPayload(BaseModel):
    """What a `fleetwright.github.<event>` event carries: the fields triggers need, long texts
    trimmed to MAX_TEXT characters. Fields an event does not have are left out."""

    action: str = ""
    repository: str = "unknown"
    sender: str | None = None
    issue: IssueSummary | None = None
    pull_request: IssueSummary | None = None
    labels: list[str] | None = None
    profiles: list[str] | None = None
    label: str | None = None
    ref: str | None = None
    comment: str | None = None


def _get(obj: Any, name: str) -> Any:
    """An attribute of a githubkit model, None when the payload did not have it."""
    from githubkit.utils import UNSET

    value = getattr(obj, name, None)
    return None if value is UNSET else value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.value if isinstance(value, Enum) else value)


def _summary(item: Any) -> IssueSummary:
    return IssueSummary(
        number=int(_get(item, "number")),
        title=_trim(_text(_get(item, "title"))),
        body=_trim(_text(_get(item, "body"))),
        state=_text(_get(item, "state")),
        url=_text(_get(item, "html_url")),
        labels=[str(_get(label, "name")) for label in _get(item, "labels") or []],
    )


def event_for(event: str, delivery: str, parsed: Any) -> dict[str, Any]:
    """The Prefect event (name, resource, payload) for one delivery parsed by parse_delivery:
    a GitHubEventPayload read from the typed model, plus resource labels to match on."""
    payload = GitHubEventPayload(
        action=_text(_get(parsed, "action")) or "",
        repository=_text(_get(_get(parsed, "repository"), "full_name")) or "unknown",
        sender=_text(_get(_get(parsed, "sender"), "login")),
        label=_trim(_text(_get(_get(parsed, "label"), "name"))),
        ref=_text(_get(parsed, "ref")),
        comment=_trim(_text(_get(_get(parsed, "comment"), "body"))),
    )
    for key in ("issue", "pull_request"):
        item = _get(parsed, key)
        if item is not None and _get(item, "number") is not None:
            summary = _summary(item)
            setattr(payload, key, summary)
            payload.labels = summary.labels
            payload.profiles = profiles_named(_text(_get(item, "body")))[:100]
    resource = {
        "prefect.resource.id": f"github.repository.{payload.repository}",
        "prefect.resource.name": payload.repository,
        "github.event": event,
        "github.action": payload.action,
        "github.delivery": delivery,
    }
    if payload.label is not None:
        resource["github.label"] = payload.label
    return {
        "event": f"fleetwright.github.{event}",
        "resource": resource,
        "payload": payload.model_dump(exclude_none=True),
    }


def _event_id(delivery: str) -> uuid.UUID:
    try:
        return uuid.UUID(delivery)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"github-delivery:{delivery}")


def _default_emit(**event: Any) -> Any:
    from prefect.events import emit_event

    return emit_event(**event)


#: GitHub caps webhook payloads at 25 MB; larger bodies are refused before they are read.
MAX_BODY = 25 * 1024 * 1024


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (before reading) a declared length over `limit`, and stopping a
    streamed one as soon as it passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            raise _TooLarge from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    secret: str,
    *,
    deliveries: DeliveryLog | None = None,
    emit: Emit | None = None,
    path: str = "/github",
    max_body: int = MAX_BODY,
) -> Starlette:
    """The webhook receiver: POST `path` with GitHub's headers; GET /healthz."""
    if not secret:
        raise ValueError("a webhook secret is needed; set it on the GitHub credentials block")
    log = deliveries or MemoryDeliveryLog()
    send = emit or _default_emit

    async def receive(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            logger.warning("Webhook refused: body over %d bytes", max_body)
            return JSONResponse(
                {"error": f"the body is over the {max_body} byte limit"}, status_code=413
            )
        if not verify_signature(body, request.headers.get("x-hub-signature-256"), secret):
            logger.warning("Webhook refused: missing or wrong signature")
            return JSONResponse({"error": "missing or wrong X-Hub-Signature-256"}, status_code=401)
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if not re.fullmatch(r"[a-z_]{1,64}", event) or not re.fullmatch(r"[\w.-]{1,100}", delivery):
            return JSONResponse(
                {"error": "X-GitHub-Event and X-GitHub-Delivery are required"}, status_code=400
            )
        try:
            parsed = await asyncio.to_thread(parse_delivery, event, body)
        except BadDelivery as exc:
            logger.warning("Webhook %s (%s) refused: %s", event, delivery, exc.message)
            return JSONResponse({"error": exc.message}, status_code=400)
        del body
        try:
            first = await log.claim(delivery)
        except Exception as exc:
            logger.error("Webhook %s (%s): delivery log unavailable (%s)", event, delivery,
                         type(exc).__name__)  # fmt: skip
            return JSONResponse(
                {"error": "the delivery could not be recorded; redeliver it"}, status_code=503
            )
        if not first:
            logger.warning("Webhook refused: delivery %s was already received", delivery)
            return JSONResponse({"error": f"delivery {delivery} already received"}, status_code=409)
        if event == "ping":
            await log.confirm(delivery)
            return JSONResponse({"ok": True, "event": "ping"})
        spec = event_for(event, delivery, parsed)
        del parsed
        try:
            result = send(id=_event_id(delivery), **spec)
            if hasattr(result, "__await__"):
                await result
        except Exception as exc:
            await log.release(delivery)  # GitHub's redelivery must go through
            logger.error(
                "Webhook %s (%s): the event was not emitted (%s); redeliver it",
                event,
                delivery,
                type(exc).__name__,
            )
            return JSONResponse(
                {"error": "the event could not be emitted; redeliver it"}, status_code=503
            )
        await log.confirm(delivery)
        logger.info("Webhook %s (%s) → %s", event, delivery, spec["event"])
        return JSONResponse({"ok": True, "event": spec["event"]}, status_code=202)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route(path, receive, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )

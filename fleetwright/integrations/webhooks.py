"""GitHub webhooks into Prefect events: an ASGI app that refuses bodies over a size cap before
reading them, checks X-Hub-Signature-256 with githubkit, refuses replayed deliveries, and emits
`fleetwright.github.<event>` so deployment triggers can match.

A delivery id is claimed before the event is emitted and confirmed only after: a failed emit
gives the claim back, so GitHub's redelivery goes through instead of being refused as a replay.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = [
    "MAX_BODY",
    "MAX_TEXT",
    "DeliveryLog",
    "MemoryDeliveryLog",
    "RedisDeliveryLog",
    "create_app",
    "event_for",
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
    process: use RedisDeliveryLog (FLEETWRIGHT_REDIS_URL) for a window that survives restarts
    and is shared by replicas."""

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


_PROFILES = re.compile(r"^\s*(?:[-*]\s*)?profiles?\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


def profiles_named(text: str | None) -> list[str]:
    """Profile names listed in an issue body as `profile: a` or `profiles: a, b` lines."""
    names: list[str] = []
    for match in _PROFILES.finditer(text or ""):
        for name in re.split(r"[,\s]+", match[1].strip().strip("`")):
            if name and name not in names:
                names.append(name)
    return names


def _labels(obj: dict[str, Any] | None) -> list[str]:
    return [
        str(label.get("name"))
        for label in (obj or {}).get("labels") or []
        if isinstance(label, dict)
    ]


#: Longest text (issue body, comment, title) carried into an event; GitHub allows 65,536
#: characters and Prefect refuses events over PREFECT_EVENTS_MAXIMUM_SIZE_BYTES.
MAX_TEXT = 8_192


def _trim(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + "…[trimmed]"
    return text


def event_for(event: str, delivery: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The Prefect event (name, resource, payload) for one GitHub delivery: only the fields a
    trigger needs, long texts trimmed to MAX_TEXT characters."""
    repo = (payload.get("repository") or {}).get("full_name") or "unknown"
    action = str(payload.get("action") or "")
    resource = {
        "prefect.resource.id": f"github.repository.{repo}",
        "prefect.resource.name": repo,
        "github.event": event,
        "github.action": action,
        "github.delivery": delivery,
    }
    if isinstance(payload.get("label"), dict):
        resource["github.label"] = str(payload["label"].get("name"))
    body: dict[str, Any] = {
        "action": action,
        "repository": repo,
        "sender": (payload.get("sender") or {}).get("login"),
    }
    for key in ("issue", "pull_request"):
        item = payload.get(key)
        if isinstance(item, dict):
            body[key] = {
                "number": item.get("number"),
                "title": _trim(item.get("title")),
                "body": _trim(item.get("body")),
                "state": item.get("state"),
                "url": item.get("html_url"),
                "labels": _labels(item),
            }
            body["labels"] = _labels(item)
            body["profiles"] = profiles_named(item.get("body"))[:100]
    if isinstance(payload.get("label"), dict):
        body["label"] = _trim(payload["label"].get("name"))
    if isinstance(payload.get("ref"), str):
        body["ref"] = payload["ref"]
    if isinstance(payload.get("comment"), dict):
        body["comment"] = _trim(payload["comment"].get("body"))
    return {"event": f"fleetwright.github.{event}", "resource": resource, "payload": body}


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
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        del body
        if not await log.claim(delivery):
            logger.warning("Webhook refused: delivery %s was already received", delivery)
            return JSONResponse({"error": f"delivery {delivery} already received"}, status_code=409)
        if event == "ping":
            await log.confirm(delivery)
            return JSONResponse({"ok": True, "event": "ping"})
        spec = event_for(event, delivery, payload if isinstance(payload, dict) else {})
        del payload
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

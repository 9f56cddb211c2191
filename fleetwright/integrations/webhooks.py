"""GitHub webhooks into Prefect events: an ASGI app that checks X-Hub-Signature-256, refuses
replayed deliveries, and emits `fleetwright.github.<event>` so deployment triggers can match."""

from __future__ import annotations

import hashlib
import hmac
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
    """Whether `header` is GitHub's HMAC-SHA256 of `body` with `secret` (constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class DeliveryLog(Protocol):
    """Remembers delivery ids; `first_time` is atomic."""

    async def first_time(self, delivery: str) -> bool: ...


class MemoryDeliveryLog:
    """A bounded in-memory LRU of delivery ids, each kept for `ttl`."""

    def __init__(self, *, size: int = 10_000, ttl: timedelta = timedelta(days=3)) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._size, self._ttl = size, ttl.total_seconds()
        self._lock = threading.Lock()

    async def first_time(self, delivery: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            if delivery in self._seen:
                return False
            self._seen[delivery] = now + self._ttl
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


class RedisDeliveryLog:
    """Delivery ids in Redis (SET NX EX), shared by every webhook server replica."""

    def __init__(self, url: str, *, ttl: timedelta = timedelta(days=3)) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._ttl = int(ttl.total_seconds())

    async def first_time(self, delivery: str) -> bool:
        key = f"fleetwright:webhook:delivery:{delivery}"
        return bool(await self._redis.set(key, "1", nx=True, ex=self._ttl))


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


def event_for(event: str, delivery: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The Prefect event (name, resource, payload) for one GitHub delivery."""
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
                "title": item.get("title"),
                "body": item.get("body"),
                "state": item.get("state"),
                "url": item.get("html_url"),
                "labels": _labels(item),
            }
            body["labels"] = _labels(item)
            body["profiles"] = profiles_named(item.get("body"))
    if isinstance(payload.get("label"), dict):
        body["label"] = payload["label"].get("name")
    if isinstance(payload.get("ref"), str):
        body["ref"] = payload["ref"]
    if isinstance(payload.get("comment"), dict):
        body["comment"] = payload["comment"].get("body")
    return {"event": f"fleetwright.github.{event}", "resource": resource, "payload": body}


def _event_id(delivery: str) -> uuid.UUID:
    try:
        return uuid.UUID(delivery)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"github-delivery:{delivery}")


def _default_emit(**event: Any) -> Any:
    from prefect.events import emit_event

    return emit_event(**event)


def create_app(
    secret: str,
    *,
    deliveries: DeliveryLog | None = None,
    emit: Emit | None = None,
    path: str = "/github",
) -> Starlette:
    """The webhook receiver: POST `path` with GitHub's headers; GET /healthz."""
    if not secret:
        raise ValueError("a webhook secret is needed; set it on the GitHub credentials block")
    log = deliveries or MemoryDeliveryLog()
    send = emit or _default_emit

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_signature(body, request.headers.get("x-hub-signature-256"), secret):
            logger.warning("Webhook refused: missing or wrong signature")
            return JSONResponse({"error": "missing or wrong X-Hub-Signature-256"}, status_code=401)
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if not re.fullmatch(r"[a-z_]{1,64}", event) or not delivery:
            return JSONResponse(
                {"error": "X-GitHub-Event and X-GitHub-Delivery are required"}, status_code=400
            )
        if not await log.first_time(delivery):
            logger.warning("Webhook refused: delivery %s was already received", delivery)
            return JSONResponse({"error": f"delivery {delivery} already received"}, status_code=409)
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if event == "ping":
            return JSONResponse({"ok": True, "event": "ping"})
        spec = event_for(event, delivery, payload if isinstance(payload, dict) else {})
        send(id=_event_id(delivery), **spec)
        logger.info("Webhook %s (%s) → %s", event, delivery, spec["event"])
        return JSONResponse({"ok": True, "event": spec["event"]}, status_code=202)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route(path, receive, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )

"""Signed GitHub webhooks into Prefect events: good, bad, missing and replayed deliveries,
payloads parsed into githubkit's typed models, and a replay window that survives a restart
(a new receiver on the same catalogue or Redis)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from fleetwright.integrations.webhooks import (
    CatalogueDeliveryLog,
    MemoryDeliveryLog,
    RedisDeliveryLog,
    create_app,
    profiles_named,
    verify_signature,
)
from fleetwright.testing.fake_github import deliver_webhook, sign_webhook
from fleetwright.testing.webhook_payloads import webhook_payload

SECRET = "whsec-" + uuid.uuid4().hex


def _issue_labelled(label: str = "recheck") -> dict[str, Any]:
    return webhook_payload(
        "issues",
        action="labeled",
        label={"name": label},
        issue={
            "number": 7,
            "title": "Prices look stale",
            "body": "Please recheck.\nprofiles: shop-de-1, shop-fr-2\n",
            "state": "open",
            "html_url": "https://github.com/octo/demo/issues/7",
            "labels": [{"name": "bug"}, {"name": label}],
        },
        repository={"full_name": "octo/demo"},
        sender={"login": "alice"},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/github"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def captured() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def receiver(captured: list[dict[str, Any]]) -> Iterator[str]:
    app = create_app(SECRET, emit=lambda **event: captured.append(event))
    with _Server(app) as url:
        yield url


def test_signature_check() -> None:
    body = b'{"a": 1}'
    assert verify_signature(body, sign_webhook(body, SECRET), SECRET)
    assert not verify_signature(body, sign_webhook(body, "other"), SECRET)
    assert not verify_signature(body + b" ", sign_webhook(body, SECRET), SECRET)
    assert not verify_signature(body, None, SECRET)
    assert not verify_signature(body, "sha1=abc", SECRET)


def test_good_delivery_becomes_an_event(receiver: str, captured: list[dict[str, Any]]) -> None:
    delivery = str(uuid.uuid4())
    resp = deliver_webhook(receiver, "issues", _issue_labelled(), secret=SECRET, delivery=delivery)
    assert resp.status_code == 202, resp.text
    assert len(captured) == 1
    event = captured[0]
    assert event["event"] == "fleetwright.github.issues"
    assert event["id"] == uuid.UUID(delivery)
    assert event["resource"]["prefect.resource.id"] == "github.repository.octo/demo"
    assert event["resource"]["github.label"] == "recheck"
    assert event["resource"]["github.action"] == "labeled"
    assert event["payload"] == {
        "action": "labeled",
        "repository": "octo/demo",
        "sender": "alice",
        "label": "recheck",
        "issue": {
            "number": 7,
            "title": "Prices look stale",
            "body": "Please recheck.\nprofiles: shop-de-1, shop-fr-2\n",
            "state": "open",
            "url": "https://github.com/octo/demo/issues/7",
            "labels": ["bug", "recheck"],
        },
        "labels": ["bug", "recheck"],
        "profiles": ["shop-de-1", "shop-fr-2"],
    }


def test_other_events_carry_their_typed_fields(
    receiver: str, captured: list[dict[str, Any]]
) -> None:
    repo = {"full_name": "octo/demo"}
    deliveries = [
        ("push", webhook_payload("push", ref="refs/heads/main", repository=repo)),
        ("issue_comment", webhook_payload(
            "issue_comment", action="created", repository=repo, comment={"body": "please rerun"},
            issue={"number": 9, "title": "t", "body": "profile: shop-de-1", "labels": []},
        )),
        ("pull_request", webhook_payload(
            "pull_request", action="opened", repository=repo,
            pull_request={"number": 3, "title": "Bump", "state": "open", "labels": [{"name": "x"}]},
        )),
    ]  # fmt: skip
    for event, payload in deliveries:
        resp = deliver_webhook(receiver, event, payload, secret=SECRET)
        assert resp.status_code == 202, (event, resp.text)
    push, comment, pull = (e["payload"] for e in captured)
    assert push["ref"] == "refs/heads/main" and push["repository"] == "octo/demo"
    assert "issue" not in push and "profiles" not in push
    assert comment["comment"] == "please rerun" and comment["issue"]["number"] == 9
    assert comment["profiles"] == ["shop-de-1"]
    assert pull["pull_request"]["title"] == "Bump" and pull["labels"] == ["x"]
    assert [e["resource"]["github.action"] for e in captured] == ["", "created", "opened"]
    ping = deliver_webhook(receiver, "ping", webhook_payload("ping", zen="ok"), secret=SECRET)
    assert ping.json() == {"ok": True, "event": "ping"} and len(captured) == 3


def test_a_payload_githubkit_refuses_is_400_and_keeps_its_delivery_id(
    receiver: str, captured: list[dict[str, Any]]
) -> None:
    delivery = str(uuid.uuid4())
    incomplete = {"action": "labeled", "issue": {"number": 7}, "repository": {}}
    cases = [
        ("issues", incomplete, "not a GitHub 'issues' event"),
        ("no_such_event", _issue_labelled(), "'no_such_event' is not a GitHub webhook event"),
    ]
    for event, payload, message in cases:
        resp = deliver_webhook(receiver, event, payload, secret=SECRET, delivery=delivery)
        assert resp.status_code == 400 and message in resp.json()["error"], resp.text
    body = b"{not json"
    resp = httpx.post(
        receiver, content=body, timeout=10,
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery,
                 "X-Hub-Signature-256": sign_webhook(body, SECRET)},
    )  # fmt: skip
    assert (resp.status_code, resp.json()["error"]) == (400, "the body is not JSON")
    assert captured == []
    # none of them took the id: the real delivery with it goes through
    good = deliver_webhook(receiver, "issues", _issue_labelled(), secret=SECRET, delivery=delivery)
    assert good.status_code == 202 and len(captured) == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "garbage"])
def test_missing_or_wrong_signature_is_401(
    receiver: str, captured: list[dict[str, Any]], signature: str | None
) -> None:
    resp = deliver_webhook(receiver, "issues", _issue_labelled(), secret=None, signature=signature)
    assert resp.status_code == 401
    assert captured == []


def test_signed_with_another_secret_is_401(receiver: str, captured: list[dict[str, Any]]) -> None:
    resp = deliver_webhook(receiver, "issues", _issue_labelled(), secret="not-the-secret")
    assert resp.status_code == 401 and captured == []


def test_replayed_delivery_is_409(receiver: str, captured: list[dict[str, Any]]) -> None:
    delivery = str(uuid.uuid4())
    first = deliver_webhook(receiver, "issues", _issue_labelled(), secret=SECRET, delivery=delivery)
    again = deliver_webhook(receiver, "issues", _issue_labelled(), secret=SECRET, delivery=delivery)
    assert (first.status_code, again.status_code) == (202, 409)
    assert len(captured) == 1


async def test_delivery_logs_remember_and_forget() -> None:
    memory = MemoryDeliveryLog(size=2)
    assert await memory.first_time("a") and await memory.first_time("b")
    assert not await memory.first_time("a")
    assert await memory.first_time("c")  # evicts "a" (size 2)
    assert await memory.first_time("a")
    short = MemoryDeliveryLog(ttl=timedelta(seconds=0.2))
    assert await short.first_time("x") and not await short.first_time("x")
    await asyncio.sleep(0.3)
    assert await short.first_time("x")


async def test_redis_delivery_log_is_shared(redis_url: str) -> None:
    delivery = str(uuid.uuid4())
    one, two = RedisDeliveryLog(redis_url), RedisDeliveryLog(redis_url)
    assert await one.first_time(delivery)
    assert not await two.first_time(delivery)


def test_body_over_the_cap_is_413_before_it_is_read(captured: list[dict[str, Any]]) -> None:
    app = create_app(SECRET, emit=lambda **event: captured.append(event), max_body=4096)
    with _Server(app) as url:
        port = int(url.split(":")[2].split("/")[0])
        # A declared 30 MB body: answered at once, without waiting for (or reading) the body.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-GitHub-Event: issues\r\nX-GitHub-Delivery: big-1\r\n"
                b"Content-Length: 31457280\r\n\r\n{"
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 413")

        # A streamed body without a length is cut off once it passes the cap.
        def chunks() -> Iterator[bytes]:
            yield b'{"padding": "'
            for _ in range(10):
                yield b"x" * 1024

        resp = httpx.post(url, content=chunks(), headers={"X-GitHub-Event": "issues"}, timeout=10)
        assert resp.status_code == 413
        # Signed, but over the cap: still refused.
        big = _issue_labelled()
        big["issue"]["body"] = "y" * 8000
        assert deliver_webhook(url, "issues", big, secret=SECRET).status_code == 413
    assert captured == []


def test_failed_emit_gives_the_delivery_back_for_redelivery() -> None:
    emitted: list[dict[str, Any]] = []
    failures = [RuntimeError("EventTooLarge")]

    def emit(**event: Any) -> None:
        if failures:
            raise failures.pop()
        emitted.append(event)

    with _Server(create_app(SECRET, emit=emit)) as url:
        delivery = str(uuid.uuid4())
        sent = [
            deliver_webhook(url, "issues", _issue_labelled(), secret=SECRET, delivery=delivery)
            for _ in range(3)
        ]
    assert [r.status_code for r in sent] == [503, 202, 409]
    assert "redeliver" in sent[0].json()["error"]
    assert len(emitted) == 1


def test_large_signed_delivery_is_trimmed_to_what_the_event_needs(
    receiver: str, captured: list[dict[str, Any]]
) -> None:
    import json

    from fleetwright.integrations.webhooks import MAX_TEXT

    big = webhook_payload(
        "issue_comment", action="created", repository={"full_name": "octo/demo"},
        issue={"number": 7, "title": "t" * 300_000,
               "body": "profiles: shop-de-1\n" + "z" * 5_000_000},
        comment={"body": "c" * 1_000_000},
    )  # fmt: skip
    resp = deliver_webhook(receiver, "issue_comment", big, secret=SECRET)
    assert resp.status_code == 202, resp.text
    [event] = captured
    assert event["payload"]["profiles"] == ["shop-de-1"]
    for text in (event["payload"]["issue"]["body"], event["payload"]["issue"]["title"],
                 event["payload"]["comment"]):  # fmt: skip
        assert len(text) <= MAX_TEXT + 20 and text.endswith("…[trimmed]")
    assert len(json.dumps(event, default=str)) < 4 * MAX_TEXT


def test_replay_window_survives_a_restart_with_redis(redis_url: str) -> None:
    delivery = str(uuid.uuid4())
    codes = []
    for _ in range(2):  # two receivers one after the other: a restart
        app = create_app(SECRET, deliveries=RedisDeliveryLog(redis_url), emit=lambda **e: None)
        with _Server(app) as url:
            resp = deliver_webhook(
                url, "issues", _issue_labelled(), secret=SECRET, delivery=delivery
            )
            codes.append(resp.status_code)
    assert codes == [202, 409]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_replay_window_survives_a_restart_with_the_catalogue(
    home: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    delivery, failing = str(uuid.uuid4()), str(uuid.uuid4())
    failures = [RuntimeError("EventTooLarge")]

    def emit(**event: Any) -> None:
        if event["id"] == uuid.UUID(failing) and failures:
            raise failures.pop()

    codes = []
    for _ in range(2):  # two receivers one after the other on the same catalogue: a restart
        app = create_app(SECRET, deliveries=CatalogueDeliveryLog(url), emit=emit)
        with _Server(app) as hook:
            for d in (delivery, failing):
                resp = deliver_webhook(hook, "issues", _issue_labelled(), secret=SECRET, delivery=d)
                codes.append(resp.status_code)
    # first receiver: accepted, emit failed (id given back); after the restart: a replay,
    # and the failed one's redelivery goes through
    assert codes == [202, 503, 409, 202]


async def test_catalogue_delivery_log_claims_once_and_forgets_after_the_window(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetwright.integrations import webhooks

    one, two = CatalogueDeliveryLog(), CatalogueDeliveryLog()
    ids = [str(uuid.uuid4()) for _ in range(20)]
    results = await asyncio.gather(*(log.claim(d) for d in ids for log in (one, two)))
    assert sum(results) == len(ids)  # each id claimed by exactly one of two receivers
    short = CatalogueDeliveryLog(ttl=timedelta(seconds=1))
    monkeypatch.setattr(webhooks, "_CLAIM_TTL", timedelta(seconds=1))
    assert await short.first_time("win-1") and not await short.first_time("win-1")
    assert await short.claim("claim-1")  # claimed, never confirmed: a dead receiver
    await asyncio.sleep(1.5)
    assert await short.first_time("win-1") and await short.claim("claim-1")
    await short.release("claim-1")
    assert await short.claim("claim-1")


def test_profiles_named() -> None:
    assert profiles_named("profile: a\n- profiles: b, c\nnothing") == ["a", "b", "c"]
    assert profiles_named(None) == []


async def _serve(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`fleetwright webhooks serve` as its own process, once it answers /healthz."""
    code = "from fleetwright.cli.webhooks import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--secret-env", "FW_TEST_WEBHOOK_SECRET",
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
    proc.terminate()
    raise AssertionError("webhooks serve did not answer")


@pytest.mark.prefect
async def test_webhooks_serve_emits_prefect_events_and_a_restart_still_refuses_replays(
    prefect_api: str, home: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter

    port = _free_port()
    env = {**os.environ, "FW_TEST_WEBHOOK_SECRET": SECRET}
    env.pop("FLEETWRIGHT_REDIS_URL", None)  # the default store: the catalogue
    url = f"http://127.0.0.1:{port}/github"
    delivery = str(uuid.uuid4())
    proc = await _serve(port, env)
    try:
        bad = await asyncio.to_thread(
            deliver_webhook, url, "issues", _issue_labelled(), secret="wrong"
        )
        assert bad.status_code == 401
        good = await asyncio.to_thread(
            deliver_webhook, url, "issues", _issue_labelled(), secret=SECRET, delivery=delivery
        )
        assert good.status_code == 202
        events: list[Any] = []
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            async with get_client() as client:
                page = await client.read_events(
                    filter=EventFilter(id=EventIDFilter(id=[uuid.UUID(delivery)])), limit=5
                )
            events = page.events
            await asyncio.sleep(0.3)
        assert len(events) == 1
        assert events[0].event == "fleetwright.github.issues"
        assert events[0].resource["github.label"] == "recheck"
        assert events[0].payload["profiles"] == ["shop-de-1", "shop-fr-2"]
        assert events[0].payload["issue"]["labels"] == ["bug", "recheck"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert b"delivery ids kept in the catalogue" in out
    proc = await _serve(port, env)  # restarted: the same delivery is still a replay
    try:
        again = await asyncio.to_thread(
            deliver_webhook, url, "issues", _issue_labelled(), secret=SECRET, delivery=delivery
        )
        assert again.status_code == 409, again.text
    finally:
        proc.terminate()
        proc.wait(10)

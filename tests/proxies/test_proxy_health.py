"""Health probes against real tinyproxy/microsocks, error scores, quarantine and recovery."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy, utcnow
from fleetwright.errors import ProbeEndpointError, ProxyAuthError, ProxyError
from fleetwright.proxies.health import (
    HealthPolicy,
    due_for_probe,
    probe,
    record_probe_result,
    report_session_result,
    try_probe,
)
from fleetwright.specs import ProxySpec
from fleetwright.testing.proxies import IPEchoServer, MicroSocks, TinyProxy, free_port

FAST = timedelta(seconds=3)


async def test_http_probe_goes_through_tinyproxy(tinyproxy: TinyProxy, echo: IPEchoServer) -> None:
    before = echo.hits["127.0.0.2"]
    result = await probe(
        tinyproxy.spec("tiny"), echo_url=echo.ip_url, info_url=echo.info_url, timeout=FAST
    )
    assert result.ok and result.exit_ip == "127.0.0.2"
    assert (result.country, result.timezone) == ("DE", "Europe/Berlin")
    assert result.latency_ms is not None and result.latency_ms > 0
    assert echo.hits["127.0.0.2"] == before + 2
    assert "GET http://127.0.0.1" in tinyproxy.log_text()


async def test_socks5_probe_goes_through_microsocks(
    microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    result = await probe(microsocks.spec("socks"), echo_url=echo.ip_url, timeout=FAST)
    assert result.ok and result.exit_ip == "127.0.0.3"


async def test_wrong_credentials_are_an_auth_error(
    tinyproxy: TinyProxy, microsocks: MicroSocks, echo: IPEchoServer
) -> None:
    for server in (tinyproxy, microsocks):
        spec = server.spec("p").model_copy(update={"password": "wrong-password"})
        with pytest.raises(ProxyAuthError, match="refused the credentials for user 'fleet'") as e:
            await probe(spec, echo_url=echo.ip_url, timeout=FAST)
        assert "wrong-password" not in str(e.value)
        assert not e.value.retryable
    anonymous = tinyproxy.spec("anon").model_copy(update={"username": None, "password": None})
    with pytest.raises(ProxyAuthError, match="407"):
        await probe(anonymous, echo_url=echo.ip_url, timeout=FAST)


async def test_unreachable_proxy_and_garbage_echo(tinyproxy: TinyProxy, echo: IPEchoServer) -> None:
    dead = tinyproxy.spec("dead").model_copy(update={"port": free_port()})
    with pytest.raises(ProxyError, match="unreachable") as e:
        await probe(dead, echo_url=echo.ip_url, timeout=FAST)
    assert e.value.retryable and "tiny-secret" not in str(e.value)
    with pytest.raises(ProxyError, match=r"IP-echo endpoint .* answered garbage"):
        await probe(tinyproxy.spec("tiny"), echo_url=echo.garbage_url, timeout=FAST)
    with pytest.raises(ProxyError, match=r"IP-info endpoint .* answered garbage"):
        await probe(
            tinyproxy.spec("tiny"),
            echo_url=echo.ip_url,
            info_url=echo.garbage_url,
            timeout=FAST,
        )
    failed = await try_probe(tinyproxy.spec("tiny"), echo_url=echo.garbage_url, timeout=FAST)
    assert not failed.ok and failed.error and "garbage" in failed.error


async def test_quarantine_backoff_and_recovery_with_a_stopped_proxy(
    db: str, rows: Any, tinyproxy: TinyProxy, echo: IPEchoServer
) -> None:
    policy = HealthPolicy(threshold=1.5, backoff=timedelta(seconds=30))
    with session_scope(db) as s:
        proxy_id = rows.proxy(s, "tiny", port=tinyproxy.port, username="fleet").id
    spec = tinyproxy.spec("tiny")
    now = utcnow()

    async def check(at: Any) -> Any:
        result = await try_probe(spec, echo_url=echo.ip_url, timeout=FAST)
        change = record_probe_result(
            proxy_id, result, url=db, now=at, policy=policy, emit_events=False
        )
        with session_scope(db) as s:
            return result, change, s.get(Proxy, proxy_id)

    result, change, row = await check(now)
    assert result.ok and change is None and row.health == "healthy"
    assert row.last_exit_ip == "127.0.0.2" and row.last_latency_ms is not None

    tinyproxy.stop()
    result, change, row = await check(now + timedelta(seconds=1))
    assert not result.ok and change is None and row.health == "failing"
    assert row.error_score == pytest.approx(1.0, abs=0.01) and "unreachable" in row.last_error
    result, change, row = await check(now + timedelta(seconds=2))
    assert change is not None and change.kind == "quarantined"
    assert change.event == "fleetwright.proxy.quarantined"
    assert row.health == "quarantined" and row.quarantine_count == 1
    first_until = row.quarantined_until
    assert first_until == now + timedelta(seconds=32)

    with session_scope(db) as s:  # backing off: not due yet, then due
        assert [p.name for p in due_for_probe(s, now=now + timedelta(seconds=10))] == []
        assert [p.name for p in due_for_probe(s, now=first_until)] == ["tiny"]
        assert [p.name for p in due_for_probe(s, names=["tiny"], now=now)] == ["tiny"]

    result, change, row = await check(first_until)  # re-probe fails: back-off doubles
    assert change is None and row.quarantine_count == 2
    assert row.quarantined_until == first_until + timedelta(seconds=60)

    tinyproxy.start()
    result, change, row = await check(row.quarantined_until)
    assert result.ok and change is not None and change.kind == "recovered"
    assert row.health == "healthy" and row.error_score == 0.0
    assert row.quarantined_until is None and row.quarantine_count == 0


def test_session_failures_raise_the_score_and_it_decays(db: str, rows: Any) -> None:
    policy = HealthPolicy(threshold=1.0, session_failure=0.6, half_life=timedelta(minutes=1))
    with session_scope(db) as s:
        proxy_id = rows.proxy(s, "flaky", port=1).id
    t0 = utcnow()
    kw: dict[str, Any] = {"url": db, "policy": policy, "emit_events": False}
    assert report_session_result(proxy_id, False, "net::ERR_TIMED_OUT", now=t0, **kw) is None
    # two minutes later the 0.6 has decayed to 0.15; one more failure stays below 1.0
    assert report_session_result(proxy_id, False, "x", now=t0 + timedelta(minutes=2), **kw) is None
    with session_scope(db) as s:
        row = s.get(Proxy, proxy_id)
        assert row is not None and row.error_score == pytest.approx(0.75, abs=0.01)
    change = report_session_result(
        proxy_id, False, "http://u:pw@x/ failed", now=t0 + timedelta(minutes=2), **kw
    )
    assert change is not None and change.kind == "quarantined"
    with session_scope(db) as s:
        row = s.execute(select(Proxy).where(Proxy.id == proxy_id)).scalar_one()
        assert row.health == "quarantined" and row.last_error == "http://u:***@x/ failed"
    # a successful session does not lift a quarantine: only a probe does
    assert report_session_result(proxy_id, True, now=t0 + timedelta(minutes=3), **kw) is None
    with session_scope(db) as s:
        assert s.get(Proxy, proxy_id).health == "quarantined"  # type: ignore[union-attr]


async def test_a_failing_endpoint_is_not_blamed_on_the_proxy(
    db: str, rows: Any, tinyproxy: TinyProxy, echo: IPEchoServer
) -> None:
    down = f"http://127.0.0.1:{free_port()}/ip"  # nothing listens there
    with pytest.raises(ProbeEndpointError, match=r"fails directly too.*'tiny'.*not judged"):
        await probe(tinyproxy.spec("tiny"), echo_url=down, timeout=FAST)
    with pytest.raises(ProbeEndpointError, match=r"IP-echo endpoint .* fails directly too"):
        await probe(tinyproxy.spec("tiny"), echo_url=echo.garbage_url, timeout=FAST)
    with session_scope(db) as s:
        proxy_id = rows.proxy(s, "tiny", port=tinyproxy.port, username="fleet").id
    for _ in range(5):
        result = await try_probe(tinyproxy.spec("tiny"), echo_url=down, timeout=FAST)
        assert not result.ok and result.endpoint_failed
        assert record_probe_result(proxy_id, result, url=db, emit_events=False) is None
    with session_scope(db) as s:
        row = s.get(Proxy, proxy_id)
        assert row.health != "quarantined" and not row.error_score


async def test_a_proxy_answering_errors_is_blamed_when_the_endpoint_works(
    echo: IPEchoServer,
) -> None:
    """A broken proxy that answers 502 to everything, while the echo endpoint works directly."""

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spec = ProxySpec(name="broken", scheme="http", host="127.0.0.1", port=port)
    try:
        result = await try_probe(spec, echo_url=echo.ip_url, timeout=FAST)
    finally:
        server.close()
    assert not result.ok and not result.endpoint_failed
    assert result.error and "'broken'" in result.error and "HTTP 502" in result.error


def test_refused_credentials_in_a_session_weigh_as_much_as_a_probes(db: str, rows: Any) -> None:
    policy = HealthPolicy()
    with session_scope(db) as s:
        proxy_id = rows.proxy(s, "wrong-pw", port=1).id
    change = report_session_result(
        proxy_id, False, "proxy refused the credentials", url=db, policy=policy,
        emit_events=False, auth_failed=True,
    )  # fmt: skip
    with session_scope(db) as s:
        row = s.get(Proxy, proxy_id)
        assert row is not None and row.error_score == pytest.approx(policy.auth_failure, abs=0.01)
    assert policy.auth_failure > policy.session_failure
    assert change is not None and change.kind == "quarantined"

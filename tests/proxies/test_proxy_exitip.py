"""Exit-IP consistency: lookup through real proxies, warn/refuse on mismatch, history rows."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import ExitIP, Proxy
from fleetwright.errors import ProxyError
from fleetwright.proxies.exitip import compare_exit, verify_exit_ip
from fleetwright.proxies.http import IPInfo
from fleetwright.testing.proxies import IPEchoServer, MicroSocks, TinyProxy


def _history(db: str, profile_id: int) -> list[tuple[str, str | None, int | None]]:
    with session_scope(db) as s:
        rows = s.execute(select(ExitIP).where(ExitIP.profile_id == profile_id).order_by(ExitIP.id))
        return [(r.ip, r.country, r.proxy_id) for r in rows.scalars()]


async def test_matching_exit_is_recorded(
    db: str, rows: Any, tinyproxy: TinyProxy, echo: IPEchoServer
) -> None:
    with session_scope(db) as s:
        proxy = rows.proxy(s, "tiny", port=tinyproxy.port)
        profile = rows.profile(
            s,
            "berlin",
            country="DE",
            ip_check="refuse",
            fingerprint={"timezone": "Europe/Paris", "locale": "de-DE"},  # same offset
        )
        ids = (profile.id, proxy.id)
    check = await verify_exit_ip(*ids, tinyproxy.spec("tiny"), info_url=echo.info_url, url=db)
    assert check is not None and check.ok
    assert (check.ip, check.country, check.timezone) == ("127.0.0.2", "DE", "Europe/Berlin")
    assert _history(db, ids[0]) == [("127.0.0.2", "DE", ids[1])]
    with session_scope(db) as s:
        row = s.get(Proxy, ids[1])
        assert row is not None and (row.last_exit_ip, row.last_country) == ("127.0.0.2", "DE")


async def test_mismatch_refuses_or_warns(
    db: str,
    rows: Any,
    microsocks: MicroSocks,
    echo: IPEchoServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_scope(db) as s:
        proxy = rows.proxy(s, "socks", scheme="socks5", port=microsocks.port)
        strict = rows.profile(s, "strict", country="DE", ip_check="refuse")
        lenient = rows.profile(
            s, "lenient", ip_check="warn", fingerprint={"timezone": "Europe/Berlin"}
        )
        off = rows.profile(s, "off", country="DE")
        ids = {"strict": strict.id, "lenient": lenient.id, "off": off.id, "proxy": proxy.id}
    spec = microsocks.spec("socks")
    with pytest.raises(ProxyError, match="country DE expected, the exit is in US") as e:
        await verify_exit_ip(ids["strict"], ids["proxy"], spec, info_url=echo.info_url, url=db)
    assert not e.value.retryable and "'strict'" in e.value.message
    assert _history(db, ids["strict"]) == [("127.0.0.3", "US", ids["proxy"])]  # kept anyway

    with caplog.at_level(logging.WARNING, logger="fleetwright.proxies.exitip"):
        check = await verify_exit_ip(
            ids["lenient"], ids["proxy"], spec, info_url=echo.info_url, url=db
        )
    assert check is not None and not check.ok
    assert "timezone Europe/Berlin" in check.mismatches[0]
    assert "America/New_York" in caplog.text
    assert _history(db, ids["lenient"]) == [("127.0.0.3", "US", ids["proxy"])]

    hits = echo.hits
    off_check = await verify_exit_ip(ids["off"], ids["proxy"], spec, info_url=echo.info_url, url=db)
    assert off_check is None and echo.hits == hits and _history(db, ids["off"]) == []


async def test_garbage_info_endpoint(
    db: str, rows: Any, tinyproxy: TinyProxy, echo: IPEchoServer
) -> None:
    with session_scope(db) as s:
        proxy = rows.proxy(s, "tiny", port=tinyproxy.port)
        refuse = rows.profile(s, "r", country="DE", ip_check="refuse")
        warn = rows.profile(s, "w", country="DE", ip_check="warn")
        ids = (refuse.id, warn.id, proxy.id)
    spec = tinyproxy.spec("tiny")
    with pytest.raises(ProxyError, match=r"IP-info endpoint .* answered garbage"):
        await verify_exit_ip(ids[0], ids[2], spec, info_url=echo.garbage_url, url=db)
    assert await verify_exit_ip(ids[1], ids[2], spec, info_url=echo.garbage_url, url=db) is None


def test_compare_exit_rules() -> None:
    from fleetwright.catalogue.models import Profile

    plain = Profile(name="p", country=None, fingerprint={"timezone": "UTC"})
    assert compare_exit(plain, IPInfo(ip="1.2.3.4", country="JP", timezone="Asia/Tokyo")) == []
    de = Profile(name="d", country="de", fingerprint={"timezone": "Europe/Berlin"})
    assert compare_exit(de, IPInfo(ip="1.2.3.4", country="DE", timezone="Europe/Vienna")) == []
    problems = compare_exit(de, IPInfo(ip="1.2.3.4", country=None, timezone="Asia/Tokyo"))
    assert len(problems) == 2 and "did not tell the exit country" in problems[0]

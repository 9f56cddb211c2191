"""`proxy check`, the check-proxies flow, and quarantine events on a real Prefect server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy
from fleetwright.errors import NotFoundError, ValidationError
from fleetwright.proxies.health import HealthPolicy, record_probe_result, try_probe
from fleetwright.testing.proxies import IPEchoServer, MicroSocks, TinyProxy, free_port

FAST = timedelta(seconds=3)


def test_check_command_live_table(
    home: Path, rows: Any, echo: IPEchoServer, tmp_path: Path
) -> None:
    from fleetwright.cli.proxy_check import check_command

    with TinyProxy(username=None, password=None, workdir=tmp_path) as open_proxy:
        with session_scope() as s:
            rows.proxy(s, "open", port=open_proxy.port)
            rows.proxy(s, "dead", port=free_port())
        console = Console(record=True, width=220, force_terminal=False)
        code = check_command(
            all_=True, echo_url=echo.ip_url, info_url=echo.info_url, timeout=FAST, console=console
        )
    out = console.export_text()
    assert code == 1
    assert "127.0.0.2" in out and "DE" in out and "healthy" in out
    assert "unreachable" in out and "1 ok, 1 failed" in out
    with session_scope() as s:
        dead = s.query(Proxy).filter(Proxy.name == "dead").one()
        assert dead.health == "failing" and dead.error_score == pytest.approx(1.0, abs=0.01)

    with pytest.raises(ValidationError, match="or pass --all"):
        check_command(console=console)
    with pytest.raises(ValidationError, match="not both"):
        check_command(["open"], all_=True, console=console)
    with pytest.raises(NotFoundError, match="unknown proxy nope"):
        check_command(["nope"], console=console)


async def _events(
    resource_id: str, name: str, *, wait: timedelta = timedelta(seconds=20)
) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    async with get_client() as client:
        while True:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[name]),
                    resource=EventResourceFilter(id=[resource_id]),
                ),
                limit=10,
            )
            if page.events or asyncio.get_running_loop().time() > deadline:
                return list(page.events)
            await asyncio.sleep(0.5)


@pytest.mark.prefect
async def test_quarantine_and_recovery_events(
    prefect_api: str, home: Path, rows: Any, echo: IPEchoServer, tmp_path: Path
) -> None:
    name = f"evt-{uuid.uuid4().hex[:6]}"
    policy = HealthPolicy(threshold=1.0)
    with TinyProxy(workdir=tmp_path) as server:
        with session_scope() as s:
            proxy_id = rows.proxy(s, name, port=server.port, username=server.username).id
        spec = server.spec(name)
        server.stop()
        failed = await try_probe(spec, echo_url=echo.ip_url, timeout=FAST)
        change = record_probe_result(proxy_id, failed, policy=policy)
        assert change is not None and change.kind == "quarantined"
        server.start()
        passed = await try_probe(spec, echo_url=echo.ip_url, timeout=FAST)
        change = record_probe_result(proxy_id, passed, policy=policy)
        assert change is not None and change.kind == "recovered"

    resource = f"fleetwright.proxy.{name}"
    quarantined = await _events(resource, "fleetwright.proxy.quarantined")
    recovered = await _events(resource, "fleetwright.proxy.recovered")
    assert len(quarantined) == 1 and len(recovered) == 1
    payload = quarantined[0].payload
    assert payload["quarantine_count"] == 1 and "unreachable" in payload["error"]
    assert quarantined[0].resource["prefect.resource.name"] == name
    assert server.password not in str(payload)


@pytest.mark.prefect
async def test_check_proxies_flow(
    prefect_api: str,
    home: Path,
    rows: Any,
    echo: IPEchoServer,
    tinyproxy: TinyProxy,
    microsocks: MicroSocks,
) -> None:
    from prefect.client.orchestration import get_client

    from fleetwright.blocks.proxy import Proxy as ProxyBlock
    from fleetwright.flows.check_proxies import check_proxies

    suffix = uuid.uuid4().hex[:6]
    specs = {"tiny": tinyproxy.spec(f"tiny-{suffix}"), "socks": microsocks.spec(f"socks-{suffix}")}
    with session_scope() as s:
        for key, spec in specs.items():
            block_name = f"proxy-{key}-{suffix}"
            await ProxyBlock.from_spec(spec).asave(block_name)
            rows.proxy(
                s,
                spec.name,
                scheme=spec.scheme,
                port=spec.port,
                username=spec.username,
                secret_ref=block_name,
            )
        rows.proxy(
            s,
            f"nosecret-{suffix}",
            port=tinyproxy.port,
            username="fleet",
            secret_ref=f"missing-{suffix}",
        )
        quarantined = rows.proxy(s, f"waiting-{suffix}", port=free_port())
        quarantined.health = "quarantined"
        from fleetwright.catalogue.models import utcnow

        quarantined.quarantined_until = utcnow() + timedelta(hours=1)

    result = await check_proxies(echo_url=echo.ip_url, info_url=echo.info_url, timeout=FAST)
    by_name = {r["proxy"]: r for r in result}
    assert f"waiting-{suffix}" not in by_name  # still backing off
    assert by_name[specs["tiny"].name]["exit_ip"] == "127.0.0.2"
    assert by_name[specs["socks"].name]["exit_ip"] == "127.0.0.3"
    assert by_name[specs["socks"].name]["country"] == "US"
    assert not by_name[f"nosecret-{suffix}"]["ok"]
    assert "block" in by_name[f"nosecret-{suffix}"]["error"]
    for row in result:
        assert tinyproxy.password not in str(row) and microsocks.password not in str(row)

    async with get_client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["proxy-health"]))
        )
    assert artifacts and any(specs["tiny"].name in str(a.data) for a in artifacts)
    assert all(tinyproxy.password not in str(a.data) for a in artifacts)


async def test_demo_site_ip_page_works_as_echo(tinyproxy: TinyProxy) -> None:
    from fleetwright.proxies.health import probe
    from fleetwright.testing.site import serve_site

    with serve_site() as site:
        result = await probe(tinyproxy.spec("tiny"), echo_url=f"{site.url}/ip", timeout=FAST)
    assert result.exit_ip == "127.0.0.2"

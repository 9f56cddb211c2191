"""The `check-proxies` flow: probe every due proxy (or the named ones), record health,
quarantine or recover, and publish a table artifact. Deploy it on a schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from fleetwright.blocks.proxy import Proxy as ProxyBlock
from fleetwright.errors import NotFoundError
from fleetwright.proxies.checker import ProxyTarget
from fleetwright.settings import get_settings
from fleetwright.tasks.proxies import probe_proxy, select_proxies_to_check

__all__ = ["check_proxies"]


async def _block_for(target: ProxyTarget) -> ProxyBlock:
    if not target.secret_ref:
        return ProxyBlock(
            name=target.name,
            scheme=target.scheme,
            host=target.host,
            port=target.port,
            username=target.username,
        )
    try:
        block: ProxyBlock = await ProxyBlock.aload(target.secret_ref)
    except ValueError:
        raise NotFoundError(
            f"proxy {target.name!r}: its Proxy block {target.secret_ref!r} is missing; "
            "add the proxy again to store its credentials"
        ) from None
    return block.model_copy(update={"name": target.name})


@flow(name="check-proxies")
async def check_proxies(
    names: list[str] | None = None,
    echo_url: str | None = None,
    info_url: str | None = None,
    concurrency: int = 8,
    timeout: timedelta = timedelta(seconds=10),
) -> list[dict[str, Any]]:
    """Probe proxies at most `concurrency` at a time; names=None means every due proxy."""
    logger = get_run_logger()
    settings = get_settings()
    echo_url = echo_url or f"http://127.0.0.1:{settings.demo_site_port}/ip"
    catalogue_url = settings.catalogue_url
    targets = select_proxies_to_check(names, catalogue_url=catalogue_url)
    gate = asyncio.Semaphore(max(concurrency, 1))

    async def one(target: ProxyTarget) -> dict[str, Any]:
        async with gate:
            try:
                block = await _block_for(target)
            except NotFoundError as exc:
                logger.error("%s", exc.message)
                return {"proxy": target.name, "ok": False, "error": exc.message}
            return await probe_proxy(
                block,
                proxy_id=target.id,
                echo_url=echo_url,
                info_url=info_url,
                timeout=timeout,
                catalogue_url=catalogue_url,
            )

    rows = list(await asyncio.gather(*(one(t) for t in targets)))
    failed = [r["proxy"] for r in rows if not r["ok"]]
    logger.info("Checked %d proxies: %d failed %s", len(rows), len(failed), failed or "")
    await acreate_table_artifact(
        key="proxy-health",
        table=rows or [{"proxy": "(none due)", "ok": True}],
        description=f"Proxy health: {len(rows) - len(failed)} ok, {len(failed)} failed",
    )
    return rows

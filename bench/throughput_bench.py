"""Fleet throughput: Fleetwright's `run-command` flow (one run-profile-session task run per
profile: lease, saved state, steps, save, run row; its own browser pool) ÷ a bare Playwright
script (start Playwright, launch one browser, asyncio semaphore, close), each timed end to end,
at concurrency 1, 4 and 8 on the 0 ms site and 8 on the 150 ms site, in alternating A/B rounds.

Every round is also metered for CPU (`bench.cpu`: the bench process, Playwright's driver and
Chromium, the Prefect server, the Postgres backends of the bench's databases): each throughput
figure carries `cpu_ms_per_session` of both sides, and at concurrency 8 on the 150 ms site they
make `cpu_ms_per_session` (Fleetwright's, the bare script's as baseline, by process group) and
`cpu_per_session_ratio` (per round), steadier than wall-clock ratios on shared cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from playwright.async_api import async_playwright

from bench.cpu import GROUPS, CpuMeter
from bench.fleet_common import alternate, bare_fleet, per_minute
from bench.harness import Bench
from bench.stats import Figure, ab_ratio, summary
from bench.workload import (
    BENCH_FINGERPRINT,
    bare_context_options,
    bare_launch_kwargs,
    load_bench_command,
    write_site_state,
)
from fleetwright.browser import BrowserState, StateStore

__all__ = ["CONFIGS", "FIGURES", "bare_script", "fleetwright_run", "run"]

CONFIGS: tuple[tuple[int, int], ...] = ((1, 0), (4, 0), (8, 0), (8, 150))
FIGURES = (
    *(f"throughput_ratio_c{c}_{d}ms" for c, d in CONFIGS),
    "throughput_http_proxy_ratio_c8_150ms",
    "throughput_socks5_proxy_ratio_c8_150ms",
    "cpu_ms_per_session",
    "cpu_per_session_ratio",
)
_CPU_CONFIG = (8, 150)


async def fleetwright_run(profiles: list[str], concurrency: int, base_url: str) -> float:
    """The run-command flow on `profiles`, in this process; seconds end to end."""
    from fleetwright.flows.run_command import run_command

    t0 = time.perf_counter()
    state = await run_command(
        command="bench-login",
        profiles=profiles,
        params={"base_url": base_url},
        concurrency=concurrency,
        return_state=True,
    )
    seconds = time.perf_counter() - t0
    summary = cast(dict[str, Any], await state.aresult())
    if summary["ok"] != len(profiles):
        raise RuntimeError(f"run-command: {summary['ok']} of {len(profiles)} sessions ok")
    return seconds


async def bare_script(
    profiles: list[str],
    concurrency: int,
    base_url: str,
    *,
    context_options: dict[str, Any] | None = None,
) -> float:
    """Bare Playwright: start, launch one browser, run the sessions, close; seconds."""
    t0 = time.perf_counter()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        try:
            await bare_fleet(
                browser, base_url, profiles, concurrency, context_options=context_options
            )
        finally:
            await browser.close()
    return time.perf_counter() - t0


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    n = bench.sizes.throughput_sessions
    profiles = bench.profiles(n, prefix="fleet")
    load_bench_command(bench.root / "commands")
    await fleetwright_run(profiles, 4, bench.site(0).url)  # warm-up: every profile has a state
    await bare_script(profiles, 4, bench.site(0).url)
    meter = CpuMeter(bench)
    try:
        return await _measure(bench, meter, profiles)
    finally:
        meter.close()


async def _measure(bench: Bench, meter: CpuMeter, profiles: list[str]) -> dict[str, Figure]:
    n = bench.sizes.throughput_sessions
    figures: dict[str, Figure] = {}
    for concurrency, delay in CONFIGS:
        url = bench.site(delay).url
        cpu: dict[str, list[dict[str, float]]] = {"a": [], "b": []}

        async def fleet(
            c: int = concurrency, u: str = url, spent: dict[str, list[Any]] = cpu
        ) -> float:
            before = meter.sample()
            rate = per_minute(n, await fleetwright_run(profiles, c, u))
            spent["a"].append(_per_session(meter.sample().minus(before), n))
            return rate

        async def bare(
            c: int = concurrency, u: str = url, spent: dict[str, list[Any]] = cpu
        ) -> float:
            before = meter.sample()
            rate = per_minute(n, await bare_script(profiles, c, u))
            spent["b"].append(_per_session(meter.sample().minus(before), n))
            return rate

        sides = await alternate(bench.sizes.ab_rounds, {"a": fleet, "b": bare})
        if (concurrency, delay) == _CPU_CONFIG:
            figures.update(_cpu_figures(cpu["a"], cpu["b"], n))
        figures[f"throughput_ratio_c{concurrency}_{delay}ms"] = ab_ratio(
            sides["a"],
            sides["b"],
            unit="ratio",
            a_name="fleetwright",
            b_name="bare playwright script + asyncio semaphore",
            a_unit="sessions/min",
            concurrency=concurrency,
            delay_ms=delay,
            sessions_per_round=n,
            path="run-command flow (in process) → run-profile-session task per profile → "
            "SessionEngine.run (lease, saved state, steps, save, run row)",
            cpu_ms_per_session={
                "fleetwright": _groups(cpu["a"]),
                "bare": _groups(cpu["b"]),
            },
        )
    figures["throughput_http_proxy_ratio_c8_150ms"] = await _proxied(bench, meter, "http")
    figures["throughput_socks5_proxy_ratio_c8_150ms"] = await _proxied(bench, meter, "socks5")
    return figures


async def _proxied_profiles(bench: Bench, proxy: Any, prefix: str, n: int) -> list[str]:
    """`n` profiles with BENCH_FINGERPRINT and `proxy` assigned (its password in its Proxy
    block, as `fleetwright proxy add` keeps it)."""
    from sqlalchemy import select, update

    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Profile, Proxy
    from fleetwright.registry import add_proxy
    from fleetwright.specs import Fingerprint

    profiles = bench.profiles(n, prefix=prefix)
    await add_proxy(proxy.spec(f"bench-{prefix}"))
    fingerprint = Fingerprint(**BENCH_FINGERPRINT).model_dump(mode="json")
    with session_scope() as s:
        proxy_id = s.scalar(select(Proxy.id).where(Proxy.name == f"bench-{prefix}"))
        s.execute(
            update(Profile)
            .where(Profile.name.in_(profiles))
            .values(proxy_id=proxy_id, fingerprint=fingerprint)
        )
    return profiles


@contextlib.contextmanager
def _socks_forwarder(bench: Bench, upstream: Any) -> Iterator[str]:
    """The bare side's unauthenticated local SOCKS5 forwarder (`bench.socks_forward`), in a
    process of its own as a user would run it; yields its proxy server URL."""
    from fleetwright.processes import start_process, stop_process
    from fleetwright.testing.proxies import free_port, wait_port

    port = free_port()
    env = {"FW_UPSTREAM_USER": upstream.username, "FW_UPSTREAM_PASSWORD": upstream.password}
    proc = start_process(
        [sys.executable, "-m", "bench.socks_forward", "--port", str(port),
         "--upstream", f"127.0.0.1:{upstream.port}"],
        env, log_path=bench.root / "logs" / "socks-forward.log",
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        wait_port(port)
        yield f"socks5://127.0.0.1:{port}"
    finally:
        stop_process(proc, timeout=10)


async def _exit_ip_and_state(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """From a bare context with `options`: the address the site sees it come from, and the
    storage state both sides' sessions start from: a cookie, localStorage and an IndexedDB
    database on the site's origin (`write_site_state`), as `storage_state(indexed_db=True)`
    gives it."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        try:
            context = await browser.new_context(**options)
            page = await context.new_page()
            response = await page.goto(f"{url}/ip")
            body = await response.json() if response is not None else {}
            await write_site_state(page, url, "bench", idb=True)
            state: dict[str, Any] = await context.storage_state(indexed_db=True)
        finally:
            await browser.close()
    if not _carries_prepared(state):
        raise RuntimeError("the prepared storage state lacks a cookie, localStorage or IndexedDB")
    return str(body.get("ip")), state


def _carries_prepared(storage: dict[str, Any]) -> bool:
    """Whether a storage state holds what `write_site_state` prepared: its cookie, its
    localStorage item and an IndexedDB database."""
    origins = storage.get("origins", [])
    return (
        any(c.get("name") == "fw_js" for c in storage.get("cookies", []))
        and any(i.get("name") == "fw" for o in origins for i in o.get("localStorage", []))
        and any(o.get("indexedDB") for o in origins)
    )


async def _proxied(bench: Bench, meter: CpuMeter, kind: str) -> Figure:
    """Both sides through the same proxy, with the same fingerprint: `http` (tinyproxy with
    BasicAuth: both sides give Chromium the credentials) or `socks5` (microsocks with
    username/password: Fleetwright through its own relay, the bare side through a local
    unauthenticated forwarder)."""
    from fleetwright.testing.proxies import MicroSocks, TinyProxy

    n = bench.sizes.throughput_sessions
    url = bench.site(150).url
    with contextlib.ExitStack() as stack:
        if kind == "http":
            proxy: Any = stack.enter_context(
                TinyProxy(username="bench", password="bench-proxy-pw", workdir=bench.root)
            )
            server = {
                "server": f"http://127.0.0.1:{proxy.port}",
                "username": proxy.username,
                "password": proxy.password,
            }
            exit_ip = "127.0.0.2"
        else:
            proxy = stack.enter_context(MicroSocks(username="bench", password="socks-pw"))
            server = {"server": stack.enter_context(_socks_forwarder(bench, proxy))}
            exit_ip = "127.0.0.3"
        options = bare_context_options(server)
        seen_ip, prepared = await _exit_ip_and_state(url, options)
        if seen_ip != exit_ip:
            raise RuntimeError(f"the bare side reached the site from {seen_ip}, not the proxy")
        options["storage_state"] = prepared
        profiles = await _proxied_profiles(bench, proxy, f"proxied-{kind}", n)
        await fleetwright_run(profiles, 8, url)  # warm-up
        store = StateStore()
        cpu: dict[str, list[dict[str, float]]] = {"a": [], "b": []}

        def seed() -> None:  # every Fleetwright round starts from the bare side's state
            for name in profiles:
                store.save(name, BrowserState(storage=prepared))

        def proxied_requests() -> int:  # tinyproxy logs each request; microsocks does not
            return proxy.log_text().count("Request (file descriptor") if kind == "http" else n

        async def fleet() -> float:
            await asyncio.to_thread(seed)
            before, seen = meter.sample(), proxied_requests()
            rate = per_minute(n, await fleetwright_run(profiles, 8, url))
            cpu["a"].append(_per_session(meter.sample().minus(before), n))
            if kind == "http" and proxied_requests() - seen < n:
                raise RuntimeError("Fleetwright's sessions did not go through the proxy")
            saved = await asyncio.to_thread(store.load, profiles[-1])
            if saved is None or not _carries_prepared(saved.storage):
                raise RuntimeError("Fleetwright's session did not carry the prepared state")
            return rate

        async def bare() -> float:
            before, seen = meter.sample(), proxied_requests()
            rate = per_minute(n, await bare_script(profiles, 8, url, context_options=options))
            cpu["b"].append(_per_session(meter.sample().minus(before), n))
            if kind == "http" and proxied_requests() - seen < n:
                raise RuntimeError("the bare script's sessions did not go through the proxy")
            return rate

        sides = await alternate(bench.sizes.ab_rounds, {"a": fleet, "b": bare})
    how = (
        "tinyproxy, HTTP with BasicAuth, on loopback"
        if kind == "http"
        else "microsocks with username/password; Fleetwright through its SOCKS5 relay, the "
        "bare script through bench.socks_forward (a local unauthenticated forwarder)"
    )
    return ab_ratio(
        sides["a"],
        sides["b"],
        unit="ratio",
        a_name="fleetwright",
        b_name="bare playwright script, same proxy, fingerprint and storage state as "
        "new_context options",
        a_unit="sessions/min",
        concurrency=8,
        delay_ms=150,
        sessions_per_round=n,
        proxy=how,
        fingerprint=BENCH_FINGERPRINT,
        storage_state="one prepared state (cookie, localStorage, IndexedDB on the site's "
        "origin): saved as every profile's state before each Fleetwright round, "
        "new_context(storage_state=...) on the bare side",
        cpu_ms_per_session={"fleetwright": _groups(cpu["a"]), "bare": _groups(cpu["b"])},
    )


def _per_session(spent: dict[str, float], sessions: int) -> dict[str, float]:
    return {k: round(v / sessions, 2) for k, v in spent.items()}


def _groups(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Median ms per session of each process group (and the total) over the rounds."""
    import statistics

    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in (*GROUPS, "total")}


def _cpu_figures(
    fleet: list[dict[str, float]], bare: list[dict[str, float]], sessions: int
) -> dict[str, Figure]:
    what = (
        "CPU ms per session, every process involved (bench, browser, prefect_server, "
        "postgres; site left out), concurrency 8, 150 ms site"
    )
    per_session = summary(
        [r["total"] for r in fleet],
        "ms",
        what=what,
        groups=_groups(fleet),
        sessions_per_round=sessions,
    )
    per_session["baseline"] = summary([r["total"] for r in bare], "ms") | {
        "name": "bare playwright script",
        "groups": _groups(bare),
    }
    ratio = ab_ratio(
        [r["total"] for r in fleet],
        [r["total"] for r in bare],
        unit="ratio",
        a_name="fleetwright",
        b_name="bare playwright script",
        a_unit="cpu ms/session",
        what=what,
    )
    return {"cpu_ms_per_session": per_session, "cpu_per_session_ratio": ratio}

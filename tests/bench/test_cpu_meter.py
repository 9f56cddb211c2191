"""The bench's CPU meter counts Chromium's renderers after their browser has closed.

Chromium's zygote reaps the renderers and outlives the browser for a moment; re-parented to
init, it would take every renderer's CPU with it. The meter adopts such orphans
(PR_SET_CHILD_SUBREAPER) and reaps them, so their CPU is in the `browser` group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import asyncio, json, types
import psutil
from playwright.async_api import async_playwright
from bench.cpu import CpuMeter
from bench.workload import bare_launch_kwargs

bench = types.SimpleNamespace(prefect_server_pid=None, site_pids=lambda: [], databases=[])

def renderers_ms() -> float:
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "--type=renderer" in " ".join(proc.cmdline()):
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total * 1000

async def main() -> None:
    meter = CpuMeter(bench)
    before = meter.sample()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        for _ in range(3):  # three contexts: three renderers, two already gone at the end
            context = await browser.new_context()
            page = await context.new_page()
            await page.evaluate("() => { const t = Date.now(); while (Date.now() - t < 1000) {} }")
            await context.close()
        context = await browser.new_context()
        page = await context.new_page()
        await page.evaluate("() => { const t = Date.now(); while (Date.now() - t < 1000) {} }")
        live = renderers_ms()  # the last renderer alone, still running
        await browser.close()
    spent = meter.sample().minus(before)
    subreaper = meter.subreaper
    meter.close()
    print(json.dumps({"subreaper": subreaper, "reaped": meter.reaped,
                      "browser_ms": spent["browser"], "last_renderer_ms": live}))

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER")
def test_renderers_cpu_is_counted_after_the_browser_closes() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["subreaper"] is True
    assert seen["reaped"] >= 1, seen  # Chromium's orphans came back to the meter
    # four renderers, each busy for a second: what they spent is in the browser group (without
    # the reaping this group held 1.7 s where the renderers alone had spent about 4 s)
    assert seen["last_renderer_ms"] >= 800, seen
    assert seen["browser_ms"] >= 4 * 0.8 * seen["last_renderer_ms"], seen

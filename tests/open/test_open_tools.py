"""External tools drive an opened profile over CDP; the next run of the profile reads what
they left: a Playwright script and a Puppeteer script, each a process of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

PLAYWRIGHT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from playwright.sync_api import sync_playwright

    ws, base, value = sys.argv[1:4]
    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(ws)
        context = browser.contexts[0]
        page = context.new_page()
        page.goto(base + "/storage")
        context.add_cookies([{"name": "fw_js", "value": value, "url": base,
                              "expires": time.time() + 86400}])
        page.evaluate('''async (value) => {
          localStorage.setItem("fw", value);
          await new Promise((resolve, reject) => {
            const open = indexedDB.open("fw", 1);
            open.onupgradeneeded = () => open.result.createObjectStore("kv");
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const tx = open.result.transaction("kv", "readwrite");
              tx.objectStore("kv").put(value, "fw");
              tx.oncomplete = () => { open.result.close(); resolve(); };
            };
          });
        }''', value)
        print(context.cookies(base)[0]["value"])
        browser.close()  # over CDP this disconnects; the profile stays open
    """
)

PUPPETEER_SCRIPT = textwrap.dedent(
    """
    const puppeteer = require("puppeteer-core");
    const [ws, base, value] = process.argv.slice(2);
    (async () => {
      const browser = await puppeteer.connect({browserWSEndpoint: ws});
      const page = await browser.newPage();
      await page.goto(base + "/storage");
      await page.setCookie({name: "fw_js", value, url: base,
                            expires: Math.floor(Date.now() / 1000) + 86400});
      await page.evaluate(async (value) => {
        localStorage.setItem("fw", value);
        await new Promise((resolve, reject) => {
          const open = indexedDB.open("fw", 1);
          open.onupgradeneeded = () => open.result.createObjectStore("kv");
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const tx = open.result.transaction("kv", "readwrite");
            tx.objectStore("kv").put(value, "fw");
            tx.oncomplete = () => { open.result.close(); resolve(); };
          };
        });
      }, value);
      console.log((await page.cookies(base))[0].value);
      await browser.close();  // Browser.close: the browser exits, the profile is saved
    })().catch((e) => { console.error(e); process.exit(1); });
    """
)


@pytest.fixture(scope="module")
def puppeteer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """puppeteer-core from npm in a folder of the test's own (it downloads no browser)."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed; Node.js and npm are needed for the Puppeteer test")
    folder = tmp_path_factory.mktemp("puppeteer")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "puppeteer-core@24"],
        cwd=folder, check=True, capture_output=True, timeout=300,
        env={**__import__("os").environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
    )  # fmt: skip
    return folder


@pytest.mark.parametrize("mode", ["storage", "persistent"])
def test_playwright_over_cdp_then_run_reads_it(
    mode: str, make_profile, open_profile_proc, read_back, site, fleetwright, tmp_path: Path
) -> None:
    name = make_profile(f"pw-{mode}", state_mode=mode)
    opener = open_profile_proc(name)
    assert opener.ws.startswith("ws://127.0.0.1:")
    assert opener.opened["state_mode"] == mode

    # one opener per profile: a second open fails in one line, naming the holder
    second = fleetwright("profile", "open", name)
    assert second.returncode == 2
    assert f"profile {name!r} is in use by open:" in second.stderr
    assert opener.opened["holder"] in second.stderr
    assert "Traceback" not in second.stderr

    script = tmp_path / "tool.py"
    script.write_text(PLAYWRIGHT_SCRIPT)
    tool = subprocess.run(
        [sys.executable, str(script), opener.ws, site.url, f"pw-{mode}-value"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert tool.returncode == 0, tool.stderr
    assert tool.stdout.strip() == f"pw-{mode}-value"

    closed = fleetwright("profile", "close", name)
    assert closed.returncode == 0, closed.stderr
    assert "state saved as version 1" in closed.stdout
    code, result, err = opener.finish()
    assert code == 0, err
    assert result["outcome"] == "saved" and result["reason"] == "requested"
    assert result["saved_version"] == 1

    assert read_back(name) == {
        "cookie": f"pw-{mode}-value", "local": f"pw-{mode}-value", "idb": f"pw-{mode}-value"
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["storage", "persistent"])
def test_puppeteer_closes_the_browser_then_run_reads_it(
    mode: str, make_profile, open_profile_proc, read_back, site, puppeteer_dir: Path
) -> None:
    name = make_profile(f"pp-{mode}", state_mode=mode)
    opener = open_profile_proc(name)
    script = puppeteer_dir / "tool.js"
    script.write_text(PUPPETEER_SCRIPT)
    tool = subprocess.run(
        ["node", str(script), opener.ws, site.url, f"pp-{mode}-value"],
        capture_output=True, text=True, timeout=120, cwd=puppeteer_dir,
    )  # fmt: skip
    assert tool.returncode == 0, tool.stderr
    assert tool.stdout.strip() == f"pp-{mode}-value"

    code, result, err = opener.finish()  # the browser was closed: the opener saves and exits
    assert code == 0, err
    assert result["outcome"] == "saved" and result["reason"] == "browser-closed"

    assert read_back(name) == {
        "cookie": f"pp-{mode}-value", "local": f"pp-{mode}-value", "idb": f"pp-{mode}-value"
    }  # fmt: skip


def test_timeout_closes_and_saves_and_bad_input_is_one_line(
    make_profile, open_profile_proc, fleetwright
) -> None:
    name = make_profile("timed")
    opener = open_profile_proc(name, "--timeout", "2")
    code, result, err = opener.finish()
    assert code == 0, err
    assert result["reason"] == "timeout" and result["outcome"] == "saved"
    assert result["saved_version"] == 1

    for args, message in [
        (("profile", "open", "a/b"), "path separator"),
        (("profile", "open", "ghost"), "unknown profile 'ghost'"),
        (("profile", "open", name, "--timeout", "0"), "--timeout must be positive"),
        (("profile", "close", name), f"profile {name!r} is not open on this machine"),
    ]:
        bad = fleetwright(*args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr

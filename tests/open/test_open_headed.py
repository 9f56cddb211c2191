"""A headed profile for a person: under a virtual display (Xvfb, started here), with a
screenshot of the display showing the profile's window."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An Xvfb display of our own (it picks a free display number and tells us)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); headed mode needs a display")
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number.isdigit(), "Xvfb did not report its display"
    display = f":{number}"
    monkeypatch.setenv("DISPLAY", display)
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_headed_under_xvfb_with_a_screenshot(
    xvfb: str, make_profile, open_profile_proc, fleetwright, site, tmp_path: Path
) -> None:
    from PIL import ImageGrab
    from playwright.sync_api import sync_playwright

    name = make_profile("headed-alice", fingerprint={"viewport_width": 1000})
    opener = open_profile_proc(name, "--headed")
    assert opener.opened["headed"] is True
    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(opener.ws)
        page = browser.contexts[0].pages[0]
        page.goto(f"{site.url}/storage?write=headed-value")
        page.wait_for_selector("#status:text('ready')")
        page.evaluate("document.body.style.background = 'rgb(255, 0, 0)'")
        page.wait_for_timeout(300)  # let the window repaint before the display is grabbed
        browser.close()

    shot = ImageGrab.grab(xdisplay=xvfb)
    path = tmp_path / "headed.png"
    shot.save(path)
    assert path.stat().st_size > 0 and shot.size == (1280, 900)
    # the page's red body is on the display: the window is really there
    rgb = shot.convert("RGB")
    red = sum(
        1
        for x in range(0, 1280, 10)
        for y in range(0, 900, 10)
        if rgb.getpixel((x, y)) == (255, 0, 0)
    )
    assert red > 500, f"only {red} red sample points on the display"

    closed = fleetwright("profile", "close", name)
    assert closed.returncode == 0, closed.stderr
    code, result, err = opener.finish()
    assert code == 0 and result["outcome"] == "saved", err


def test_headed_without_a_display_is_one_line(
    make_profile, fleetwright, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = make_profile("headed-bob")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = fleetwright("profile", "open", name, "--headed")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no display for a headed browser" in result.stderr
    assert "xvfb-run" in result.stderr

"""Chromium and the Playwright driver run with an allow-listed environment: distinctive fake
secrets set in the worker's environment reach none of their processes (/proc/PID/environ)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from fleetwright.browser import BrowserPool, LaunchSpec
from fleetwright.browser.env import browser_env, driver_env
from fleetwright.browser.procs import descendants
from fleetwright.settings import Settings
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser

MARK = "fw-env-canary-7d41"
FAKE_SECRETS = {
    "GITHUB_PAT": f"ghp_{MARK}",
    "DATABASE_URL": f"postgresql://app:{MARK}@db/app",
    "PREFECT_API_AUTH_STRING": f"admin:{MARK}",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://p:{MARK}@db/prefect",
    "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://p:{MARK}@db/prefect",
    "MY_WEIRDLY_NAMED_THING": MARK,
    "HTTPS_PROXY": f"http://u:{MARK}@proxy:3128",
}


def _environ(pid: int) -> dict[str, str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(
            item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item
        )
    return {}


def _driver_pids() -> list[int]:
    """The Playwright driver processes (node running Playwright's cli.js) under this process."""
    import os

    found = []
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"run-driver" in cmdline:
                found.append(pid)
    return found


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_no_secret_reaches_the_driver_or_any_chromium_process(
    home: object, site: SiteServer, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    pool = BrowserPool(browsers=1)
    try:
        spec = LaunchSpec(profile_name=f"env-{mode}", state_mode=mode, restore_state=False)
        async with pool.session(spec) as s:
            await s.page.goto(f"{site.url}/ip")
            drivers = _driver_pids()
            browsers = [p for main in pool.browser_pids() for p in [main, *descendants(main)]]
            envs = {pid: _environ(pid) for pid in [*drivers, *browsers]}
    finally:
        await pool.close()
    assert drivers, "no Playwright driver process found"
    assert len(browsers) >= 3, browsers  # browser, zygotes, renderer, network service...
    read = [env for env in envs.values() if env]
    assert len(read) >= 3
    for pid, env in envs.items():
        leaked = [k for k, v in env.items() if MARK in v or k in FAKE_SECRETS]
        assert not leaked, (pid, leaked)
    # What a browser needs is still there.
    for pid in browsers[:1]:
        assert envs[pid].get("PATH") and envs[pid].get("HOME")
        assert envs[pid].get("LC_TIME") == "C.UTF-8"
    assert all(envs[d].get("PATH") for d in drivers)


def test_allow_list_keeps_what_a_browser_needs_and_operator_additions() -> None:
    environ = {
        **FAKE_SECRETS,
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "de_DE.UTF-8",
        "DISPLAY": ":0",
        "XDG_RUNTIME_DIR": "/run/user/0",
        "FONTCONFIG_PATH": "/etc/fonts",
        "TMPDIR": "/tmp",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "PLAYWRIGHT_BROWSERS_PATH": "/opt/pw",
    }
    env = browser_env(environ, add={"FLEETWRIGHT_BROWSER_ID": "t1"})
    assert set(env) == {
        "PATH", "HOME", "LANG", "DISPLAY", "XDG_RUNTIME_DIR", "FONTCONFIG_PATH", "TMPDIR",
        "FLEETWRIGHT_BROWSER_ID",
    }  # fmt: skip
    assert "PLAYWRIGHT_BROWSERS_PATH" in driver_env(environ)
    assert not set(FAKE_SECRETS) & set(driver_env(environ))
    assert browser_env(environ, allow=["SSL_CERT_FILE", "NOT_SET"])["SSL_CERT_FILE"] == (
        "/etc/ca.pem"
    )


def test_operator_allow_list_is_read_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETWRIGHT_BROWSER_ENV_ALLOW", "SSL_CERT_FILE, NODE_EXTRA_CA_CERTS")
    assert Settings().browser_env_allow == ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"]
    monkeypatch.setenv("FLEETWRIGHT_BROWSER_ENV_ALLOW", "SSL_CERT_FILE,bad name")
    with pytest.raises(PydanticValidationError, match="'bad name' are not environment variable"):
        Settings()


def test_api_credentials_never_reach_the_browser_even_when_allowed_by_name() -> None:
    """Naming the Prefect API credential in FLEETWRIGHT_BROWSER_ENV_ALLOW does not hand it to
    Chromium or the driver: a page could read every decrypted block back with it."""
    environ = {
        "PATH": "/usr/bin",
        "PREFECT_API_AUTH_STRING": f"fleetwright:{MARK}",
        "PREFECT_SERVER_API_AUTH_STRING": f"fleetwright:{MARK}",
        "PREFECT_API_KEY": MARK,
        "FLEETWRIGHT_API_TOKEN": MARK,
    }
    allow = list(environ)
    assert set(browser_env(environ, allow=allow)) == {"PATH"}
    assert set(driver_env(environ, allow=allow)) == {"PATH"}

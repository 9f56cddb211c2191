"""HTTPS with a local CA: `fleetwright tls init`, then `fleetwright up` serves the Prefect API
and UI over https only — the CLI, the Python API, the worker and its flow runs verify the
certificate with the CA, a real Chromium that was given the CA (its NSS store, as a user
imports it) logs in, one that was not refuses the certificate, and plain http gets no answer.
The webhook receiver serves https with the same certificate."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.up import UpProcess, api_call, console_script, user_env

UP_TIMEOUT_S = 420


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script(), *args], env=env, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip


def _ca_context(home: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(home / "tls" / "ca.pem"))


@pytest.fixture
def tls_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = _run(["tls", "init", "--host", "fleet.test"], user_env(home))
    assert done.returncode == 0, done.stderr
    return home


def test_tls_init_writes_a_ca_and_a_certificate_for_loopback(tls_home: Path) -> None:
    from cryptography import x509

    folder = tls_home / "tls"
    for name in ("ca-key.pem", "server-key.pem", "ca.pem", "server.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificates((folder / "server.pem").read_bytes())[0]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "fleet.test"}
    again = _run(["tls", "init"], user_env(tls_home))
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    bad = _run(["tls", "init", "--force", "--host", "not a host"], user_env(tls_home))
    assert bad.returncode == 2 and "neither an IP address nor a DNS name" in bad.stderr


def test_settings_turn_https_on_with_a_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No certificate: plain http. `tls init`'s files, or the user's: https and their CA for
    Prefect's client. A certificate without its key is one clear error."""
    from fleetwright.errors import ConfigurationError
    from fleetwright.settings import Settings, prefect_client_env
    from fleetwright.tls import create_local_ca

    for name in ("PREFECT_API_URL", "PREFECT_API_SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEETWRIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLEETWRIGHT_PREFECT_PORT", "4311")
    assert Settings().tls_files is None
    assert prefect_client_env(Settings())["PREFECT_API_URL"] == "http://127.0.0.1:4311/api"
    files = create_local_ca(tmp_path / "home" / "tls")
    settings = Settings()
    assert settings.tls_files == files
    env = prefect_client_env(settings)
    assert env["PREFECT_API_URL"] == "https://127.0.0.1:4311/api"
    assert env["PREFECT_API_SSL_CERT_FILE"] == str(files.ca)
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", "/etc/ssl/mine.pem")  # the user's wins
    assert "PREFECT_API_SSL_CERT_FILE" not in prefect_client_env(Settings())
    monkeypatch.setenv("FLEETWRIGHT_TLS_CERT_FILE", str(files.cert))
    with pytest.raises(ConfigurationError, match="FLEETWRIGHT_TLS_KEY_FILE"):
        _ = Settings().tls_files
    monkeypatch.setenv("FLEETWRIGHT_TLS_KEY_FILE", str(files.key))
    own = Settings().tls_files
    assert own is not None and own.cert == files.cert and own.ca is None
    for name in ("FLEETWRIGHT_TLS_CERT_FILE", "FLEETWRIGHT_TLS_KEY_FILE"):
        monkeypatch.delenv(name)
    shutil.rmtree(tmp_path / "home" / "tls")  # back to plain http
    assert Settings().local_prefect_api_url == "http://127.0.0.1:4311/api"


def _nss_home(root: Path, ca: Path | None) -> Path:
    """A HOME whose NSS store (what Chromium on Linux trusts besides its built-in roots)
    holds `ca`, as `certutil` imports it for a user; an empty store when `ca` is None."""
    home = root / ("with-ca" if ca else "without-ca")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True,
        capture_output=True,
    )  # fmt: skip
    if ca is not None:
        subprocess.run(
            ["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "fleetwright-test",
             "-i", str(ca)],
            check=True, capture_output=True,
        )  # fmt: skip
    return home


_PYTHON_API = """
import json, sys
import fleetwright
run = fleetwright.get_run(sys.argv[1])
print(json.dumps({"state": run.state}))
"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(shutil.which("certutil") is None, reason="needs certutil (libnss3-tools)")
def test_up_serves_https_only_and_every_client_verifies_the_ca(
    tls_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = user_env(tls_home, port)
    with UpProcess([*console_script(), "up", "--no-demo", "--no-warm-worker"], env) as up:
        up.wait_up(UP_TIMEOUT_S)
        deadline = time.monotonic() + UP_TIMEOUT_S
        up.take_snapshot()
        base = f"https://127.0.0.1:{port}"
        api = f"{base}/api"
        assert any(f"Prefect server at {base}" in line for line in up.lines), up.lines
        auth = (tls_home / "prefect-api-auth").read_text().strip()
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
        ca = _ca_context(tls_home)

        # httpx: verified with the CA; refused without it; plain http gets no answer
        assert httpx.get(f"{api}/health", verify=ca, timeout=30).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{api}/health", timeout=30)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30)

        # the CLI in another shell: https and the CA from the home, by itself
        status = _run(["status", "--json"], env)
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["prefect_api"] == api and info["prefect_ok"] is True, info
        assert info["prefect_auth"] == "given, accepted", info

        # a deployment run on the worker `up` started: worker and flow run talk https
        with httpx.Client(verify=ca, headers=headers, timeout=30) as client:
            found = api_call("POST", f"{api}/deployments/filter", client=client, json={})
            check = next(d for d in found if d["name"] == "check-proxies")
            run = api_call(
                "POST", f"{api}/deployments/{check['id']}/create_flow_run", client=client, json={}
            )
            state = None
            while time.monotonic() < deadline:
                got = api_call("GET", f"{api}/flow_runs/{run['id']}", client=client)
                state = (got.get("state") or {}).get("type")
                if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    break
                time.sleep(1)
        assert state == "COMPLETED", f"check-proxies ended {state}:\n" + up.output()

        # the Python API (Prefect's own client) from another process: https, the home's CA
        done = subprocess.run(
            [sys.executable, "-c", _PYTHON_API, run["id"]],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"state": "COMPLETED"}

        # a real Chromium: given the CA it logs in and sees the run; without it, refused
        chromium = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
        trusted = _nss_home(tmp_path / "nss", tls_home / "tls" / "ca.pem")
        untrusted = _nss_home(tmp_path / "nss", None)
        flags = ["--no-sandbox", "--disable-gpu"]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=flags, env={**os.environ, "HOME": str(untrusted)}
            )
            try:
                page = browser.new_page()
                with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                    page.goto(f"{base}/dashboard", timeout=60_000)
                with pytest.raises(PlaywrightError, match="net::ERR_"):
                    page.goto(f"http://127.0.0.1:{port}/dashboard", timeout=60_000)
            finally:
                browser.close()
            browser = pw.chromium.launch(
                executable_path=chromium, args=flags, env={**os.environ, "HOME": str(trusted)}
            )
            try:
                page = browser.new_page()
                page.goto(f"{base}/dashboard", wait_until="networkidle", timeout=90_000)
                password = page.locator("input[type=password]")
                password.wait_for(timeout=60_000)
                password.fill(auth)
                password.press("Enter")
                password.wait_for(state="detached", timeout=60_000)
                page.goto(f"{base}/runs/flow-run/{run['id']}", wait_until="networkidle")
                page.get_by_text(str(run["name"])).first.wait_for(timeout=90_000)
                text = page.inner_text("body")
            finally:
                browser.close()
        assert "Can't connect" not in text, text[:500]

        assert up.interrupt() == 0, up.output()
    assert up.stopped_cleanly() == []


@pytest.mark.prefect
async def test_webhook_receiver_serves_https_with_the_same_certificate(
    prefect_api: str, tls_home: Path
) -> None:
    from fleetwright.testing.fake_github import deliver_webhook

    port = free_port()
    secret = uuid.uuid4().hex
    env = {**os.environ, "FLEETWRIGHT_HOME": str(tls_home), "FW_TEST_WEBHOOK_SECRET": secret}
    code = "from fleetwright.cli.webhooks import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--secret-env", "FW_TEST_WEBHOOK_SECRET",
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    ca = _ca_context(tls_home)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ca, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.3)
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        url = f"https://127.0.0.1:{port}/github"
        payload = {"zen": "Keep it logically awesome.", "hook_id": 1}
        resp = await asyncio.to_thread(
            deliver_webhook, url, "ping", payload, secret=secret, verify=ca
        )
        assert resp.status_code < 300, resp.text
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.stdout is not None
    assert f"listening on https://127.0.0.1:{port}/github" in proc.stdout.read().decode()

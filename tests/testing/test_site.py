"""The demo/bench site over real HTTP: every page, the per-response delay, the module CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from fleetwright.testing.proxies import free_port, wait_port
from fleetwright.testing.site import (
    DOWNLOAD_BODY,
    PRODUCTS,
    SiteProcess,
    SiteServer,
    serve_site,
)


def test_index_links(site: SiteServer) -> None:
    page = httpx.get(f"{site.url}/").text
    for path in ("/login", "/table", "/flow/1", "/storage", "/ip", "/download", "/upload"):
        assert f'href="{path}"' in page


def test_login_sets_a_session_cookie(site: SiteServer) -> None:
    with httpx.Client(base_url=site.url) as client:
        assert client.get("/account").headers["location"] == "/login"
        r = client.post("/login", data={"user": "ada", "password": "pw"})
        assert r.status_code == 303 and r.headers["location"] == "/account"
        assert "fw_session" in client.cookies
        assert "Signed in as ada" in client.get("/account").text
        missing = client.post("/login", data={"user": "", "password": ""})
        assert "User and password are required" in missing.text
    with httpx.Client(base_url=site.url) as other:
        assert other.get("/account").status_code == 303, "sessions are per cookie"


def test_table_lists_products(site: SiteServer) -> None:
    page = httpx.get(f"{site.url}/table").text
    for pid, name, price in PRODUCTS:
        assert f'<tr data-id="{pid}"><td class=id>{pid}</td><td class=name>{name}</td>' in page
        assert f"<td class=price>{price}</td>" in page


def test_flow_carries_fields_to_the_summary(site: SiteServer) -> None:
    assert 'action="/flow/2"' in httpx.get(f"{site.url}/flow/1").text
    step2 = httpx.get(f"{site.url}/flow/2", params={"name": "Ada <b>"}).text
    assert 'value="Ada &lt;b&gt;"' in step2 and 'action="/flow/3"' in step2
    final = httpx.get(f"{site.url}/flow/3", params={"name": "Ada", "color": "green"}).text
    assert "<p id=summary>Name: Ada; colour: green</p>" in final
    assert "No such step" in httpx.get(f"{site.url}/flow/9").text


def test_ip_echo_and_storage_page(site: SiteServer) -> None:
    data = httpx.get(f"{site.url}/ip", headers={"X-Probe": "1"}).json()
    assert data["ip"] == "127.0.0.1" and data["headers"]["x-probe"] == "1"
    page = httpx.get(f"{site.url}/storage").text
    assert "indexedDB.open" in page and "sessionStorage" in page and "id=status" in page


def test_download_and_upload(site: SiteServer) -> None:
    r = httpx.get(f"{site.url}/download")
    assert r.content == DOWNLOAD_BODY
    assert r.headers["content-disposition"] == 'attachment; filename="report.csv"'
    assert "type=file" in httpx.get(f"{site.url}/upload").text
    body = b"\x00\x01" * 1000
    up = httpx.post(f"{site.url}/upload", files={"file": ("data.bin", body)}).text
    assert "<span id=filename>data.bin</span> (<span id=size>2000</span> bytes)" in up
    assert "Send one file" in httpx.post(f"{site.url}/upload", data={"x": "1"}).text


def test_slow_waits_and_rejects_bad_values(site: SiteServer) -> None:
    started = time.monotonic()
    assert "Waited 300 ms" in httpx.get(f"{site.url}/slow", params={"ms": 300}).text
    assert time.monotonic() - started >= 0.3
    assert "whole number" in httpx.get(f"{site.url}/slow", params={"ms": "soon"}).text


def test_delay_applies_to_every_response() -> None:
    with (
        serve_site(delay=timedelta(milliseconds=150)) as slow,
        httpx.Client(base_url=slow.url) as client,
    ):
        client.get("/")  # connect once
        for path in ("/", "/ip", "/table"):
            started = time.monotonic()
            assert client.get(path).status_code == 200
            assert time.monotonic() - started >= 0.15
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{slow.url}/")


def test_runs_as_a_module() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetwright.testing.site", "--port", str(port), "--delay-ms", "5"],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        wait_port(port, timeout=timedelta(seconds=20))
        assert httpx.get(f"http://127.0.0.1:{port}/ip").json()["ip"] == "127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run(
        [sys.executable, "-m", "fleetwright.testing.site", "--delay-ms", "-1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--delay-ms must be 0 or more" in bad.stderr


def test_site_process_serves_from_its_own_process_with_its_delay(tmp_path: Path) -> None:
    site = SiteProcess(delay=timedelta(milliseconds=150), log_path=tmp_path / "site.log").start()
    try:
        assert site.pid is not None and site.pid != os.getpid()
        with httpx.Client(base_url=site.url) as client:
            client.get("/")  # connect once
            started = time.monotonic()
            assert client.get("/ip").json()["ip"] == "127.0.0.1"
            assert time.monotonic() - started >= 0.15
        pid = site.pid
    finally:
        site.stop()
    site.stop()  # idempotent
    assert site.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{site.url}/")


def test_site_process_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        site = SiteProcess(port=taken.getsockname()[1], log_path=tmp_path / "site.log")
        with pytest.raises(RuntimeError, match=r"exited at start.*in use"):
            site.start()
    assert site.pid is None
    with pytest.raises(ValueError, match="negative"):
        SiteProcess(delay=timedelta(milliseconds=-1))

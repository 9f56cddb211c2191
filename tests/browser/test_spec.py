"""Launch specs, proxy configs, Chromium discovery and error mapping (no browser needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetwright.browser import LaunchSpec, ProxyConfig, context_options, make_launch_spec
from fleetwright.browser import chromium as chromium_mod
from fleetwright.browser.chromium import chromium_args, find_chromium
from fleetwright.browser.session_storage import restore_script, split_origins
from fleetwright.errors import ConfigurationError, ValidationError
from fleetwright.settings import Settings
from fleetwright.specs import Fingerprint, Geolocation


def test_context_options_from_fingerprint() -> None:
    fp = Fingerprint(
        user_agent="UA/1",
        locale="fr-FR",
        timezone="Europe/Paris",
        geolocation=Geolocation(latitude=1, longitude=2, accuracy=3),
        color_scheme="dark",
        extra_headers={"X-A": "b"},
    )
    assert context_options(fp) == {
        "viewport": {"width": 1280, "height": 800},
        "locale": "fr-FR",
        "timezone_id": "Europe/Paris",
        "color_scheme": "dark",
        "user_agent": "UA/1",
        "geolocation": {"latitude": 1, "longitude": 2, "accuracy": 3},
        "permissions": ["geolocation"],
        "extra_http_headers": {"X-A": "b"},
    }
    plain = context_options(Fingerprint())
    assert "user_agent" not in plain and "permissions" not in plain


def test_proxy_config_keeps_the_password_secret() -> None:
    cfg = ProxyConfig.build(server="http://10.0.0.1:3128", username="u", password="hunter2")
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())
    assert cfg.to_playwright() == {
        "server": "http://10.0.0.1:3128",
        "username": "u",
        "password": "hunter2",
    }
    assert ProxyConfig.build(server="socks5://127.0.0.1:1080").to_playwright() == {
        "server": "socks5://127.0.0.1:1080"
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": "10.0.0.1:3128"}, "is not scheme://host:port"),
        ({"server": "http://u:p@10.0.0.1:3128"}, "is not scheme://host:port"),
        ({"server": "ftp://10.0.0.1:21"}, "is not scheme://host:port"),
        ({"server": "http://10.0.0.1:99999"}, "outside 1–65535"),
        ({"server": "socks5://h:1", "username": "u", "password": "pw"}, "cannot authenticate"),
    ],
)
def test_proxy_config_bad_input(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        ProxyConfig.build(**data)
    assert "pw" not in str(info.value).replace("proxy", "")
    assert "\n" not in str(info.value)


def test_launch_spec_defaults_and_bad_name(home: Path) -> None:
    spec = LaunchSpec(profile_name="Shop Account 1")
    assert spec.state_dir == home / "profiles" / f"shop-account-1-{spec.state_dir.name[-8:]}"
    assert spec.state_mode == "storage" and not spec.tracing
    assert make_launch_spec(profile_name="abc", trace_on_failure=True).tracing
    with pytest.raises(ValidationError, match="profile_name: profile name 'a/b' contains a path"):
        make_launch_spec(profile_name="a/b")
    with pytest.raises(ValidationError, match="state_mode"):
        make_launch_spec(profile_name="abc", state_mode="cloud")


def test_chromium_args_always_disable_background_traffic() -> None:
    args = chromium_args()
    for flag in (
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        assert flag in args
    features = [a for a in args if a.startswith("--disable-features=")]
    assert len(features) == 1  # Chromium keeps only the last one
    disabled = set(features[0].split("=", 1)[1].split(","))
    assert {"AutofillServerCommunication", "Translate", "NetworkTimeServiceQuerying"} <= disabled
    assert ("--no-sandbox" in args) == (os.geteuid() == 0)


def test_find_chromium_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "chrome"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.delenv("FLEETWRIGHT_CHROMIUM_EXECUTABLE", raising=False)
    monkeypatch.setattr(chromium_mod, "SYSTEM_CANDIDATES", (str(tmp_path / "missing"),))
    assert find_chromium(settings=Settings(chromium_executable=exe)) == exe
    assert find_chromium(settings=Settings(), playwright_executable=str(exe)) == exe
    with pytest.raises(ConfigurationError, match="is not an executable file"):
        find_chromium(settings=Settings(chromium_executable=tmp_path / "nope"))
    with pytest.raises(ConfigurationError) as info:
        find_chromium(settings=Settings(), playwright_executable=str(tmp_path / "gone"))
    assert "apt-get install chromium" in str(info.value)
    assert "playwright install chromium" in str(info.value)
    monkeypatch.setattr(chromium_mod, "SYSTEM_CANDIDATES", (str(exe),))
    assert find_chromium(settings=Settings()) == exe


def test_split_origins_keeps_indexeddb_origins_for_playwright() -> None:
    storage = {
        "cookies": [{"name": "c"}],
        "origins": [
            {"origin": "http://a", "localStorage": [{"name": "k", "value": "v"}]},
            {"origin": "http://b", "localStorage": [], "indexedDB": [{"name": "db"}]},
        ],
    }
    kept, local = split_origins(storage)
    assert kept == {"cookies": [{"name": "c"}], "origins": [storage["origins"][1]]}
    assert local == {"http://a": {"k": "v"}}
    assert restore_script({}, {}) is None
    script = restore_script({"http://a": {"s": "</script>"}}, local)
    assert script is not None and "</script>" not in script and '"http://a"' in script

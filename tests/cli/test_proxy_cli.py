"""`fleetwright proxy ...`: add with a password on stdin, import, assign, remove."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect


def test_add_show_assign_remove(prefect_api: str, home: Path, cli) -> None:
    r = cli(
        "proxy",
        "add",
        "de-1",
        "http://user1@127.0.0.1:3128",
        "--pool",
        "de",
        "--label",
        "country=DE",
        "--password-stdin",
        "--json",
        stdin="pw-секрет\n",
    )
    assert r.code == 0, r.err
    assert r.json()["has_password"] is True
    assert "pw-секрет" not in r.out
    assert cli("profile", "add", "p1", "--tag", "de").code == 0
    assert cli("profile", "add", "p2", "--tag", "de").code == 0
    r = cli("proxy", "assign", "de-1", "--tag", "de")
    assert r.code == 0, r.err
    assert cli("profile", "show", "p1", "--json").json()["proxy"] == "de-1"

    import asyncio

    from fleetwright.registry import proxy_spec

    assert asyncio.run(proxy_spec("de-1")).password == "pw-секрет"
    # the catalogue never holds the password
    db = (home / "catalogue.db").read_bytes()
    assert "pw-секрет".encode() not in db

    r = cli("proxy", "remove", "de-1")
    assert r.code == 0
    assert cli("profile", "show", "p1", "--json").json()["proxy"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["proxy", "add", "x", "ftp://h:21"], "unknown proxy scheme"),
        (["proxy", "add", "x", "http://h:70000"], "outside 1–65535"),
        (["proxy", "add", "x", "http://h:0"], "outside 1–65535"),
        (["proxy", "add", "x", "http://u:pw@h:8080"], "do not put the password in the URL"),
        (["proxy", "add", "x", "http://h"], "has no port"),
        (["proxy", "show", "nope"], "unknown proxy 'nope'"),
        (["proxy", "assign", "nope", "--tag", "t"], "unknown proxy 'nope'"),
        (["proxy", "remove", "nope"], "unknown proxy 'nope'"),
    ],
)
def test_bad_input(prefect_api: str, home: Path, cli, args: list[str], needle: str) -> None:
    r = cli(*args)
    assert r.code == 2, r.err
    assert needle in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert cli("proxy", "list", "--json").json() == []


def test_import_lines(prefect_api: str, home: Path, tmp_path: Path, cli) -> None:
    f = tmp_path / "proxies.txt"
    f.write_text(
        "# pool de\n"
        "10.0.0.1:8080:alice:pa55\n"
        "socks5://bob:pw2@10.0.0.2:1080\n"
        "10.0.0.3:99999:carol:x\n"
        "this is not a proxy\n"
    )
    r = cli("proxy", "import", str(f), "--pool", "de")
    assert r.code == 1
    assert "2 created" in r.out and "2 rejected" in r.out
    assert "line 4" in r.err and "line 5" in r.err
    assert "pa55" not in r.err + r.out
    r = cli("proxy", "import", str(f), "--pool", "de")
    assert "0 created" in r.out and "2 unchanged" in r.out
    assert len(cli("proxy", "list", "--json").json()) == 2

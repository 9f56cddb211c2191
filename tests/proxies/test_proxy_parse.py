"""Bulk import parsing: line formats, CSV, line-numbered problems, stable names."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwright.errors import ImportFileError
from fleetwright.proxies.parse import default_proxy_name, parse_proxies, parse_proxy_file


def test_line_formats() -> None:
    text = """
# office proxies
10.0.0.1:3128
10.0.0.2:8080:alice:pa:ss
socks5://bob:s%40cret@proxy.example.com:1080
https://10.0.0.3:443
carol:pw@10.0.0.4:9000
"""
    result = parse_proxies(text, pool="office", labels={"provider": "acme"})
    assert result.ok, result.problems
    by_name = {p.name: p for p in result.proxies}
    assert sorted(by_name) == [
        "10.0.0.1:3128",
        "10.0.0.2:8080",
        "10.0.0.3:443",
        "10.0.0.4:9000",
        "proxy.example.com:1080",
    ]
    assert by_name["10.0.0.2:8080"].username == "alice"
    assert by_name["10.0.0.2:8080"].password == "pa:ss"
    socks = by_name["proxy.example.com:1080"]
    assert (socks.scheme, socks.username, socks.password) == ("socks5", "bob", "s@cret")
    assert by_name["10.0.0.3:443"].scheme == "https"
    assert by_name["10.0.0.4:9000"].username == "carol"
    assert all(p.pool == "office" and p.labels == {"provider": "acme"} for p in result.proxies)


def test_bad_lines_are_reported_by_number_and_good_ones_kept() -> None:
    text = "\n".join(
        [
            "10.0.0.1:3128",  # 1 good
            "10.0.0.2:70000",  # 2 port out of range
            "ftp://u:topsecret@10.0.0.3:21",  # 3 unknown scheme
            "just-a-host",  # 4 malformed
            "10.0.0.5:abc:user:topsecret",  # 5 port not a number
            "",  # 6 blank
            "http://u:topsecret@10.0.0.6:99999",  # 7 port out of range in a URL
            "10.0.0.7:8080:user:pw",  # 8 good
            "10.0.0.1:3128",  # 9 duplicate of line 1
        ]
    )
    result = parse_proxies(text)
    assert [p.name for p in result.proxies] == ["10.0.0.1:3128", "10.0.0.7:8080"]
    lines = [n for n, _ in result.problems]
    assert lines == [2, 3, 4, 5, 7, 9]
    reasons = dict(result.problems)
    assert "70000" in reasons[2] and "1–65535" in reasons[2]
    assert "unknown proxy scheme 'ftp'" in reasons[3]
    assert "host:port" in reasons[4]
    assert "not a number" in reasons[5]
    assert "1–65535" in reasons[7]
    assert "same proxy as line 1" in reasons[9]
    for _, reason in result.problems:
        assert "topsecret" not in reason
        assert "\n" not in reason


def test_users_sharing_host_port_get_distinct_stable_names() -> None:
    text = "gw.example.net:7777:user-a:x\ngw.example.net:7777:user-b:y\n10.1.1.1:80:solo:z\n"
    first = parse_proxies(text)
    again = parse_proxies(text)
    names = [p.name for p in first.proxies]
    assert names == ["gw.example.net:7777:user-a", "gw.example.net:7777:user-b", "10.1.1.1:80"]
    assert names == [p.name for p in again.proxies]


def test_csv_with_header_and_label_columns() -> None:
    text = """name,scheme,host,port,username,password,pool,labels,country
de-1,socks5,10.0.0.1,1080,u1,p1,eu,kind=residential;provider=acme,DE
,http,10.0.0.2,3128,,,eu,,US
bad,http,10.0.0.3,0,,,eu,,FR
# a comment
bad2,gopher,10.0.0.4,70,,,eu,,FR
"""
    result = parse_proxies(text)
    assert [p.name for p in result.proxies] == ["de-1", "10.0.0.2:3128"]
    de = result.proxies[0]
    assert de.scheme == "socks5" and de.password == "p1" and de.pool == "eu"
    assert de.labels == {"kind": "residential", "provider": "acme", "country": "DE"}
    assert result.proxies[1].labels == {"country": "US"}
    assert [n for n, _ in result.problems] == [4, 6]
    assert "outside 1–65535" in result.problems[0][1]
    assert "unknown proxy scheme 'gopher'" in result.problems[1][1]


def test_csv_missing_columns_and_duplicate_names() -> None:
    text = "name,host,port\na,10.0.0.1,80\na,10.0.0.2,80\nb,,80\nc,10.0.0.3,80,extra\n"
    result = parse_proxies(text)
    assert [p.name for p in result.proxies] == ["a"]
    reasons = dict(result.problems)
    assert "already used on line 2" in reasons[3]
    assert "host and port are required" in reasons[4]
    assert "columns" in reasons[5]


def test_long_names_are_shortened_stably() -> None:
    host = "a" * 70 + ".example.com"
    name = default_proxy_name(host, 8080)
    assert len(name) <= 64 and name == default_proxy_name(host, 8080)
    assert parse_proxies(f"{host}:8080").proxies[0].name == name


def test_proxy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="does not exist"):
        parse_proxy_file(tmp_path / "missing.txt")
    binary = tmp_path / "list.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        parse_proxy_file(binary)
    good = tmp_path / "list.txt"
    good.write_text("10.0.0.1:80\n")
    assert [p.name for p in parse_proxy_file(good).proxies] == ["10.0.0.1:80"]

"""Parse proxy lists for bulk import: plain lines, URLs, or CSV with a header.

Good lines become ProxySpec objects; bad ones are reported by line number with a one-line
reason that never repeats the line itself (it may hold a password).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fleetwright.errors import ValidationError
from fleetwright.specs import ProxySpec, validate_proxy

__all__ = ["ParseResult", "default_proxy_name", "parse_proxies", "parse_proxy_file"]

_FIELDS = {"name", "scheme", "host", "port", "username", "password", "pool", "max_sessions"}
_ALIASES = {"user": "username", "login": "username", "pass": "password", "max": "max_sessions"}
#: Longest line read; longer ones are rejected unread (a proxy line is well under 1 KB).
MAX_LINE = 4096
MAX_PROBLEMS = 1000
#: Largest proxy list read (memory stays bounded; split larger lists).
MAX_FILE_BYTES = 64 * 1024 * 1024
_SHAPES = "use host:port, host:port:user:pass, user:pass@host:port or scheme://user:pass@host:port"


@dataclass
class ParseResult:
    """Proxies read from a list, and the lines that could not be read."""

    proxies: list[ProxySpec] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Problems past MAX_PROBLEMS: counted, not kept (a bad 50 MB file has ~800,000).
    problems_dropped: int = 0

    def reject(self, number: int, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((number, reason))
        else:
            self.problems_dropped += 1

    @property
    def ok(self) -> bool:
        return not self.problems


def default_proxy_name(host: str, port: int, username: str | None = None) -> str:
    """A stable name from host:port (and user), so importing the same list twice is a no-op."""
    name = f"{host}:{port}" + (f":{username}" if username else "")
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:55]}-{digest}"


def _split_line(line: str) -> dict[str, Any]:
    """Fields of one non-CSV line; raises ValueError with a one-line reason."""
    if "://" in line:
        scheme = line.split("://", 1)[0]
        try:
            url = urlsplit(line)
            port = url.port
        except ValueError as exc:
            if "out of range" in str(exc):
                raise ValueError("port is outside 1–65535") from None
            raise ValueError(f"not a proxy URL; {_SHAPES}") from None
        if not url.hostname or port is None:
            raise ValueError(f"URL has no host or port; {_SHAPES}")
        if url.path not in ("", "/") or url.query or url.fragment:
            raise ValueError("a proxy URL has no path or query; use scheme://user:pass@host:port")
        return {
            "scheme": scheme,
            "host": url.hostname,
            "port": port,
            "username": unquote(url.username) if url.username else None,
            "password": unquote(url.password) if url.password else None,
        }
    if "@" in line:
        creds, _, hostport = line.rpartition("@")
        user, sep, password = creds.partition(":")
        host, _, port_text = hostport.partition(":")
        if not sep or not user or not host or not port_text:
            raise ValueError(_SHAPES)
        return {"host": host, "port": port_text, "username": user, "password": password}
    parts = line.split(":", 3)
    if len(parts) == 2:
        return {"host": parts[0], "port": parts[1]}
    if len(parts) == 4:
        if not parts[2]:
            raise ValueError("username is empty; use host:port:user:pass")
        return {"host": parts[0], "port": parts[1], "username": parts[2], "password": parts[3]}
    raise ValueError(_SHAPES)


def _csv_fields(header: list[str], row: list[str]) -> dict[str, Any]:
    if len(row) > len(header):
        raise ValueError(f"{len(row)} columns but the header has {len(header)}")
    data: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, raw in zip(header, row, strict=False):
        value = raw.strip()
        if not value:
            continue
        if key == "labels":
            for item in value.split(";"):
                k, sep, v = item.partition("=")
                if not sep or not k.strip():
                    raise ValueError(f"labels item {item!r} is not key=value")
                labels[k.strip()] = v.strip()
        elif key in _FIELDS:
            data[key] = value
        else:
            labels[key] = value
    if "host" not in data or "port" not in data:
        raise ValueError("host and port are required")
    if labels:
        data["labels"] = labels
    return data


def _header(line: str) -> list[str] | None:
    cells = [c.strip().lower() for c in next(csv.reader([line]))]
    if "host" in cells and "port" in cells:
        return [_ALIASES.get(c, c) for c in cells]
    return None


def parse_proxies(
    text: str, *, pool: str | None = None, labels: dict[str, str] | None = None
) -> ParseResult:
    """Read proxies from `text`; `pool` and `labels` apply where a line gives none."""
    result = ParseResult()
    header: list[str] | None = None
    seen: dict[tuple[str, int, str | None], int] = {}
    names: dict[str, int] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE:
            result.reject(number, f"line is {len(raw)} characters long; the limit is {MAX_LINE}")
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if first:
            first = False
            header = _header(line) if "," in line else None
            if header is not None:
                continue
        try:
            data = (
                _csv_fields(header, next(csv.reader([line])))
                if header is not None
                else _split_line(line)
            )
        except (ValueError, csv.Error) as exc:
            result.reject(number, str(exc))
            continue
        pending.append((number, data))

    shared: dict[tuple[str, str], set[str | None]] = {}
    for _, data in pending:
        key = (str(data["host"]).lower(), str(data["port"]).strip())
        shared.setdefault(key, set()).add(data.get("username"))

    for number, data in pending:
        if pool and not data.get("pool"):
            data["pool"] = pool
        if labels:
            data["labels"] = {**labels, **data.get("labels", {})}
        if not data.get("name"):
            host, port = str(data["host"]).strip(), str(data["port"]).strip()
            several = len(shared[(host.lower(), port)]) > 1
            data["name"] = default_proxy_name(
                host,
                int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else 0,
                data.get("username") if several else None,
            )
        try:
            spec = validate_proxy(data)
        except ValidationError as exc:
            result.reject(number, exc.message)
            continue
        ident = (spec.host.lower(), spec.port, spec.username)
        if ident in seen:
            result.reject(number, f"same proxy as line {seen[ident]}; skipped")
            continue
        if spec.name in names:
            result.reject(
                number, f"name {spec.name!r} already used on line {names[spec.name]}; skipped"
            )
            continue
        seen[ident] = names[spec.name] = number
        result.proxies.append(spec)
    result.problems.sort()
    return result


def parse_proxy_file(
    path: Path, *, pool: str | None = None, labels: dict[str, str] | None = None
) -> ParseResult:
    """parse_proxies() on a file; an unreadable file is an ImportFileError."""
    from fleetwright.inputs import read_user_text

    text = read_user_text(path, what="proxy list", limit_bytes=MAX_FILE_BYTES)
    return parse_proxies(text, pool=pool, labels=labels)

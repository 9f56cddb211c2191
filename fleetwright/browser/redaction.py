"""Secrets a session used, kept out of its trace.

A Playwright trace records fill values, DOM snapshots (an input's value) and request bodies,
so a trace of a session that typed a password holds it three times over, and every request's
headers (behind a proxy with a password: Proxy-Authorization). Whoever reads a secret into a
session registers it against the session's browser context (the browser pool registers the
proxy's password and its Basic credentials pair); when the trace is
written, every registered value — raw, URL-encoded, JSON- and HTML-escaped — is replaced with
`***` in every file of the archive before it is kept.
"""

from __future__ import annotations

import html
import json
import os
import weakref
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "register_secrets", "scrub_zip", "secrets_for", "variants"]

MASK = b"***"
_MIN_LENGTH = 4
_registered: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def register_secrets(context: Any, values: Iterable[str]) -> None:
    """Remember `values` as secrets of browser context `context` (kept out of its trace)."""
    found = {v for v in values if len(v) >= _MIN_LENGTH}
    if found:
        _registered.setdefault(context, set()).update(found)


def secrets_for(context: Any) -> set[str]:
    """The secrets registered for `context`."""
    return set(_registered.get(context, ()))


def variants(value: str) -> set[bytes]:
    """The forms `value` takes inside a trace: raw, URL-encoded, JSON- and HTML-escaped."""
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        html.escape(value),
    }
    return {f.encode() for f in forms if f}


def scrub_zip(path: Path, values: Iterable[str]) -> int:
    """Rewrite the zip at `path` with every variant of `values` masked; how many were masked.

    The new archive is written beside it and switched in atomically.
    """
    needles = sorted({v for value in values for v in variants(value)}, key=len, reverse=True)
    if not needles:
        return 0
    masked = 0
    tmp = path.with_name(path.name + ".scrub")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            for needle in needles:
                if needle in data:
                    masked += data.count(needle)
                    data = data.replace(needle, MASK)
            dst.writestr(info, data)
    os.replace(tmp, path)
    return masked

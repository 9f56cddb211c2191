"""The sweep's own tools find what they are meant to find: every encoded form of a value in
the middle of other text, and a value planted in a process's argv and environment."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from urllib.parse import quote, quote_plus

import pytest

from fleetwright.testing.sweep import ProcSampler, search, secret_forms

VALUE = "Fw-sweep&tool!" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize(
    "blob",
    [
        VALUE.encode(),
        quote(VALUE, safe="").encode(),
        quote_plus(VALUE).encode(),
        json.dumps({"v": 'a"' + VALUE}).encode(),
        VALUE.encode("utf-16-le"),
        VALUE.encode().hex().encode(),
        b"Proxy-Authorization: Basic " + base64.b64encode(b"user:" + VALUE.encode()),
        b"Authorization: Basic " + base64.b64encode(b"u:" + VALUE.encode()),
        b"x=" + base64.b64encode(b"ab" + VALUE.encode() + b"cd"),
        b"t=" + base64.urlsafe_b64encode(b"\xff\xfe" + VALUE.encode()),
    ],
    ids=["raw", "url", "url+", "json", "utf16", "hex", "basic5", "basic2", "b64mid", "b64url"],
)
def test_every_form_is_found_among_other_bytes(blob: bytes) -> None:
    hits = search("test", [("blob", b"...before..." + blob + b"...after...")], {"v": VALUE})
    assert [h.secret for h in hits] == ["v"]


def test_nothing_is_found_where_nothing_is() -> None:
    other = "Fw-sweep&tool!" + uuid.uuid4().hex[:8]
    blobs = [("a", other.encode()), ("b", base64.b64encode(other.encode()))]
    assert search("test", blobs, {"v": VALUE}) == []


def test_short_values_are_refused() -> None:
    with pytest.raises(ValueError, match="8 characters"):
        secret_forms("short")


def test_the_sampler_sees_argv_and_environment_of_a_short_lived_process() -> None:
    plant = f"FwPlanted{uuid.uuid4().hex}"
    with ProcSampler() as sampler:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(1)", plant], env={"FW_PLANT": plant}
        )
        proc.wait(timeout=30)
    hits = search("processes", sampler.blobs(), {"plant": plant})
    assert {h.label.rsplit(" ", 1)[-1] for h in hits} == {"cmdline", "environ"}
    assert all(f"pid {proc.pid} " in h.label for h in hits)

"""A secrets sweep for tests: the forms a secret can take once it has been written somewhere
(raw, URL-encoded, JSON-escaped, UTF-16, hex, base64 at any byte alignment, as in a Basic auth
header), a search of labelled blobs for them, and a sampler that reads /proc/*/cmdline and
/proc/*/environ of every process over and over while something runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote, quote_plus

__all__ = ["Hit", "ProcSample", "ProcSampler", "search", "secret_forms"]


def _b64_cores(data: bytes) -> list[tuple[str, bytes]]:
    """Base64 text that encodes `data` wherever it sits in a longer byte string: for each of
    the three alignments, the characters that depend on `data`'s bytes alone."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data)
        start = (shift * 8 + 5) // 6
        end = ((shift + len(data)) * 8) // 6
        core = encoded[start:end]
        forms.append((f"base64+{shift}", core))
        urlsafe = core.replace(b"+", b"-").replace(b"/", b"_")
        if urlsafe != core:
            forms.append((f"base64url+{shift}", urlsafe))
    return forms


def secret_forms(value: str) -> dict[str, bytes]:
    """Every form of `value` the sweep looks for, by name. A value shorter than 8 characters is
    refused: its base64 and hex forms would match by chance."""
    if len(value) < 8:
        raise ValueError("a swept value needs at least 8 characters to be distinctive")
    raw = value.encode()
    forms: dict[str, bytes] = {
        "raw": raw,
        "url": quote(value, safe="").encode(),
        "url+": quote_plus(value, safe="").encode(),
        "json": json.dumps(value)[1:-1].encode(),
        "utf-16le": value.encode("utf-16-le"),
        "hex": raw.hex().encode(),
    }
    forms.update(_b64_cores(raw))
    return forms


@dataclass(frozen=True)
class Hit:
    """One swept value found: where (channel and label), which value, in which form."""

    channel: str
    label: str
    secret: str
    form: str

    def __str__(self) -> str:
        return f"{self.channel}: {self.label}: {self.secret} ({self.form})"


def search(
    channel: str, blobs: Iterable[tuple[str, bytes]], secrets: Mapping[str, str]
) -> list[Hit]:
    """Every form of every secret (by name) found in `blobs` (label, content)."""
    forms = {name: secret_forms(value) for name, value in secrets.items()}
    hits = []
    for label, blob in blobs:
        for name, by_form in forms.items():
            for form, needle in by_form.items():
                if needle in blob:
                    hits.append(Hit(channel, label, name, form))
                    break  # one form per secret and blob is enough to report
    return hits


@dataclass(frozen=True)
class ProcSample:
    """One distinct cmdline or environ content seen for a process."""

    pid: int
    comm: str
    kind: str  # "cmdline" or "environ"
    content: bytes

    @property
    def label(self) -> str:
        return f"pid {self.pid} ({self.comm}) {self.kind}"


@dataclass
class ProcSampler:
    """Reads /proc/*/cmdline and /proc/*/environ of every process every `interval` in a
    background thread, keeping each distinct content once. Use as a context manager around
    the work to watch; `samples` and `rounds` tell what it saw."""

    interval: timedelta = timedelta(milliseconds=50)
    samples: dict[bytes, ProcSample] = field(default_factory=dict)
    rounds: int = 0
    pids_seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _read(self, pid: int, kind: str) -> bytes | None:
        try:
            return (Path("/proc") / str(pid) / kind).read_bytes()
        except OSError:  # gone, or not ours to read
            return None

    def sample_once(self) -> None:
        own = os.getpid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            self.pids_seen.add(pid)
            comm: str | None = None
            for kind in ("cmdline", "environ"):
                content = self._read(pid, kind)
                if not content:
                    continue
                key = hashlib.sha256(f"{pid}:{kind}:".encode() + content).digest()
                if key in self.samples:
                    continue
                if comm is None:
                    comm_bytes = self._read(pid, "comm") or b"?"
                    comm = comm_bytes.decode(errors="replace").strip()
                    if pid == own:
                        comm += ", the sweeping process"
                self.samples[key] = ProcSample(pid, comm, kind, content)
        self.rounds += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval.total_seconds())

    def __enter__(self) -> Self:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="proc-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sample_once()  # what is still there at the end

    def blobs(self, *, exclude_pids: Iterable[int] = ()) -> list[tuple[str, bytes]]:
        skip = set(exclude_pids)
        return [(s.label, s.content) for s in self.samples.values() if s.pid not in skip]

    def wait_rounds(self, n: int, *, timeout: timedelta = timedelta(seconds=30)) -> None:
        """Block until the thread has completed `n` more rounds."""
        target = self.rounds + n
        deadline = time.monotonic() + timeout.total_seconds()
        while self.rounds < target and time.monotonic() < deadline:
            time.sleep(0.01)

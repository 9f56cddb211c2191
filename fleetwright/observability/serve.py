"""`fleetwright metrics serve`: one Prometheus endpoint per host for every Fleetwright process
on it (workers, flow-run processes, warm workers), plus the catalogue's gauges.

Every process writes its own files into the host's metrics folder (prometheus_client's
multiprocess mode, one set per process, named by `processes.process_id`). At each scrape the
collector first tidies the folder: the live gauges (sessions and browsers open now) of
processes that have ended are dropped, and their counters, histograms and most-recent gauges
are folded into one archive file per kind, so a host that has run thousands of flow runs is
read from a few files, and nothing a finished process counted is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fleetwright.observability.processes import alive

__all__ = ["ARCHIVE", "HostCollector", "host_registry"]

logger = logging.getLogger(__name__)

#: the process id of the archive files (`counter_archive.db`, ...)
ARCHIVE = "archive"
#: file kinds folded into the archive: how two values of one series combine
_FOLDED = {"counter": "sum", "histogram": "sum", "gauge_mostrecent": "latest"}
_FILE = re.compile(r"^(counter|histogram|gauge_[a-z]+)_([^_]+)\.db$")
_JOURNAL = "compaction.journal"


class HostCollector(Collector):
    """Every process's samples in `directory`, added up (see the module's docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._inner = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def _dead_files(self) -> dict[str, list[Path]]:
        """File kind -> files of processes that have ended (archives left out)."""
        found: dict[str, list[Path]] = {}
        for name in os.listdir(self.directory):
            m = _FILE.match(name)
            if m and m.group(2) != ARCHIVE and not alive(m.group(2)):
                found.setdefault(m.group(1), []).append(self.directory / name)
        return found

    def tidy(self) -> int:
        """Drop the live gauges of ended processes and fold the rest of their files into the
        archives. Returns how many files were removed (0 when another scrape holds the
        folder)."""
        with self._locked(exclusive=True, wait=False) as got:
            return self._tidy() if got else 0

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool, wait: bool) -> Iterator[bool]:
        """The folder's lock: a fold holds it alone, reads share it (no read sees a fold
        half done, which would make a counter go down for a scrape)."""
        with open(self.directory / ".lock", "a") as lock:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(lock, mode | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def _tidy(self) -> int:
        self._recover()
        removed = 0
        for kind, files in self._dead_files().items():
            if kind.startswith("gauge_live"):
                for path in files:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    removed += 1
            elif kind in _FOLDED:
                removed += self._fold(kind, files)
        return removed

    def _fold(self, kind: str, files: list[Path]) -> int:
        """Fold `files` into `<kind>_archive.db`, crash-safe: the new archive is written
        beside the old one, a journal names the files it holds, the archive is switched by a
        rename, then the files are removed and the journal with them."""
        archive = self.directory / f"{kind}_{ARCHIVE}.db"
        merged: dict[str, tuple[float, float]] = {}
        for path in [archive, *files]:
            try:
                rows = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
            except FileNotFoundError:
                continue
            for key, value, timestamp, _pos in rows:
                old = merged.get(key)
                if old is None:
                    merged[key] = (value, timestamp)
                elif _FOLDED[kind] == "sum":
                    merged[key] = (old[0] + value, 0.0)
                elif timestamp >= old[1]:
                    merged[key] = (value, timestamp)
        new = archive.with_name(archive.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            new.unlink()
        out = MmapedDict(str(new))  # type: ignore[no-untyped-call]
        try:
            for key, (value, timestamp) in merged.items():
                out.write_value(key, value, timestamp)  # type: ignore[no-untyped-call]
        finally:
            out.close()  # type: ignore[no-untyped-call]
        _fsync(new)
        journal = self.directory / _JOURNAL
        tmp = journal.with_name(_JOURNAL + ".tmp")
        tmp.write_text("".join(f"{p.name}\n" for p in files))
        _fsync(tmp)
        tmp.replace(journal)  # from here on the new archive counts these files
        new.replace(archive)
        self._finish_journal()
        return len(files)

    def _recover(self) -> None:
        """Finish or undo a fold a crash interrupted."""
        journal = self.directory / _JOURNAL
        pending = list(self.directory.glob("*.db.new"))
        if journal.exists() and pending:
            # the archive was not switched: the files still count as themselves
            journal.unlink()
        elif journal.exists():
            self._finish_journal()
        for path in pending:
            path.unlink()

    def _finish_journal(self) -> None:
        journal = self.directory / _JOURNAL
        for name in journal.read_text().split():
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        journal.unlink()

    def collect(self) -> Iterator[Metric]:
        try:
            self.tidy()
        except OSError:  # a folder it cannot tidy is still read
            logger.warning("could not tidy the metrics folder %s", self.directory, exc_info=True)
        with self._locked(exclusive=False, wait=True):
            metrics = list(self._inner.collect())  # type: ignore[no-untyped-call]
        yield from metrics


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def host_registry(
    directory: Path, *, catalogue: bool = True, url: str | None = None
) -> CollectorRegistry:
    """The registry `metrics serve` exposes: the host's processes and (optionally) the
    catalogue."""
    directory.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    registry.register(HostCollector(directory))
    if catalogue:
        from fleetwright.observability.catalogue import CatalogueCollector

        registry.register(CatalogueCollector(url))
    return registry

"""State backends `database` and `object` on real servers: the catalogue on SQLite and
Postgres, an S3-compatible server (moto's server mode) on loopback. A state saved by one host
(a StateStore with its own home) loads on another; each host caches by checksum; a failed
upload leaves the previous version current and loadable; pruning deletes what no version
names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import event, func, select

from fleetwright.browser import BrowserState, StateStore
from fleetwright.catalogue.db import get_engine, session_scope
from fleetwright.catalogue.models import Profile, ProfileState, StateBlob
from fleetwright.errors import ConfigurationError, StateError
from fleetwright.settings import get_settings, reset_settings

pytestmark = pytest.mark.postgres


def state(value: str) -> BrowserState:
    cookie = {
        "name": "sid",
        "value": value,
        "domain": "127.0.0.1",
        "path": "/",
        "expires": -1,
        "httpOnly": True,
        "secure": False,
        "sameSite": "Lax",
    }
    return BrowserState(
        storage={"cookies": [cookie], "origins": []},
        session_storage={"http://127.0.0.1:1": {"s": value}},
    )


def add_profile(url: str, name: str, mode: str = "storage") -> None:
    with session_scope(url) as session:
        session.add(Profile(name=name, state_mode=mode))


def bucket_keys(bucket: str) -> set[str]:
    settings = get_settings()
    client = boto3.session.Session().client("s3", endpoint_url=settings.state_endpoint_url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


class Gets:
    """Counts the object GETs a store's client sends."""

    def __init__(self, store: StateStore) -> None:
        self.count = 0
        store.objects.client.meta.events.register("before-call.s3.GetObject", self._hit)

    def _hit(self, **_kw: Any) -> None:
        self.count += 1


class BlobReads:
    """Counts the catalogue queries that read a state blob's bytes."""

    def __init__(self, url: str) -> None:
        self.count = 0
        event.listen(get_engine(url), "before_cursor_execute", self._hit)

    def _hit(self, _conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT STATE_BLOBS.DATA"):
            self.count += 1


@pytest.mark.parametrize("backend", ["database", "object"])
def test_save_load_rollback_prune_and_another_host(
    backend: str,
    catalogue_url: str,
    home: Path,
    tmp_path: Path,
    use_backend: Callable[[str], str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEETWRIGHT_STATE_VERSIONS_KEPT", "2")
    bucket = use_backend(backend)
    host_a = StateStore(catalogue_url, home=home)
    host_b = StateStore(catalogue_url, home=tmp_path / "host-b")
    add_profile(catalogue_url, "ann")
    assert host_b.load("ann") is None
    assert host_a.save("ann", state("one"), run_id=3) == 1
    assert host_a.save("ann", state("two")) == 2
    # host B never saw the profile: its state follows the profile through the backend
    assert host_b.load("ann") == state("two")
    listed = host_b.versions("ann")
    assert [(v.version, v.current, v.run_id) for v in listed] == [(2, True, None), (1, False, 3)]
    prefix = "db:" if backend == "database" else "s3:"
    assert all(v.path is None and v.location.startswith(prefix) for v in listed)
    host_b.rollback("ann", 1)
    assert host_a.load("ann") == state("one")
    assert host_b.load("ann") == state("one")
    assert host_b.save("ann", state("three")) == 3
    assert host_a.load("ann") == state("three")
    assert host_a.save("ann", state("four")) == 4
    # pruning: only the two kept versions' bytes remain anywhere
    kept = host_a.versions("ann")
    assert [v.version for v in kept] == [4, 3]
    digests = {v.checksum for v in kept}
    if backend == "database":
        with session_scope(catalogue_url) as session:
            assert set(session.scalars(select(StateBlob.checksum))) == digests
    else:
        assert bucket is not None
        assert bucket_keys(bucket) == {v.location.removeprefix("s3:") for v in kept}
    # a host's cache holds only listed versions once it saved or fetched again
    assert host_b.load("ann") == state("four")
    for store in (host_a, host_b):
        cached = {p.name.split(".")[0] for p in store.cache_dir("ann").iterdir()}
        assert cached <= digests
    # nothing was written under the homes but the caches
    assert not list(host_a.profile_dir("ann").glob("v*"))


@pytest.mark.parametrize("backend", ["database", "object"])
def test_an_unchanged_state_is_fetched_once_per_host(
    backend: str, home: Path, tmp_path: Path, use_backend: Callable[[str], str | None]
) -> None:
    use_backend(backend)
    url = get_settings().catalogue_url
    host_a = StateStore(url, home=home)
    host_b = StateStore(url, home=tmp_path / "host-b")
    add_profile(url, "bo")
    host_a.save("bo", state("one"))

    counter: Gets | BlobReads = Gets(host_b) if backend == "object" else BlobReads(url)
    assert host_b.load("bo") == state("one")
    assert host_b.load("bo") == state("one")
    assert counter.count == 1, "the second load came from host B's cache"
    host_a.save("bo", state("two"))
    assert host_b.load("bo") == state("two")
    assert host_b.load("bo") == state("two")
    assert counter.count == 2, "a new version is fetched once"
    # the saving host caches what it saved: no fetch at all there
    counter_a: Gets | BlobReads = Gets(host_a) if backend == "object" else counter
    before = counter_a.count
    assert host_a.load("bo") == state("two")
    assert counter_a.count == before
    # a corrupt cached copy is not trusted: it is fetched again
    cached = host_b.cache_dir("bo") / f"{host_b.versions('bo')[0].checksum}.json"
    cached.write_bytes(b'{"format": 1, "garbage": true}')
    assert host_b.load("bo") == state("two")


def test_a_failed_upload_keeps_the_previous_version(
    home: Path,
    tmp_path: Path,
    own_s3_server: Any,
    aws_env: None,
    bucket_on: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = bucket_on(own_s3_server.url)
    monkeypatch.setenv("FLEETWRIGHT_STATE_BACKEND", "object")
    monkeypatch.setenv("FLEETWRIGHT_STATE_ENDPOINT_URL", own_s3_server.url)
    monkeypatch.setenv("FLEETWRIGHT_STATE_BUCKET", bucket)
    reset_settings()
    url = get_settings().catalogue_url
    host_a = StateStore(url, home=home)
    add_profile(url, "cy")
    host_a.save("cy", state("before"))
    own_s3_server.stop()  # the server goes away: the upload fails
    with pytest.raises(StateError, match=r"Could not upload s3://fw-\w+/fleetwright/profiles/"):
        host_a.save("cy", state("lost"))
    assert host_a.current_version("cy") == 1
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(ProfileState)) == 1
    assert host_a.load("cy") == state("before"), "host A still loads it from its cache"
    own_s3_server.start()  # same port, same stored objects
    assert StateStore(url, home=tmp_path / "host-b").load("cy") == state("before")

    # an upload that raises midway (here: the client's put) changes nothing either
    def broken_put(**_kw: Any) -> None:
        raise ConnectionResetError("connection reset while sending the body")

    monkeypatch.setattr(host_a.objects.client, "put_object", broken_put)
    with pytest.raises(ConnectionResetError):
        host_a.save("cy", state("lost again"))
    assert host_a.current_version("cy") == 1
    assert StateStore(url, home=tmp_path / "host-c").load("cy") == state("before")
    assert len(bucket_keys(bucket)) == 1


def _write_profile(root: Path, value: str, *, big: int = 0) -> None:
    (root / "Default").mkdir(parents=True, exist_ok=True)
    (root / "Default" / "Cookies").write_text(value)
    (root / "Local State").write_text("{}")
    for cache in ("Default/Cache/Cache_Data", "Default/Code Cache/js", "GPUCache"):
        (root / cache).mkdir(parents=True, exist_ok=True)
        (root / cache / "data_0").write_bytes(b"c" * 1000)
    workers = root / "Default" / "Service Worker" / "CacheStorage"
    workers.mkdir(parents=True, exist_ok=True)
    (workers / "index").write_text("cached responses")
    (root / "Default" / "Service Worker" / "Database").mkdir(exist_ok=True)
    (root / "Default" / "Service Worker" / "Database" / "CURRENT").write_text("MANIFEST-1")
    (root / "Crash Reports").mkdir(exist_ok=True)
    (root / "Crash Reports" / "report.dmp").write_text("dump")
    if big:
        (root / "Default" / "blob.bin").write_bytes(b"x" * big)


def test_persistent_state_follows_the_profile_through_the_bucket(
    home: Path,
    tmp_path: Path,
    use_backend: Callable[[str], str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEETWRIGHT_STATE_VERSIONS_KEPT", "2")
    bucket = use_backend("object")
    assert bucket is not None
    url = get_settings().catalogue_url
    host_a = StateStore(url, home=home)
    host_b = StateStore(url, home=tmp_path / "host-b")
    add_profile(url, "dee", "persistent")

    work = host_a.checkout("dee")
    assert list(work.iterdir()) == []
    _write_profile(work, "one")
    assert host_a.commit("dee", work) == 1
    keys = bucket_keys(bucket)
    assert len(keys) == 1 and next(iter(keys)).endswith(".tar.zst")
    assert next(iter(keys)).rsplit("/", 1)[-1].removesuffix(".tar.zst") == (
        host_a.versions("dee")[0].checksum
    )

    gets = Gets(host_b)
    on_b = host_b.checkout("dee")
    assert (on_b / "Default" / "Cookies").read_text() == "one"
    assert (on_b / "Default" / "Service Worker" / "Database" / "CURRENT").exists()
    for left_out in (
        "Default/Cache",
        "Default/Code Cache",
        "GPUCache",
        "Default/Service Worker/CacheStorage",
        "Crash Reports",
    ):
        assert not (on_b / left_out).exists(), left_out
    host_b.discard(on_b)
    again = host_b.checkout("dee")
    assert (again / "Default" / "Cookies").read_text() == "one"
    assert gets.count == 1, "the unchanged pack was downloaded once by host B"

    (again / "Default" / "Cookies").write_text("two")
    assert host_b.commit("dee", again) == 2
    back_on_a = host_a.checkout("dee")
    assert (back_on_a / "Default" / "Cookies").read_text() == "two"
    host_a.discard(back_on_a)

    host_a.rollback("dee", 1)
    rolled = host_b.checkout("dee")
    assert (rolled / "Default" / "Cookies").read_text() == "one"
    assert gets.count == 1, "version 1 was still in host B's cache"
    (rolled / "Default" / "Cookies").write_text("three")
    assert host_b.commit("dee", rolled) == 3
    assert [v.version for v in host_a.versions("dee")] == [3, 2]
    assert bucket_keys(bucket) == {
        v.location.removeprefix("s3:") for v in host_a.versions("dee")
    }, "the pack of version 1 was pruned"
    with pytest.raises(StateError, match="persistent state; launch it in persistent mode"):
        host_a.load("dee")

    # a failed upload: the catalogue still points at version 3, which loads on a new host
    def broken(*_a: Any, **_kw: Any) -> None:
        raise StateError("Could not upload (test)")

    work = host_a.checkout("dee")
    (work / "Default" / "Cookies").write_text("lost")
    monkeypatch.setattr(host_a.objects, "put_file", broken)
    with pytest.raises(StateError, match="Could not upload"):
        host_a.commit("dee", work)
    assert host_a.current_version("dee") == 3
    fresh = StateStore(url, home=tmp_path / "host-c").checkout("dee")
    assert (fresh / "Default" / "Cookies").read_text() == "three"


def test_database_backend_refuses_persistent_profiles(
    home: Path, use_backend: Callable[[str], str | None]
) -> None:
    use_backend("database")
    store = StateStore()
    add_profile(store.url, "eve", "persistent")
    with pytest.raises(StateError, match="set FLEETWRIGHT_STATE_BACKEND=object or local"):
        store.checkout("eve")
    assert not list(store.profile_dir("eve").glob("work-*"))


def test_object_backend_needs_a_bucket(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETWRIGHT_STATE_BACKEND", "object")
    reset_settings()
    store = StateStore()
    add_profile(store.url, "fay")
    with pytest.raises(ConfigurationError, match="needs FLEETWRIGHT_STATE_BUCKET"):
        store.save("fay", state("x"))
    assert store.current_version("fay") == 0
    monkeypatch.setenv("FLEETWRIGHT_STATE_BACKEND", "ftp")
    reset_settings()
    with pytest.raises(ConfigurationError, match="FLEETWRIGHT_STATE_BACKEND='ftp' is not valid"):
        get_settings()


def test_versions_saved_under_local_stay_readable_after_a_switch(
    home: Path, use_backend: Callable[[str], str | None]
) -> None:
    store = StateStore()
    add_profile(store.url, "gus")
    store.save("gus", state("local"))
    use_backend("database")
    moved = StateStore()
    assert moved.load("gus") == state("local")
    assert moved.save("gus", state("db")) == 2
    moved.rollback("gus", 1)
    assert moved.load("gus") == state("local")


_SAVER = """
import sys
from fleetwright.browser import BrowserState, StateStore
store = StateStore()
print("saving", flush=True)
i = 0
while True:
    i += 1
    pad = {"i": str(i), "pad": "x" * 3_000_000}
    store.save("kim", BrowserState(session_storage={"http://x": pad}))
    print(i, flush=True)
"""


@pytest.mark.parametrize("backend", ["database", "object"])
def test_sigkill_while_saving_leaves_a_loadable_version(
    backend: str, home: Path, tmp_path: Path, use_backend: Callable[[str], str | None]
) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    use_backend(backend)
    url = get_settings().catalogue_url
    add_profile(url, "kim")
    StateStore(url, home=home).save("kim", state("first"))
    rng = random.Random(4)
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER], stdout=subprocess.PIPE, env={**os.environ}
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"saving"
            time.sleep(rng.uniform(0.05, 1.5))  # somewhere in a save: upload, switch, prune
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        # a host that never saw the profile loads the current version, and every listed one
        other = StateStore(url, home=tmp_path / f"host-{round_}")
        current = other.current_version("kim")
        loaded = other.load("kim")
        assert loaded is not None
        for listed in other.versions("kim"):
            other.rollback("kim", listed.version)
            assert other.load("kim") is not None
        other.rollback("kim", current)
    assert StateStore(url, home=home).save("kim", state("after")) > 1
    assert StateStore(url, home=tmp_path / "last").load("kim") == state("after")

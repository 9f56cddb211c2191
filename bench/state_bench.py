"""State backends: how long saving and fetching a profile state takes on each backend.

Storage mode: a ~40 KB state (cookies, localStorage, sessionStorage) saved (`StateStore.save`)
and fetched on a host that has no cached copy (`StateStore.load` with the host cache emptied
first, so database/object fetch the bytes). Persistent mode: a ~30 MB user-data-dir (half
random bytes, half repetitive text, plus cache folders that are left out) committed
(`StateStore.commit`: local renames; object packs tar + zstd and uploads) and checked out on a
host with no cached copy (`StateStore.checkout`: object downloads and unpacks). Local files do
not move between hosts, so local fetches run on the saving host (persistent: the copy staged at
commit is taken by a rename, as in a real launch).
The catalogue is the bench's Postgres; the bucket is moto's S3-compatible server on loopback,
in this process (an in-memory server: network and TLS of a real S3 are not in the figure).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Bench
from bench.stats import Figure, summary
from fleetwright.browser import BrowserState, StateStore
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.settings import reset_settings

__all__ = ["FIGURES", "run"]

_BACKENDS = {"storage": ("local", "database", "object"), "persistent": ("local", "object")}
FIGURES = tuple(
    f"state_{kind}_ms_{backend}_{mode}"
    for mode, backends in _BACKENDS.items()
    for backend in backends
    for kind in ("save", "fetch")
)
_PERSISTENT_MB = 30


def _state(i: int) -> BrowserState:
    cookies = [
        {
            "name": f"c{n}",
            "value": f"{i}-{n}-" + "v" * 200,
            "domain": "example.test",
            "path": "/",
            "expires": -1,
            "httpOnly": False,
            "secure": False,
            "sameSite": "Lax",
        }
        for n in range(40)
    ]
    local = [{"name": f"k{n}", "value": f"{i}" + "x" * 500} for n in range(40)]
    return BrowserState(
        storage={
            "cookies": cookies,
            "origins": [{"origin": "http://x.test", "localStorage": local}],
        },
        session_storage={"http://x.test": {"s": str(i)}},
    )


def _fill_profile(root: Path, rng: random.Random) -> None:
    """~30 MB: half incompressible, half text; plus caches a pack leaves out."""
    default = root / "Default"
    default.mkdir(parents=True, exist_ok=True)
    half = _PERSISTENT_MB * (1 << 20) // 2
    files = 60
    for n in range(files):
        (default / f"blob-{n:03d}").write_bytes(rng.randbytes(half // files))
        line = f"key-{n} some repeated profile text {n * 7}\n".encode()
        (default / f"text-{n:03d}.log").write_bytes(line * (half // files // len(line)))
    for cache in ("Cache/Cache_Data", "Code Cache/js", "GPUCache"):
        (default / cache).mkdir(parents=True, exist_ok=True)
        (default / cache / "data_1").write_bytes(rng.randbytes(1 << 20))


def _ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _use(backend: str, endpoint: str, bucket: str) -> None:
    os.environ["FLEETWRIGHT_STATE_BACKEND"] = backend
    os.environ["FLEETWRIGHT_STATE_ENDPOINT_URL"] = endpoint
    os.environ["FLEETWRIGHT_STATE_BUCKET"] = bucket
    reset_settings()


def _measure_one(
    bench: Bench, mode: str, backend: str, rng: random.Random
) -> tuple[list[float], list[float], dict[str, Any]]:
    n, url = bench.sizes.state_n, bench.catalogue_url
    name = f"state-{mode}-{backend}-{uuid.uuid4().hex[:6]}"
    with session_scope(url) as session:
        session.add(Profile(name=name, state_mode=mode))
    host_a = StateStore(url, home=bench.root / "state-a")
    # local files do not move between hosts: local fetches on the saving host
    host_b = host_a if backend == "local" else StateStore(url, home=bench.root / "state-b")
    saves: list[float] = []
    fetches: list[float] = []
    extra: dict[str, Any] = {"backend": backend}
    if mode == "storage":
        extra["state_bytes"] = len(_state(0).model_dump_json())
        for i in range(n):
            state = _state(i)
            saves.append(_ms(lambda state=state: host_a.save(name, state)))
            shutil.rmtree(host_b.cache_dir(name), ignore_errors=True)
            fetches.append(_ms(lambda: host_b.load(name)))
        return saves, fetches, extra
    work = host_a.checkout(name)
    _fill_profile(work, rng)
    host_a.commit(name, work)
    extra["profile_mb"] = _PERSISTENT_MB
    extra["stored_bytes"] = host_a.versions(name)[0].size_bytes
    for i in range(n):
        work = host_a.checkout(name)
        (work / "Default" / "Cookies").write_bytes(rng.randbytes(64 << 10))
        (work / "Default" / "Cookies-journal").write_text(str(i))
        saves.append(_ms(lambda work=work: host_a.commit(name, work)))
        shutil.rmtree(host_b.cache_dir(name), ignore_errors=True)
        if backend != "local":  # the saving host's staged copy is not on host B
            for staged in host_b.profile_dir(name).glob("ready-*"):
                shutil.rmtree(staged, ignore_errors=True)
        box: list[Path] = []
        fetches.append(_ms(lambda box=box: box.append(host_b.checkout(name))))
        host_b.discard(box[0])
    return saves, fetches, extra


def _measure(bench: Bench, endpoint: str, bucket: str) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    rng = random.Random(7)
    for mode, backends in _BACKENDS.items():
        save_how = "StateStore.save" if mode == "storage" else "StateStore.commit"
        fetch_how = (
            "StateStore.load" if mode == "storage" else "StateStore.checkout"
        ) + " on a host with no cached copy (local: on the saving host)"
        for backend in backends:
            _use(backend, endpoint, bucket)
            saves, fetches, extra = _measure_one(bench, mode, backend, rng)
            figures[f"state_save_ms_{backend}_{mode}"] = summary(saves, "ms", how=save_how, **extra)
            figures[f"state_fetch_ms_{backend}_{mode}"] = summary(
                fetches, "ms", how=fetch_how, **extra
            )
    return figures


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.testing.s3 import S3Server

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = S3Server().start()
    try:
        bucket = server.create_bucket(f"fw-bench-{bench.run_id}")
        return await asyncio.to_thread(_measure, bench, server.url, bucket)
    finally:
        server.stop()
        for key in ("FLEETWRIGHT_STATE_BACKEND", "FLEETWRIGHT_STATE_ENDPOINT_URL"):
            os.environ.pop(key, None)
        os.environ.pop("FLEETWRIGHT_STATE_BUCKET", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
        reset_settings()

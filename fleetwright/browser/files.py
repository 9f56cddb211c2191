"""Durable file operations for profile state: atomic writes, directory fsync, tree copies."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from fleetwright.private import PRIVATE_FILE_MODE, private_dir

__all__ = [
    "CACHE_DIRS",
    "atomic_write_bytes",
    "copy_profile_dir",
    "dir_size",
    "fsync_dir",
    "prune_caches",
    "sha256_file",
]

#: Chromium user-data-dir entries that are caches or locks: not worth versioning.
CACHE_DIRS: frozenset[str] = frozenset(
    {
        "Cache",
        "Code Cache",
        "GPUCache",
        "DawnGraphiteCache",
        "DawnWebGPUCache",
        "GrShaderCache",
        "GraphiteDawnCache",
        "ShaderCache",
        "component_crx_cache",
        "Crashpad",
        "BrowserMetrics",
        "SingletonLock",
        "SingletonSocket",
        "SingletonCookie",
    }
)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part.

    The file is its owner's only (0600, in a folder created 0700): states hold session cookies.
    """
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ignore_caches(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in CACHE_DIRS}


def copy_profile_dir(src: Path, dst: Path) -> None:
    """Copy a user-data-dir without its caches and locks."""
    shutil.copytree(src, dst, symlinks=True, ignore=_ignore_caches)


def prune_caches(root: Path) -> None:
    """Delete caches and locks from a closed user-data-dir before it becomes a version."""
    for current, dirs, files in os.walk(root):
        for name in list(dirs):
            if name in CACHE_DIRS:
                shutil.rmtree(Path(current) / name, ignore_errors=True)
                dirs.remove(name)
        for name in files:
            if name in CACHE_DIRS:
                (Path(current) / name).unlink(missing_ok=True)


def dir_size(root: Path) -> int:
    total = 0
    for current, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(current) / name).lstat().st_size
    return total

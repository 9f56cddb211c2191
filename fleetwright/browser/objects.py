"""Profile states in an S3-compatible bucket (state backend `object`), and the packing of
persistent user-data-dirs as tar + zstd.

Objects are content-addressed: a state's key ends in the sha256 of its bytes, so an object is
written once, never overwritten, and a catalogue row that names a key names exactly those
bytes. Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, instance roles); Fleetwright never stores or logs them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import zstandard

from fleetwright.browser.files import CACHE_DIRS, fsync_dir
from fleetwright.errors import ConfigurationError, StateError
from fleetwright.settings import Settings

__all__ = ["PACK_SKIP", "ObjectStore", "pack_dir", "strip_pack_skips", "unpack"]

#: Entries left out of a persistent pack: the caches and locks a local version drops too,
#: plus Service Worker caches and crash reports (relative paths below a profile folder).
PACK_SKIP: frozenset[str] = CACHE_DIRS | {"Crash Reports", "CacheStorage", "ScriptCache"}

#: An unreferenced object younger than this may belong to a save still in flight elsewhere.
ORPHAN_GRACE = timedelta(minutes=15)


def _skipped(name: str) -> bool:
    return name in PACK_SKIP


def strip_pack_skips(root: Path) -> None:
    """Delete what a pack leaves out, so the folder and its pack hold the same profile."""
    for current, dirs, files in os.walk(root):
        for name in list(dirs):
            if _skipped(name):
                shutil.rmtree(Path(current) / name, ignore_errors=True)
                dirs.remove(name)
        for name in files:
            if _skipped(name):
                (Path(current) / name).unlink(missing_ok=True)


class _HashingWriter:
    """A file wrapper that hashes and counts what goes through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def pack_dir(root: Path, target: Path) -> tuple[str, int]:
    """Pack `root` into `target` (tar + zstd, caches left out); returns (sha256, size)."""
    with open(target, "wb") as raw:
        hashing = _HashingWriter(raw)
        compressor = zstandard.ZstdCompressor(level=3)
        with (
            compressor.stream_writer(hashing, closefd=False) as zwriter,  # type: ignore[arg-type]
            tarfile.open(fileobj=zwriter, mode="w|") as tar,
        ):
            for entry in sorted(root.iterdir()):
                if not _skipped(entry.name):
                    tar.add(entry, arcname=entry.name, filter=_tar_filter)
        raw.flush()
        os.fsync(raw.fileno())
    return hashing.digest.hexdigest(), hashing.size


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if any(_skipped(part) for part in Path(info.name).parts):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def unpack(pack: Path, into: Path) -> None:
    """Unpack a tar + zstd pack into the new folder `into` (only plain files and folders)."""
    into.mkdir(parents=True)
    with open(pack, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            tar.extractall(into, filter="data")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    modified: datetime


class ObjectStore:
    """One bucket and prefix of an S3-compatible server, through boto3."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "fleetwright/",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint_url = endpoint_url
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        if not settings.state_bucket:
            raise ConfigurationError(
                "FLEETWRIGHT_STATE_BACKEND=object needs FLEETWRIGHT_STATE_BUCKET (and "
                "FLEETWRIGHT_STATE_ENDPOINT_URL for a server other than AWS S3)"
            )
        return cls(
            settings.state_bucket,
            prefix=settings.state_prefix,
            endpoint_url=settings.state_endpoint_url,
            region=settings.state_region,
        )

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key(self, folder: str, name: str) -> str:
        return f"{self.prefix}profiles/{folder}/{name}"

    def folder_prefix(self, folder: str) -> str:
        return f"{self.prefix}profiles/{folder}/"

    def _fail(self, action: str, key: str, exc: Exception) -> StateError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return StateError(f"Could not {action} {self.where(key)} ({code}); check the bucket")

    def put_bytes(self, key: str, data: bytes, checksum: str) -> None:
        """Store `data` under `key`; returns once the server has it durably."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                Metadata={"sha256": checksum},
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("upload", key, exc) from None

    def put_file(self, key: str, path: Path, checksum: str) -> None:
        """Store a file under `key` (multipart for big ones, completed as one object)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"Metadata": {"sha256": checksum}}
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("upload", key, exc) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._fail("check", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("check", key, exc) from None

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("download", key, exc) from None

    def get_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.download_file(self.bucket, key, str(path))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("download", key, exc) from None

    def delete(self, keys: list[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            except (BotoCoreError, ClientError) as exc:
                raise self._fail("delete", chunk[0], exc) from None

    def listing(self, prefix: str) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    modified = item["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    yield ObjectInfo(item["Key"], modified)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", prefix, exc) from None


def fetch_verified(store: ObjectStore, key: str, target: Path, checksum: str) -> None:
    """Download `key` into `target` and check its sha256 (a mismatch: StateError)."""
    partial = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        store.get_file(key, partial)
        digest = hashlib.sha256()
        with open(partial, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if checksum and digest.hexdigest() != checksum:
            raise StateError(
                f"{store.where(key)} is corrupt (checksum mismatch); roll back to an earlier "
                "version"
            )
        os.replace(partial, target)
        fsync_dir(target.parent)
    finally:
        partial.unlink(missing_ok=True)

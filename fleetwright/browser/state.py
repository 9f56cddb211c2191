"""Versioned profile state: each save is a new version, switched to atomically in the catalogue.

Storage mode keeps one JSON file per version (Playwright storage state + sessionStorage);
persistent mode keeps one user-data-dir per version and runs each session on a working copy.
Files are written and made durable first, then ONE catalogue transaction adds the version row
and points the profile at it, so a process killed at any moment leaves the previous version.

Where the bytes live is the state backend (settings.state_backend): `local` files under the
home, `database` (storage mode only: a StateBlob row written in the switching transaction) or
`object` (an S3-compatible bucket; persistent user-data-dirs packed as tar + zstd). Database
and object versions are content-addressed (their checksum names them) and each host keeps a
cache of them under <home>/profiles/<profile>/cache, so an unchanged state is fetched once. A
row's path says where its bytes are (`db:<sha256>`, `s3:<key>`, else a file), so versions
saved under another backend stay readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from fleetwright.browser.files import (
    atomic_write_bytes,
    copy_profile_dir,
    dir_size,
    fsync_dir,
    prune_caches,
)
from fleetwright.browser.objects import (
    ORPHAN_GRACE,
    ObjectStore,
    fetch_verified,
    pack_dir,
    strip_pack_skips,
    unpack,
)
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileState, StateBlob
from fleetwright.errors import ConfigurationError, NotFoundError, StateError
from fleetwright.private import PRIVATE_DIR_MODE, private_dir
from fleetwright.settings import get_settings
from fleetwright.specs import block_name_for

__all__ = ["BrowserState", "StateStore", "StateVersion", "StoredRef"]

logger = logging.getLogger(__name__)
_HOST = socket.gethostname().replace("-", "_")
_DB = "db:"
_S3 = "s3:"
_PACK = ".tar.zst"
BACKENDS = ("local", "database", "object")

# The statements of a state switch and of a session's state lookup, built once: a session's
# catalogue work is a handful of short statements, and building each one anew (and its
# compiled-cache key) cost more CPU than running it.
_PROFILE_FOR_SWITCH = (
    select(Profile.id, Profile.state_version)
    .where(Profile.name == bindparam("name"))
    .with_for_update(key_share=True)  # see proxies.locking
)
_VERSIONS = (
    select(ProfileState.id, ProfileState.version, ProfileState.path)
    .where(ProfileState.profile_id == bindparam("pid"))
    .order_by(ProfileState.version.desc())
)
_ADD_VERSION = insert(ProfileState)
_NO_SYNC = {"synchronize_session": False}  # these sessions hold no ORM objects to update
_POINT_AT = (
    update(Profile)
    .where(Profile.id == bindparam("pid"))
    .values(state_version=bindparam("version"))
    .execution_options(**_NO_SYNC)
)
_DROP_VERSIONS = (
    delete(ProfileState)
    .where(ProfileState.id.in_(bindparam("ids", expanding=True)))
    .execution_options(**_NO_SYNC)
)
_BLOB_PRESENT = select(StateBlob.id).where(
    StateBlob.profile_id == bindparam("pid"), StateBlob.checksum == bindparam("checksum")
)
_ADD_BLOB = insert(StateBlob)
_DROP_BLOBS = (
    delete(StateBlob).where(StateBlob.profile_id == bindparam("pid")).execution_options(**_NO_SYNC)
)
_DROP_UNNAMED_BLOBS = _DROP_BLOBS.where(
    StateBlob.checksum.not_in(bindparam("named", expanding=True))
)
_CURRENT = (
    select(Profile.state_version, ProfileState.path, ProfileState.checksum)
    .outerjoin(
        ProfileState,
        (ProfileState.profile_id == Profile.id) & (ProfileState.version == Profile.state_version),
    )
    .where(Profile.name == bindparam("name"))
)


def _remote(location: str) -> bool:
    return location.startswith((_DB, _S3))


def _digest_of(location: str) -> str | None:
    """The content checksum a database/object location is named by (None: a local file)."""
    if location.startswith(_DB):
        return location[len(_DB) :]
    if location.startswith(_S3):
        return location.rsplit("/", 1)[-1].split(".", 1)[0]
    return None


class BrowserState(BaseModel):
    """A storage-mode profile's state: Playwright's storage state plus sessionStorage."""

    model_config = ConfigDict(extra="ignore")

    format: int = 1
    storage: dict[str, Any] = Field(default_factory=lambda: {"cookies": [], "origins": []})
    session_storage: dict[str, dict[str, str]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredRef:
    """Which saved state a profile points at: version (0: never saved), file, checksum."""

    profile_name: str
    version: int
    path: str | None
    checksum: str | None


@dataclass(frozen=True, slots=True)
class StateVersion:
    """One saved version as the catalogue lists it (path: its local file, None when it is kept
    in the catalogue or a bucket; location: where it is, as the catalogue row says)."""

    version: int
    path: Path | None
    size_bytes: int
    checksum: str
    run_id: int | None
    created_at: datetime
    current: bool
    location: str = ""


class StateStore:
    """Load, save, list and roll back profile state versions."""

    def __init__(
        self,
        url: str | None = None,
        home: Path | None = None,
        *,
        backend: str | None = None,
        objects: ObjectStore | None = None,
    ) -> None:
        settings = get_settings()
        self.url = url or settings.catalogue_url
        self.home = home or settings.home
        self.keep = settings.state_versions_kept
        self.backend = backend or settings.state_backend
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"Unknown state backend {self.backend!r}; use one of {', '.join(BACKENDS)}"
            )
        self._objects = objects
        self._settings = settings

    @property
    def objects(self) -> ObjectStore:
        """The bucket of the `object` backend (made from settings on first use)."""
        if self._objects is None:
            self._objects = ObjectStore.from_settings(self._settings)
        return self._objects

    def cache_dir(self, profile_name: str) -> Path:
        """This host's copies of database/object versions, named by checksum."""
        return self.profile_dir(profile_name) / "cache"

    # -- paths -------------------------------------------------------------------------
    def profile_dir(self, profile_name: str) -> Path:
        """Where the profile's versions live: <home>/profiles/<block name>."""
        return self.home / "profiles" / block_name_for(profile_name)

    def _abs(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.home / path

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.home))
        except ValueError:
            return str(path)

    # -- catalogue helpers -------------------------------------------------------------
    def _profile(self, session: Session, profile_name: str, *, lock: bool = False) -> Profile:
        query = select(Profile).where(Profile.name == profile_name)
        if lock:
            query = query.with_for_update(key_share=True)  # see proxies.locking
        profile = session.scalars(query).one_or_none()
        if profile is None:
            raise NotFoundError(
                f"Profile {profile_name!r} is not in the catalogue; "
                "create it first (fleetwright profile add)"
            )
        return profile

    def _next_version(self, session: Session, profile: Profile) -> int:
        top = session.scalar(
            select(func.max(ProfileState.version)).where(ProfileState.profile_id == profile.id)
        )
        return max(profile.state_version, top or 0) + 1

    def _current_row(self, profile_name: str) -> tuple[int, ProfileState | None]:
        with session_scope(self.url) as session:
            profile = self._profile(session, profile_name)
            if profile.state_version <= 0:
                return 0, None
            row = session.scalars(
                select(ProfileState).where(
                    ProfileState.profile_id == profile.id,
                    ProfileState.version == profile.state_version,
                )
            ).one_or_none()
            return profile.state_version, row

    def _switch(
        self,
        profile_name: str,
        location: str,
        *,
        size: int,
        checksum: str,
        run_id: int | None,
        blob: bytes | None = None,
    ) -> tuple[int, list[str], set[str]]:
        """One transaction: add the version row (and its StateBlob when `blob` is given),
        point the profile at it, drop the rows beyond the newest `keep` and the blobs no row
        names any more. Returns the version, the dropped rows' locations, the kept ones."""
        with session_scope(self.url) as session:
            found = session.execute(_PROFILE_FOR_SWITCH, {"name": profile_name}).one_or_none()
            if found is None:
                raise NotFoundError(
                    f"Profile {profile_name!r} is not in the catalogue; "
                    "create it first (fleetwright profile add)"
                )
            profile_id, current = found
            rows = session.execute(_VERSIONS, {"pid": profile_id}).all()
            version = max(current, rows[0].version if rows else 0) + 1
            session.execute(
                _ADD_VERSION,
                {
                    "profile_id": profile_id,
                    "version": version,
                    "path": location,
                    "size_bytes": size,
                    "checksum": checksum,
                    "run_id": run_id,
                },
            )
            session.execute(_POINT_AT, {"pid": profile_id, "version": version})
            kept, doomed = rows[: max(self.keep - 1, 0)], rows[max(self.keep - 1, 0) :]
            if doomed:
                session.execute(_DROP_VERSIONS, {"ids": [r.id for r in doomed]})
            kept_paths = {location, *(r.path for r in kept)}
            if blob is not None:
                present = session.scalar(_BLOB_PRESENT, {"pid": profile_id, "checksum": checksum})
                if present is None:
                    session.execute(
                        _ADD_BLOB,
                        {
                            "profile_id": profile_id,
                            "checksum": checksum,
                            "size_bytes": len(blob),
                            "data": blob,
                        },
                    )
            if blob is not None or any(r.path.startswith(_DB) for r in doomed):
                named = sorted(p[len(_DB) :] for p in kept_paths if p.startswith(_DB))
                if named:
                    session.execute(_DROP_UNNAMED_BLOBS, {"pid": profile_id, "named": named})
                else:
                    session.execute(_DROP_BLOBS, {"pid": profile_id})
            return version, [r.path for r in doomed], kept_paths

    def _delete_paths(self, paths: list[Path]) -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _forget(self, profile_name: str, doomed: list[str], kept: set[str]) -> None:
        """After a switch: delete what the dropped versions used and no kept one names
        (their files, their objects, this host's cached copies)."""
        self._delete_paths([self._abs(p) for p in doomed if not _remote(p) and p not in kept])
        keys = [p[len(_S3) :] for p in doomed if p.startswith(_S3) and p not in kept]
        if keys:
            self.objects.delete(sorted(set(keys)))
        self._trim_cache(profile_name, kept)

    def _trim_cache(self, profile_name: str, kept: set[str] | None = None) -> None:
        """Drop this host's cached copies of versions the catalogue no longer lists."""
        cache = self.cache_dir(profile_name)
        if not cache.is_dir():
            return
        if kept is None:
            with session_scope(self.url) as session:
                profile = self._profile(session, profile_name)
                kept = set(
                    session.scalars(
                        select(ProfileState.path).where(ProfileState.profile_id == profile.id)
                    )
                )
        digests = {_digest_of(p) for p in kept}
        for entry in cache.iterdir():
            if not entry.name.startswith(".") and entry.name.split(".", 1)[0] not in digests:
                self._delete_paths([entry])

    def _sweep_objects(self, profile_name: str, kept: set[str]) -> None:
        """Delete the profile's objects no version names, once old enough not to belong to a
        save still running elsewhere (a save killed between its upload and its switch)."""
        named = {p[len(_S3) :] for p in kept if p.startswith(_S3)}
        horizon = datetime.now(UTC) - ORPHAN_GRACE
        prefix = self.objects.folder_prefix(block_name_for(profile_name))
        stale = [
            o.key
            for o in self.objects.listing(prefix)
            if o.key not in named and o.modified < horizon
        ]
        if stale:
            logger.info("Removing %d unreferenced state objects of %s", len(stale), profile_name)
            self.objects.delete(stale)

    def _referenced(self, profile_name: str) -> set[Path]:
        with session_scope(self.url) as session:
            profile = self._profile(session, profile_name)
            stored = session.scalars(
                select(ProfileState.path).where(ProfileState.profile_id == profile.id)
            ).all()
            return {self._abs(p) for p in stored if not _remote(p)}

    def _sweep_orphans(
        self, profile_name: str, *, keep: Path, referenced: set[Path] | None = None
    ) -> None:
        """Remove version files no row points at (left by a save killed before its switch)."""
        folder = self.profile_dir(profile_name)
        if referenced is None:
            referenced = self._referenced(profile_name)
        for entry in folder.glob("[vp][0-9]*"):
            if entry != keep and entry not in referenced:
                logger.info("Removing unreferenced state %s", entry.name)
                self._delete_paths([entry])
        for entry in [*folder.glob(".[vp]*.tmp-*"), *folder.glob(".ready-*.tmp-*")]:
            pid = entry.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
                self._delete_paths([entry])

    # -- storage mode ------------------------------------------------------------------
    def current_in(self, session: Session, profile_name: str) -> StoredRef:
        """In the caller's transaction: the version the profile points at, and its file."""
        found = session.execute(_CURRENT, {"name": profile_name}).one_or_none()
        if found is None:
            raise NotFoundError(
                f"Profile {profile_name!r} is not in the catalogue; "
                "create it first (fleetwright profile add)"
            )
        return StoredRef(profile_name, found[0], found[1], found[2])

    def load(self, profile_name: str) -> BrowserState | None:
        """The profile's current storage state, or None when it has never been saved."""
        with session_scope(self.url) as session:
            ref = self.current_in(session, profile_name)
        return self.read(ref)

    def read(self, ref: StoredRef) -> BrowserState | None:
        """The storage state `ref` points at (None: never saved); checked against its checksum."""
        profile_name, version = ref.profile_name, ref.version
        if version <= 0:
            return None
        if ref.path is None:
            raise StateError(
                f"Profile {profile_name!r} points at state version {version}, which is missing; "
                "roll back to a listed version (fleetwright profile state list)"
            )
        if _remote(ref.path):
            data = self._fetch_blob(ref)
        else:
            path = self._abs(ref.path)
            if path.is_dir():
                raise StateError(
                    f"Profile {profile_name!r} has persistent state; launch it in persistent mode"
                )
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise StateError(
                    f"State version {version} of profile {profile_name!r} cannot be read "
                    f"({exc.strerror}); roll back to an earlier version"
                ) from None
        if ref.checksum and hashlib.sha256(data).hexdigest() != ref.checksum:
            raise StateError(
                f"State version {version} of profile {profile_name!r} is corrupt "
                "(checksum mismatch); roll back to an earlier version"
            )
        try:
            return BrowserState.model_validate_json(data)
        except ValueError:
            raise StateError(
                f"State version {version} of profile {profile_name!r} is not valid JSON; "
                "roll back to an earlier version"
            ) from None

    def _fetch_blob(self, ref: StoredRef) -> bytes:
        """A database/object storage state: this host's cached copy when its checksum still
        matches, else fetched (and cached)."""
        assert ref.path is not None
        name, location = ref.profile_name, ref.path
        if location.startswith(_S3) and location.endswith(_PACK):
            raise StateError(f"Profile {name!r} has persistent state; launch it in persistent mode")
        digest = ref.checksum or _digest_of(location) or ""
        cached = self.cache_dir(name) / f"{digest}.json"
        with contextlib.suppress(OSError):
            data = cached.read_bytes()
            if hashlib.sha256(data).hexdigest() == digest:
                return data
        if location.startswith(_DB):
            with session_scope(self.url) as session:
                found = session.scalar(
                    select(StateBlob.data)
                    .join(Profile, Profile.id == StateBlob.profile_id)
                    .where(Profile.name == name, StateBlob.checksum == location[len(_DB) :])
                )
            if found is None:
                raise StateError(
                    f"State version {ref.version} of profile {name!r} is missing from the "
                    "catalogue; roll back to an earlier version"
                )
            data = bytes(found)
        else:
            data = self.objects.get_bytes(location[len(_S3) :])
        if hashlib.sha256(data).hexdigest() == digest:
            with contextlib.suppress(OSError):
                atomic_write_bytes(cached, data)
                self._trim_cache(name)
        return data

    def save(self, profile_name: str, state: BrowserState, run_id: int | None = None) -> int:
        """Write `state` as a new version and switch the profile to it; returns the version.

        The file is named before its version is known (one catalogue transaction per save):
        v<UTC time>-<random>.json; the catalogue row says which version it is. The database
        and object backends name a state by its checksum instead.
        """
        if self.backend != "local":
            return self._save_remote(profile_name, state, run_id)
        folder = self.profile_dir(profile_name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"v{stamp}-{secrets.token_hex(4)}.json"
        data = json.dumps(state.model_dump(mode="json"), separators=(",", ":")).encode()
        atomic_write_bytes(path, data)
        # a switch that fails leaves the file unreferenced; the next save's sweep removes it
        try:
            version, old, kept = self._switch(
                profile_name,
                self._rel(path),
                size=len(data),
                checksum=hashlib.sha256(data).hexdigest(),
                run_id=run_id,
            )
        except NotFoundError:  # no such profile: nothing was written to the catalogue
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
            raise
        self._forget(profile_name, old, kept)
        referenced = {self._abs(p) for p in kept if not _remote(p)}
        self._sweep_orphans(profile_name, keep=path, referenced=referenced)
        logger.debug("Saved state version %d of profile %s", version, profile_name)
        return version

    def _save_remote(self, profile_name: str, state: BrowserState, run_id: int | None) -> int:
        """database: the blob goes in with the switch (one transaction); object: the object is
        uploaded (durable once the PUT returns), then the switch."""
        data = json.dumps(state.model_dump(mode="json"), separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        if self.backend == "database":
            location, blob = f"{_DB}{digest}", data
        else:
            with session_scope(self.url) as session:
                self._profile(session, profile_name)  # no such profile: nothing uploaded
            key = self.objects.key(block_name_for(profile_name), f"states/{digest}.json")
            self.objects.put_bytes(key, data, digest)
            location, blob = f"{_S3}{key}", None
        version, old, kept = self._switch(
            profile_name, location, size=len(data), checksum=digest, run_id=run_id, blob=blob
        )
        with contextlib.suppress(OSError):
            atomic_write_bytes(self.cache_dir(profile_name) / f"{digest}.json", data)
        self._forget(profile_name, old, kept)
        if self.backend == "object":
            self._sweep_objects(profile_name, kept)
        logger.debug("Saved state version %d of profile %s", version, profile_name)
        return version

    # -- both modes --------------------------------------------------------------------
    def versions(self, profile_name: str) -> list[StateVersion]:
        """Saved versions, newest first."""
        with session_scope(self.url) as session:
            profile = self._profile(session, profile_name)
            rows = session.scalars(
                select(ProfileState)
                .where(ProfileState.profile_id == profile.id)
                .order_by(ProfileState.version.desc())
            ).all()
            return [
                StateVersion(
                    version=r.version,
                    path=None if _remote(r.path) else self._abs(r.path),
                    location=r.path,
                    size_bytes=r.size_bytes,
                    checksum=r.checksum,
                    run_id=r.run_id,
                    created_at=r.created_at,
                    current=r.version == profile.state_version,
                )
                for r in rows
            ]

    def current_version(self, profile_name: str) -> int:
        """The version the profile points at (0: never saved)."""
        with session_scope(self.url) as session:
            return self._profile(session, profile_name).state_version

    def rollback(self, profile_name: str, version: int) -> None:
        """Point the profile at an earlier saved version."""
        with session_scope(self.url) as session:
            profile = self._profile(session, profile_name, lock=True)
            available = session.scalars(
                select(ProfileState.version).where(ProfileState.profile_id == profile.id)
            ).all()
            if version not in available:
                listed = ", ".join(str(v) for v in sorted(available, reverse=True)) or "none"
                raise NotFoundError(
                    f"Profile {profile_name!r} has no state version {version}; "
                    f"saved versions: {listed}"
                )
            profile.state_version = version
        logger.info("Profile %s rolled back to state version %d", profile_name, version)

    # -- persistent mode ---------------------------------------------------------------
    def checkout(self, profile_name: str, *, into: Path | None = None) -> Path:
        """A fresh working copy of the profile's current user-data-dir to run a session on."""
        self._refuse_database(profile_name)
        folder = into or self.profile_dir(profile_name)
        private_dir(folder)
        self._sweep_workdirs(folder)
        workdir = folder / f"work-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        version, row = self._current_row(profile_name)
        source: Path | None = None
        if row is not None and row.path.startswith(_S3):
            source = self._cached_pack(profile_name, row.path[len(_S3) :], row.checksum)
        elif row is not None:
            source = self._abs(row.path)
        if version and (source is None or not source.is_dir()):
            raise StateError(
                f"Persistent state version {version} of profile {profile_name!r} is missing; "
                "roll back to a listed version (fleetwright profile state list)"
            )
        if source is None:
            workdir.mkdir(mode=PRIVATE_DIR_MODE)
        elif not self._take_staged(folder, source, workdir):
            copy_profile_dir(source, workdir)
        return workdir

    def _refuse_database(self, profile_name: str) -> None:
        if self.backend == "database":
            raise StateError(
                f"Profile {profile_name!r} is persistent and the database state backend keeps "
                "storage-mode states only; set FLEETWRIGHT_STATE_BACKEND=object or local, or "
                "pin persistent profiles to one host"
            )

    def _cached_pack(self, profile_name: str, key: str, checksum: str) -> Path:
        """This host's unpacked copy of a persistent pack (downloaded once per checksum)."""
        cache = self.cache_dir(profile_name)
        target = cache / checksum
        if target.is_dir():
            return target
        private_dir(cache)
        pack = cache / f".{checksum}{_PACK}.tmp-{os.getpid()}"
        staging = cache / f".{checksum}.tmp-{os.getpid()}"
        try:
            fetch_verified(self.objects, key, pack, checksum)
            shutil.rmtree(staging, ignore_errors=True)
            unpack(pack, staging)
            try:
                os.rename(staging, target)
            except OSError:  # another launcher on this host unpacked it first
                if not target.is_dir():
                    raise
            fsync_dir(cache)
        finally:
            pack.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        self._trim_cache(profile_name)
        return target

    def _take_staged(self, folder: Path, source: Path, workdir: Path) -> bool:
        """Claim the copy of `source` staged at the last commit (one rename), if any."""
        for staged in sorted(folder.glob(f"ready-{source.name}-*")):
            try:
                os.rename(staged, workdir)
                return True
            except OSError:  # another launcher took it first
                continue
        return False

    def _stage(self, folder: Path, version_dir: Path) -> None:
        """Copy a new version ahead of the next launch, so launching is a rename."""
        for stale in folder.glob("ready-*"):
            if not stale.name.startswith(f"ready-{version_dir.name}-"):
                shutil.rmtree(stale, ignore_errors=True)
        staging = folder / f".ready-{version_dir.name}.tmp-{os.getpid()}"
        try:
            copy_profile_dir(version_dir, staging)
            os.rename(staging, folder / f"ready-{version_dir.name}-{secrets.token_hex(4)}")
        except OSError as exc:
            logger.warning("Could not stage the next working copy: %s", exc.strerror)
            shutil.rmtree(staging, ignore_errors=True)

    def commit(self, profile_name: str, workdir: Path, run_id: int | None = None) -> int:
        """Make a closed working copy the profile's new version (rename, then switch)."""
        self._refuse_database(profile_name)
        if not workdir.is_dir():
            raise StateError(f"Working copy {workdir} of profile {profile_name!r} is gone")
        if self.backend == "object":
            return self._commit_object(profile_name, workdir, run_id)
        folder = self.profile_dir(profile_name)
        private_dir(folder)
        with session_scope(self.url) as session:
            guess = self._next_version(session, self._profile(session, profile_name))
        prune_caches(workdir)
        target = folder / f"p{guess:06d}-{secrets.token_hex(4)}"
        try:
            os.rename(workdir, target)
        except OSError:  # another filesystem: copy next to the target, then rename there
            staging = folder / f".{target.name}.tmp-{os.getpid()}"
            shutil.copytree(workdir, staging, symlinks=True)
            os.rename(staging, target)
            shutil.rmtree(workdir, ignore_errors=True)
        fsync_dir(folder)
        version, old, kept = self._switch(
            profile_name, self._rel(target), size=dir_size(target), checksum="", run_id=run_id
        )
        self._forget(profile_name, old, kept)
        referenced = {self._abs(p) for p in kept if not _remote(p)}
        self._sweep_orphans(profile_name, keep=target, referenced=referenced)
        self._stage(folder, target)
        logger.debug("Saved persistent state version %d of profile %s", version, profile_name)
        return version

    def _commit_object(self, profile_name: str, workdir: Path, run_id: int | None) -> int:
        """Pack the closed working copy (tar + zstd, caches left out), upload it under its
        checksum, keep the folder as this host's cached copy, then switch."""
        with session_scope(self.url) as session:
            self._profile(session, profile_name)  # no such profile: nothing uploaded
        folder = self.profile_dir(profile_name)
        cache = self.cache_dir(profile_name)
        private_dir(cache)
        prune_caches(workdir)
        strip_pack_skips(workdir)
        pack = cache / f".pack{_PACK}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            digest, size = pack_dir(workdir, pack)
            key = self.objects.key(block_name_for(profile_name), f"packs/{digest}{_PACK}")
            if not self.objects.exists(key):
                self.objects.put_file(key, pack, digest)
        finally:
            pack.unlink(missing_ok=True)
        cached = cache / digest
        if cached.is_dir():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            try:
                os.rename(workdir, cached)
            except OSError:  # another filesystem
                staging = cache / f".{digest}.tmp-{os.getpid()}"
                shutil.copytree(workdir, staging, symlinks=True)
                os.rename(staging, cached)
                shutil.rmtree(workdir, ignore_errors=True)
            fsync_dir(cache)
        version, old, kept = self._switch(
            profile_name, f"{_S3}{key}", size=size, checksum=digest, run_id=run_id
        )
        self._forget(profile_name, old, kept)
        self._sweep_objects(profile_name, kept)
        self._stage(folder, cached)
        logger.debug("Saved persistent state version %d of profile %s", version, profile_name)
        return version

    def discard(self, workdir: Path) -> None:
        """Throw a working copy away (the session failed or was not saved)."""
        shutil.rmtree(workdir, ignore_errors=True)

    def _sweep_workdirs(self, folder: Path) -> None:
        for entry in folder.glob(f"work-{_HOST}-*"):
            parts = entry.name.split("-")
            if len(parts) >= 4 and parts[2].isdigit() and not Path(f"/proc/{parts[2]}").exists():
                shutil.rmtree(entry, ignore_errors=True)

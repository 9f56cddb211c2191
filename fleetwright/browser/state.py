"""Versioned profile state: each save is a new version, switched to atomically in the catalogue.

Storage mode keeps one JSON file per version (Playwright storage state + sessionStorage);
persistent mode keeps one user-data-dir per version and runs each session on a working copy.
Files are written and made durable first, then ONE catalogue transaction adds the version row
and points the profile at it, so a process killed at any moment leaves the previous version.
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
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from fleetwright.browser.files import (
    atomic_write_bytes,
    copy_profile_dir,
    dir_size,
    fsync_dir,
    prune_caches,
)
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileState
from fleetwright.errors import NotFoundError, StateError
from fleetwright.private import PRIVATE_DIR_MODE, private_dir
from fleetwright.settings import get_settings
from fleetwright.specs import block_name_for

__all__ = ["BrowserState", "StateStore", "StateVersion", "StoredRef"]

logger = logging.getLogger(__name__)
_HOST = socket.gethostname().replace("-", "_")


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
    """One saved version as the catalogue lists it."""

    version: int
    path: Path
    size_bytes: int
    checksum: str
    run_id: int | None
    created_at: datetime
    current: bool


class StateStore:
    """Load, save, list and roll back profile state versions."""

    def __init__(self, url: str | None = None, home: Path | None = None) -> None:
        settings = get_settings()
        self.url = url or settings.catalogue_url
        self.home = home or settings.home
        self.keep = settings.state_versions_kept

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
            query = query.with_for_update()
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
        self, profile_name: str, path: Path, *, size: int, checksum: str, run_id: int | None
    ) -> tuple[int, list[Path], set[Path]]:
        """One transaction: add the version row, point the profile at it, drop the rows beyond
        the newest `keep`. Returns the version, the dropped rows' paths, the kept ones."""
        with session_scope(self.url) as session:
            found = session.execute(
                select(Profile.id, Profile.state_version)
                .where(Profile.name == profile_name)
                .with_for_update()
            ).one_or_none()
            if found is None:
                raise NotFoundError(
                    f"Profile {profile_name!r} is not in the catalogue; "
                    "create it first (fleetwright profile add)"
                )
            profile_id, current = found
            rows = session.execute(
                select(ProfileState.id, ProfileState.version, ProfileState.path)
                .where(ProfileState.profile_id == profile_id)
                .order_by(ProfileState.version.desc())
            ).all()
            version = max(current, rows[0].version if rows else 0) + 1
            session.execute(
                insert(ProfileState).values(
                    profile_id=profile_id,
                    version=version,
                    path=self._rel(path),
                    size_bytes=size,
                    checksum=checksum,
                    run_id=run_id,
                )
            )
            session.execute(
                update(Profile).where(Profile.id == profile_id).values(state_version=version)
            )
            kept, doomed = rows[: max(self.keep - 1, 0)], rows[max(self.keep - 1, 0) :]
            if doomed:
                session.execute(
                    delete(ProfileState).where(ProfileState.id.in_([r.id for r in doomed]))
                )
            return (
                version,
                [self._abs(r.path) for r in doomed],
                {path, *(self._abs(r.path) for r in kept)},
            )

    def _delete_paths(self, paths: list[Path]) -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _referenced(self, profile_name: str) -> set[Path]:
        with session_scope(self.url) as session:
            profile = self._profile(session, profile_name)
            stored = session.scalars(
                select(ProfileState.path).where(ProfileState.profile_id == profile.id)
            ).all()
            return {self._abs(p) for p in stored}

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
        found = session.execute(
            select(Profile.state_version, ProfileState.path, ProfileState.checksum)
            .outerjoin(
                ProfileState,
                (ProfileState.profile_id == Profile.id)
                & (ProfileState.version == Profile.state_version),
            )
            .where(Profile.name == profile_name)
        ).one_or_none()
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

    def save(self, profile_name: str, state: BrowserState, run_id: int | None = None) -> int:
        """Write `state` as a new version and switch the profile to it; returns the version.

        The file is named before its version is known (one catalogue transaction per save):
        v<UTC time>-<random>.json; the catalogue row says which version it is.
        """
        folder = self.profile_dir(profile_name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"v{stamp}-{secrets.token_hex(4)}.json"
        data = json.dumps(state.model_dump(mode="json"), separators=(",", ":")).encode()
        atomic_write_bytes(path, data)
        # a switch that fails leaves the file unreferenced; the next save's sweep removes it
        try:
            version, old, referenced = self._switch(
                profile_name,
                path,
                size=len(data),
                checksum=hashlib.sha256(data).hexdigest(),
                run_id=run_id,
            )
        except NotFoundError:  # no such profile: nothing was written to the catalogue
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
            raise
        self._delete_paths(old)
        self._sweep_orphans(profile_name, keep=path, referenced=referenced)
        logger.info("Saved state version %d of profile %s", version, profile_name)
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
                    path=self._abs(r.path),
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
        folder = into or self.profile_dir(profile_name)
        private_dir(folder)
        self._sweep_workdirs(folder)
        workdir = folder / f"work-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        version, row = self._current_row(profile_name)
        source = self._abs(row.path) if row is not None else None
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
        if not workdir.is_dir():
            raise StateError(f"Working copy {workdir} of profile {profile_name!r} is gone")
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
        version, old, referenced = self._switch(
            profile_name, target, size=dir_size(target), checksum="", run_id=run_id
        )
        self._delete_paths(old)
        self._sweep_orphans(profile_name, keep=target, referenced=referenced)
        self._stage(folder, target)
        logger.info("Saved persistent state version %d of profile %s", version, profile_name)
        return version

    def discard(self, workdir: Path) -> None:
        """Throw a working copy away (the session failed or was not saved)."""
        shutil.rmtree(workdir, ignore_errors=True)

    def _sweep_workdirs(self, folder: Path) -> None:
        for entry in folder.glob(f"work-{_HOST}-*"):
            parts = entry.name.split("-")
            if len(parts) >= 4 and parts[2].isdigit() and not Path(f"/proc/{parts[2]}").exists():
                shutil.rmtree(entry, ignore_errors=True)

"""Loading command files into the catalogue, and looking commands up by name and version."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Command
from fleetwright.commands.models import CommandSpec
from fleetwright.commands.parsing import display_path, read_command_file
from fleetwright.commands.plugins import entry_point_command, entry_point_commands
from fleetwright.errors import CommandSpecError, FleetwrightError, NotFoundError
from fleetwright.settings import get_settings

__all__ = [
    "LoadReport",
    "checksum",
    "default_command_dirs",
    "get_command",
    "list_commands",
    "load_commands",
    "version_key",
]

logger = logging.getLogger(__name__)
# The example commands shipped in the package (a symlink to commands/ in a checkout).
_PROJECT_COMMANDS = Path(__file__).resolve().parents[1] / "project" / "commands"


@dataclass
class LoadReport:
    """What a load did, as `name@version` lists."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    files: int = 0


def default_command_dirs() -> list[Path]:
    """The shipped example commands, the working directory's commands/, then
    `<home>/commands`; only those that exist."""
    dirs: list[Path] = []
    for candidate in (_PROJECT_COMMANDS, Path.cwd() / "commands", get_settings().commands_dir):
        resolved = candidate.resolve()
        if resolved.is_dir() and resolved not in dirs:
            dirs.append(resolved)
    return dirs


def checksum(spec: CommandSpec) -> str:
    """A digest of the validated spec: comments and formatting do not change it."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_key(version: str) -> tuple[int, Any]:
    """Sort key for versions: numeric where they parse (1.10 > 1.9), else by text, lower."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandSpecError(f"{display_path(path)}: no such file or folder")
    return found


def _check_python_refs(spec: CommandSpec, path: Path) -> None:
    """A `python:` command or step must name a function that imports now, not at run time."""
    from fleetwright.commands.plugins import resolve_python_command

    refs = [spec.python] if spec.python else []
    refs += [f for f in (getattr(step, "function", None) for step in spec.steps or []) if f]
    for ref in refs:
        try:
            resolve_python_command(ref)
        except FleetwrightError as exc:
            raise CommandSpecError(f"{display_path(path)}: {exc.message}") from None


def load_commands(paths: Iterable[Path] | None = None, *, url: str | None = None) -> LoadReport:
    """Validate every YAML file under `paths` (default: default_command_dirs()) and store them
    in the catalogue in one transaction; all or nothing. Reloading unchanged files is a no-op;
    the same name and version with different content is a CommandSpecError."""
    files = _files(default_command_dirs() if paths is None else paths)
    specs: list[tuple[Path, CommandSpec]] = []
    errors: list[FleetwrightError] = []
    for path in files:
        try:
            spec = read_command_file(path)
            _check_python_refs(spec, path)
            specs.append((path, spec))
        except FleetwrightError as exc:
            errors.append(exc)
    if errors:
        more = f" ({len(errors) - 1} more file(s) with errors)" if len(errors) > 1 else ""
        first = errors[0]
        raise type(first)(first.message + more) from None
    seen: dict[tuple[str, str], Path] = {}
    for path, spec in specs:
        key = (spec.name, spec.version)
        if key in seen:
            raise CommandSpecError(
                f"{display_path(path)}: command {spec.ref} is also defined in "
                f"{display_path(seen[key])}; give one of them another name or version"
            )
        seen[key] = path
    try:
        report = _store(specs, url)
    except IntegrityError:  # another worker stored the same command a moment ago: look again
        report = _store(specs, url)
    report.files = len(files)
    logger.info(
        "Loaded %d command file(s): %d new, %d unchanged",
        report.files,
        len(report.added),
        len(report.unchanged),
    )
    return report


def _store(specs: list[tuple[Path, CommandSpec]], url: str | None) -> LoadReport:
    report = LoadReport()
    with session_scope(url) as session:
        for path, spec in specs:
            digest = checksum(spec)
            row = session.scalar(
                select(Command).where(Command.name == spec.name, Command.version == spec.version)
            )
            if row is None:
                session.add(
                    Command(
                        name=spec.name,
                        version=spec.version,
                        spec=spec.model_dump(mode="json"),
                        source=str(path.resolve()),
                        checksum=digest,
                    )
                )
                report.added.append(spec.ref)
            elif row.checksum == digest:
                row.source = str(path.resolve())
                report.unchanged.append(spec.ref)
            else:
                raise CommandSpecError(
                    f"{display_path(path)}: command {spec.ref} is already loaded (from "
                    f"{row.source}) with different content; bump `version:` to load the change"
                )
    return report


def list_commands(*, url: str | None = None) -> list[CommandSpec]:
    """Every loaded command version, by name then version (oldest first)."""
    with session_scope(url) as session:
        rows = session.scalars(select(Command)).all()
        specs = [_from_row(row) for row in rows]
    return sorted(specs, key=lambda s: (s.name, version_key(s.version)))


def _from_row(row: Command) -> CommandSpec:
    try:
        return CommandSpec.model_validate(row.spec)
    except ValueError as exc:
        raise CommandSpecError(
            f"command {row.name}@{row.version} in the catalogue no longer validates "
            f"({str(exc).splitlines()[0]}); reload it from {row.source}"
        ) from None


def get_command(name: str, *, version: str | None = None, url: str | None = None) -> CommandSpec:
    """The command `name` (its latest version unless `version` is given), from the catalogue
    or, failing that, an installed `fleetwright.commands` entry point."""
    with session_scope(url) as session:
        rows = session.scalars(select(Command).where(Command.name == name)).all()
        if rows:
            if version is None:
                return _from_row(max(rows, key=lambda r: version_key(r.version)))
            for row in rows:
                if row.version == version:
                    return _from_row(row)
            known = ", ".join(sorted((r.version for r in rows), key=version_key))
            raise NotFoundError(
                f"command {name!r} has no version {version!r} (loaded versions: {known})"
            )
        names = sorted(set(session.scalars(select(Command.name)).all()))
    plugin = entry_point_command(name)
    if plugin is not None and version in (None, plugin.version):
        return plugin
    known_all = ", ".join(sorted({*names, *entry_point_commands()})) or "none"
    raise NotFoundError(
        f"unknown command {name!r} (known: {known_all}); check the name, or put its YAML "
        "file in commands/ or <home>/commands and load it"
    )

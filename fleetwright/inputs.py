"""Reading user files (imports, proxy lists, command files) whatever bytes they hold.

Every file input goes through read_user_text: a size cap before anything is read (memory stays
bounded), strict UTF-8 (with or without a BOM) and one-line ImportFileErrors for everything
else. Rejections are reported up to a cap, with a count of the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fleetwright.errors import ImportFileError

__all__ = [
    "MAX_REPORTED",
    "exit_code_for",
    "one_line",
    "read_user_text",
    "report_rejections",
]

#: Rejected items printed one per line; the rest are counted in one more line.
MAX_REPORTED = 20

_MB = 1024 * 1024


def read_user_text(path: Path, *, what: str, limit_bytes: int) -> str:
    """The file's text, or an ImportFileError naming `what`, the file and the problem."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImportFileError(f"{what} {path} is a folder; give a file")
        if size > limit_bytes:
            raise ImportFileError(
                f"{what} {path} is {size / _MB:.1f} MB; the limit is {limit_bytes / _MB:.0f} MB "
                "(split it into smaller files)"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{what} {path} is not UTF-8 text (byte {exc.start} cannot be decoded); "
            "save it as UTF-8"
        ) from None


def report_rejections(
    problems: Sequence[tuple[str, str]],
    write: Callable[[str], object],
    *,
    limit: int = MAX_REPORTED,
    more: int = 0,
) -> None:
    """Write the first `limit` rejections, then one line counting the rest (and `more`,
    rejections that were counted but not kept)."""
    for where, reason in problems[:limit]:
        write(one_line(reason if reason.startswith(where) else f"{where}: {reason}", 200))
    rest = max(len(problems) - limit, 0) + more
    if rest:
        write(f"… and {rest} more rejected")


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def exit_code_for(imported: int, rejected: int) -> int:
    """0: all imported; 1: some rejected; 2: nothing could be imported."""
    if not rejected:
        return 0
    return 1 if imported else 2

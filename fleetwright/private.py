"""Files only their owner may read: the home folder 0700, the files in it 0600.

The home holds the catalogue, the embedded Prefect database (decrypted blocks are one API call
away from it), logs, saved browser states with session cookies and the local credentials. What
Fleetwright creates there it creates private (`private_dir`, `create_private`,
`write_private`); `secure_tree` takes group and other permissions off what an older version,
another tool or a permissive umask left behind (`fleetwright up` runs it on the home).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "PRIVATE_UMASK",
    "create_private",
    "private_dir",
    "secure_tree",
    "write_private",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: The umask of the processes `fleetwright up` and the CLI start (servers, workers, flow runs):
#: whatever they create — databases, logs, result files, browser profiles — is the owner's only.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """`path` as a folder; created 0700 (with any missing parents) when it does not exist.

    An existing folder is left as it is: it may be one the user chose and shares on purpose.
    """
    if not path.is_dir():
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=PRIVATE_DIR_MODE)
            # mkdir's mode goes through the umask; a private folder is 0700 whatever it is
            os.chmod(folder, PRIVATE_DIR_MODE)
    return path


def create_private(path: Path) -> Path:
    """Create `path` as an empty 0600 file if it does not exist (an existing one is kept)."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` as a 0600 file, atomically (readers see the old or the new)."""
    private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, PRIVATE_FILE_MODE)  # an older tmp file of the same name kept its mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def secure_tree(root: Path) -> int:
    """Take group and other permissions off `root` and everything under it; how many changed.

    Symbolic links are not followed (nor changed): only what lives in `root` itself.
    """
    if not root.is_dir() or root.is_symlink():
        return 0
    changed = 0

    def fix(path: str) -> None:
        nonlocal changed
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not mode & 0o077:
                return
            os.chmod(path, stat.S_IMODE(mode) & ~0o077)
            changed += 1

    fix(str(root))
    for current, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            fix(os.path.join(current, name))
    return changed

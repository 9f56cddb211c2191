"""The shipped monitoring files (Prometheus scrape config and rules, Grafana provisioning and
dashboard), kept inside the package so every installation has them."""

from __future__ import annotations

import shutil
from pathlib import Path

from fleetwright.errors import ValidationError

__all__ = ["MONITORING_DIR", "export_monitoring"]

MONITORING_DIR = Path(__file__).parent / "monitoring"


def export_monitoring(target: Path, *, force: bool = False) -> list[Path]:
    """Copy the monitoring files into `target`; refuses to overwrite unless `force`."""
    if target.exists() and not target.is_dir():
        raise ValidationError(f"{target} is a file; give a folder for the monitoring files")
    files = sorted(p for p in MONITORING_DIR.rglob("*") if p.is_file())
    clashes = [target / p.relative_to(MONITORING_DIR) for p in files]
    existing = [p for p in clashes if p.exists()]
    if existing and not force:
        raise ValidationError(
            f"{existing[0]} already exists; pass --force to overwrite the monitoring files"
        )
    written = []
    for src, dst in zip(files, clashes, strict=True):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written

"""What the figures were measured on: CPU, memory, versions, date."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["git_commit", "machine_info"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _chromium_version() -> str | None:
    from fleetwright.browser.chromium import find_chromium

    try:
        out = subprocess.run(
            [str(find_chromium()), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except Exception:
        return None
    return out.strip() or None


def git_commit() -> str | None:
    """The checked-out commit (short), with "-dirty" when the work tree has changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def machine_info() -> dict[str, Any]:
    """CPU count and model, memory, Python/Playwright/Prefect/Chromium versions, date."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_mb(),
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "playwright": _pkg("playwright"),
        "prefect": _pkg("prefect"),
        "sqlalchemy": _pkg("sqlalchemy"),
        "chromium": _chromium_version(),
    }

"""Local stand-ins for the outside world: the demo/bench site and fake services.

The site is imported lazily so the fakes do not pull in Starlette and uvicorn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SiteServer", "create_app", "serve_site"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fleetwright.testing import site

        return getattr(site, name)
    raise AttributeError(f"module 'fleetwright.testing' has no attribute {name!r}")

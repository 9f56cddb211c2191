"""The write path for profiles and proxies: Prefect blocks and catalogue rows together.

The names below are imported on first use: `fleetwright.registry.profiles` loads without
Prefect's client, which `fleetwright profile add` never needs (see registry/direct.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BlockStore",
    "ImportReport",
    "add_profile",
    "add_proxy",
    "archive_profile",
    "assign_proxy",
    "edit_profile",
    "export_profiles",
    "get_profile",
    "get_proxy",
    "import_profiles",
    "import_proxies",
    "list_profiles",
    "list_proxies",
    "open_block_store",
    "proxy_spec",
    "remove_proxy",
]

if TYPE_CHECKING:
    from fleetwright.registry.blockstore import BlockStore, open_block_store
    from fleetwright.registry.profiles import (
        ImportReport,
        add_profile,
        archive_profile,
        edit_profile,
        export_profiles,
        get_profile,
        import_profiles,
        list_profiles,
    )
    from fleetwright.registry.proxies import (
        add_proxy,
        assign_proxy,
        get_proxy,
        import_proxies,
        list_proxies,
        proxy_spec,
        remove_proxy,
    )

_WHERE = {
    "BlockStore": "blockstore",
    "open_block_store": "blockstore",
    "ImportReport": "profiles",
    "add_profile": "profiles",
    "archive_profile": "profiles",
    "edit_profile": "profiles",
    "export_profiles": "profiles",
    "get_profile": "profiles",
    "import_profiles": "profiles",
    "list_profiles": "profiles",
    "add_proxy": "proxies",
    "assign_proxy": "proxies",
    "get_proxy": "proxies",
    "import_proxies": "proxies",
    "list_proxies": "proxies",
    "proxy_spec": "proxies",
    "remove_proxy": "proxies",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

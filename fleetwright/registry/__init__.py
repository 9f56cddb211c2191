"""The write path for profiles and proxies: Prefect blocks and catalogue rows together."""

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

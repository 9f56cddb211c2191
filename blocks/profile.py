"""The BrowserProfile block: a profile as the Prefect UI shows and edits it.

Its fields are ProfileSpec's, derived from it (names, types, defaults, descriptions), so the
block, the catalogue row, import/export and the template scope cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import create_model

from fleetwright.specs import ProfileSpec

__all__ = ["BrowserProfile"]

_ProfileFields: type[Block] = create_model(  # type: ignore[call-overload]
    "_ProfileFields",
    __base__=Block,
    **{name: (f.annotation, f) for name, f in ProfileSpec.model_fields.items()},
)

# Fields of the flat shape BrowserProfile blocks had before the fingerprint was nested.
_LEGACY_FINGERPRINT = (
    "user_agent",
    "viewport_width",
    "viewport_height",
    "locale",
    "timezone",
    "color_scheme",
    "extra_headers",
)


class BrowserProfile(_ProfileFields):
    """A persistent browser identity: fingerprint, proxy assignment and state mode.

    Edits saved here reach Fleetwright's catalogue through the sync-catalogue flow.
    """

    _block_type_name = "Fleetwright Browser Profile"
    _block_type_slug = "fleetwright-browser-profile"
    _logo_url = None
    _description = "A Fleetwright browser profile: fingerprint, proxy assignment, state mode."

    @classmethod
    def from_spec(cls, spec: ProfileSpec) -> BrowserProfile:
        return cls.model_validate(spec.model_dump())

    def spec_data(self) -> dict[str, Any]:
        """The block's content in ProfileSpec's shape (validated by the caller)."""
        return {name: getattr(self, name) for name in ProfileSpec.model_fields}

    @staticmethod
    def upgrade_data(data: dict[str, Any]) -> dict[str, Any]:
        """Document data of an older, flat BrowserProfile schema in the current shape."""
        if "fingerprint" in data or not any(k in data for k in _LEGACY_FINGERPRINT):
            return data
        out = {k: v for k, v in data.items() if k not in (*_LEGACY_FINGERPRINT, "latitude",
                                                           "longitude")}  # fmt: skip
        fingerprint = {k: data[k] for k in _LEGACY_FINGERPRINT if k in data}
        if data.get("latitude") is not None and data.get("longitude") is not None:
            fingerprint["geolocation"] = {
                "latitude": data["latitude"],
                "longitude": data["longitude"],
            }
        out["fingerprint"] = fingerprint
        return out

"""Carry sessionStorage across sessions (Playwright's storage_state leaves it out), and
restore localStorage quickly.

sessionStorage is captured per origin from the open pages. Both are restored by one init
script that fills the matching origin's storage before the page's own scripts run. Playwright's
own origin restore opens a page per origin (~300 ms); the script costs nothing until a page of
that origin loads. It fills a storage area only while it is empty, so values the site writes
later in the session are kept (a site that clears ALL of an origin's storage and then
navigates gets the saved values again).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fleetwright.browser.errors import is_closed_error

__all__ = ["CAPTURE_JS", "capture_session_storage", "restore_script", "split_origins"]

logger = logging.getLogger(__name__)

CAPTURE_JS = """() => {
  try {
    const items = {};
    for (let i = 0; i < sessionStorage.length; i++) {
      const k = sessionStorage.key(i);
      items[k] = sessionStorage.getItem(k);
    }
    return {origin: location.origin, items};
  } catch (e) { return {origin: location.origin, items: null}; }
}"""

_RESTORE_TEMPLATE = """(() => {
  const saved = %s;
  const fill = (area, items) => {
    if (!items || area.length !== 0) return;
    for (const [k, v] of Object.entries(items)) area.setItem(k, v);
  };
  try { fill(window.localStorage, saved.local[location.origin]); } catch (e) {}
  try { fill(window.sessionStorage, saved.session[location.origin]); } catch (e) {}
})();"""


def restore_script(
    session_storage: dict[str, dict[str, str]],
    local_storage: dict[str, dict[str, str]] | None = None,
) -> str | None:
    """The init script restoring both storages per origin, or None when there is nothing."""
    session = {origin: items for origin, items in session_storage.items() if items}
    local = {origin: items for origin, items in (local_storage or {}).items() if items}
    if not session and not local:
        return None
    payload = json.dumps({"local": local, "session": session}).replace("</", "<\\/")
    return _RESTORE_TEMPLATE % payload


def split_origins(storage: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Split a Playwright storage state: origins with IndexedDB stay for Playwright to restore;
    the localStorage of the others goes to the init script."""
    keep: list[Any] = []
    local: dict[str, dict[str, str]] = {}
    for origin in storage.get("origins", []):
        if origin.get("indexedDB"):
            keep.append(origin)
            continue
        items = {str(i["name"]): str(i["value"]) for i in origin.get("localStorage", [])}
        if items:
            local[str(origin["origin"])] = items
    return {"cookies": storage.get("cookies", []), "origins": keep}, local


async def capture_session_storage(pages: list[Any]) -> dict[str, dict[str, str]]:
    """sessionStorage of every open page's main frame, merged per origin (later pages win)."""
    result: dict[str, dict[str, str]] = {}
    for page in pages:
        if page.is_closed():
            continue
        try:
            data = await page.evaluate(CAPTURE_JS)
        except Exception as exc:
            if is_closed_error(exc):
                continue
            logger.debug("sessionStorage capture failed on a page: %s", type(exc).__name__)
            continue
        origin, items = data.get("origin"), data.get("items")
        if not origin or origin == "null" or not isinstance(items, dict):
            continue
        result.setdefault(origin, {}).update({str(k): str(v) for k, v in items.items()})
    return result

"""One new profile's block and event over Prefect's REST API, without loading Prefect's client.

`fleetwright profile add` writes a catalogue row, one block document and one event. Through
Prefect's client, most of that process was spent importing the client (bench/cli_bench.py,
`profile_add_ms` phases: 749 ms of about 2 s), while the block takes two requests. So the CLI
sends them itself:

- the BrowserProfile block schema is looked up by its checksum
  (`GET /block_schemas/checksum/{checksum}`): PROFILE_SCHEMA_CHECKSUM below, which a test
  compares with the checksum Prefect computes for the BrowserProfile class;
- the document is created with `POST /block_documents/`, in the shape Prefect's client sends;
- the row is marked projected as registry/projection.py marks it (registry/outbox.py);
- `fleetwright.profile.created` is sent with `POST /events`, as `registry.events.emit` sends it.

This path is taken only when the environment says all the client would use: the API URL and,
when set, PREFECT_API_AUTH_STRING and PREFECT_API_SSL_CERT_FILE (as `apply_prefect_settings`
leaves them), with no Prefect profile, `.env`, `prefect.toml` or `[tool.prefect]` table that
could add client settings, and no API key (Prefect Cloud). Everything else returns False and the
caller takes the usual path through Prefect's client, which handles every case: another
configuration, a schema the server does not know (block types not registered yet, or a Prefect
whose checksums differ), a document of that name already there, any unexpected answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic_core import to_jsonable_python

from fleetwright.errors import redact_url
from fleetwright.registry.outbox import mark_projected, pending_rows
from fleetwright.specs import ProfileSpec

__all__ = ["PROFILE_SCHEMA_CHECKSUM", "add_profile_block", "client_config"]

logger = logging.getLogger(__name__)

#: `BrowserProfile._calculate_schema_checksum()` under the pinned Prefect; a test fails when a
#: change to ProfileSpec's fields or to Prefect moves it.
PROFILE_SCHEMA_CHECKSUM = "sha256:19150757d33ed29e2704971f1730bbefbc387424e8f42d19abcd4466e4ed1996"

# Settings that change how Prefect's client talks to its API: when a file could set any of
# them, this path leaves the request to the client.
_CLIENT_SETTING_PREFIXES = ("PREFECT_API_", "PREFECT_CLIENT_")
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True)
class ClientConfig:
    api_url: str
    headers: dict[str, str]
    verify: str | bool


def _sets_client_settings(table: Any) -> bool:
    return isinstance(table, dict) and any(
        str(key).upper().startswith(_CLIENT_SETTING_PREFIXES) for key in table
    )


def _profiles_file_sets_client_settings() -> bool:
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    path_value = os.environ.get("PREFECT_PROFILES_PATH")
    path = Path(path_value).expanduser() if path_value else home / "profiles.toml"
    if not path.exists():
        return False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # the client reads it its own way (and reports what is wrong with it)
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    return _sets_client_settings(data.get("profiles", {}).get(active))


def _working_dir_sets_client_settings() -> bool:
    """Prefect's settings also come from `.env`, `prefect.toml` and pyproject's [tool.prefect]
    in the working directory."""
    cwd = Path.cwd()
    try:
        if (cwd / "prefect.toml").exists():
            return True
        dotenv = cwd / ".env"
        if dotenv.exists() and "PREFECT_" in dotenv.read_text(encoding="utf-8", errors="replace"):
            return True
        pyproject = cwd / "pyproject.toml"
        if pyproject.exists() and "tool.prefect" in pyproject.read_text(
            encoding="utf-8", errors="replace"
        ):
            return True
    except OSError:
        return True
    return False


def client_config() -> ClientConfig | None:
    """How to reach the Prefect API without its client, or None when this path cannot tell."""
    env = os.environ
    api_url = env.get("PREFECT_API_URL", "").rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        return None
    if env.get("PREFECT_API_KEY") or any(
        key.startswith("PREFECT_CLIENT_CUSTOM_HEADERS") for key in env
    ):
        return None
    if _profiles_file_sets_client_settings() or _working_dir_sets_client_settings():
        return None
    headers = {}
    auth = env.get("PREFECT_API_AUTH_STRING")
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    verify: str | bool = True
    if env.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
        verify = False
    elif env.get("PREFECT_API_SSL_CERT_FILE"):
        verify = env["PREFECT_API_SSL_CERT_FILE"]
    return ClientConfig(api_url=api_url, headers=headers, verify=verify)


def _event(name: str, spec: ProfileSpec) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "fleetwright.profile.created",
        "resource": {
            "prefect.resource.id": f"fleetwright.profile.{name}",
            "prefect.resource.name": name,
        },
        "payload": {"tags": list(spec.tags)},
        "related": [],
    }


async def add_profile_block(row_id: int, spec: ProfileSpec, *, url: str | None = None) -> bool:
    """Write the block of the new profile row `row_id` and send its `created` event.

    True when done here: the block is written and the row marked projected, or the API did not
    answer and the row stays pending for the next sync (as with Prefect's client). False when
    this path does not apply; nothing was written then and the caller takes the usual path.
    """
    config = client_config()
    if config is None:
        return False
    pending = await asyncio.to_thread(pending_rows, url, [row_id], 1)
    if len(pending) != 1 or pending[0].document_id is not None:
        return False
    item = pending[0]
    data = to_jsonable_python({name: getattr(item.spec, name) for name in ProfileSpec.model_fields})
    async with httpx.AsyncClient(
        base_url=config.api_url + "/",
        headers=config.headers,
        verify=config.verify,
        timeout=_TIMEOUT,
    ) as client:
        try:
            found = await client.get(f"block_schemas/checksum/{PROFILE_SCHEMA_CHECKSUM}")
            if found.status_code != 200:
                return False
            schema = found.json()
            created = await client.post(
                "block_documents/",
                json={
                    "name": item.block_name,
                    "data": data,
                    "block_schema_id": schema["id"],
                    "block_type_id": schema["block_type_id"],
                    "is_anonymous": False,
                },
            )
            if created.status_code != 201:
                return False
            document_id = str(created.json()["id"])
        except (httpx.ConnectError, httpx.ConnectTimeout):
            logger.warning(
                "the Prefect API at %s is unreachable: 1 block(s) stay pending until the next sync",
                redact_url(config.api_url),
            )
            return True
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            # an answer cut short or not in the expected shape: the usual path finds whether
            # the document got written (by name) and finishes the job
            return False
        await asyncio.to_thread(mark_projected, url, item, document_id)
        try:
            sent = await client.post("events", json=[_event(spec.name, spec)])
            sent.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning(
                "could not emit fleetwright.profile.created for profile %s (%s)",
                spec.name,
                type(exc).__name__,
            )
    return True

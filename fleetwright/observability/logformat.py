"""The optional JSON log format (`FLEETWRIGHT_LOG_FORMAT=json`): one object per line with the
Prefect flow/task run ids and the profile, session (catalogue run row) and command of the
session the record was logged in, for log shippers that index fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from fleetwright.observability.context import current_session_ids

__all__ = ["JsonFormatter", "apply_log_format"]

_HANDLER_NAME = "fleetwright-json"


def _run_ids() -> dict[str, str]:
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except Exception:
        return {}
    ids: dict[str, str] = {}
    task = TaskRunContext.get()
    if task is not None:
        ids["task_run_id"] = str(task.task_run.id)
        if task.task_run.flow_run_id:
            ids["flow_run_id"] = str(task.task_run.flow_run_id)
    flow = FlowRunContext.get()
    if flow is not None and flow.flow_run is not None:
        ids.setdefault("flow_run_id", str(flow.flow_run.id))
    return ids


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, run and session ids."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_run_ids(),
            **current_session_ids(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
        return json.dumps(data, default=str)


def apply_log_format(fmt: str | None = None, *, name: str = "fleetwright") -> bool:
    """With `json` (the `log_format` setting by default), the `fleetwright` logger writes
    JSON lines to stderr instead of passing records to the root logger's handlers.
    Returns whether the JSON format is on."""
    if fmt is None:
        from fleetwright.settings import get_settings

        fmt = get_settings().log_format
    logger = logging.getLogger(name)
    if fmt != "json":
        return False
    if any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        return True
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return True

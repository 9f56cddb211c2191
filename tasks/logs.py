"""The engine's log records on the run's page: Prefect's API log handler on `fleetwright`."""

from __future__ import annotations

import logging

__all__ = ["forward_engine_logs"]


class _InRunOnly(logging.Filter):
    """Only records emitted inside a flow or task run (elsewhere there is no run to log to)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def forward_engine_logs(name: str = "fleetwright", level: int = logging.INFO) -> None:
    """Attach Prefect's APILogHandler to the engine's logger (once), as Prefect does for the
    loggers named in PREFECT_LOGGING_EXTRA_LOGGERS."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger(name)
    if any(isinstance(h, APILogHandler) for h in logger.handlers):
        return
    handler = APILogHandler()
    handler.addFilter(_InRunOnly())
    handler.setLevel(level)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)

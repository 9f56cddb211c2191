"""When Fleetwright's tasks retry: only on errors the engine marks retryable."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from fleetwright.errors import is_retryable

__all__ = ["retry_if_retryable"]


def retry_if_retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry navigation timeouts, proxy failures, 5xx, browser crashes; not bad input."""
    data = state.data
    if not isinstance(data, BaseException):  # a result record holds the exception
        data = getattr(data, "result", None)
    if isinstance(data, BaseException):
        return is_retryable(data)
    return False

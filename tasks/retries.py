"""When Fleetwright's tasks retry: only on errors the engine marks retryable."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect._result_records import ResultRecord
from prefect.client.schemas.objects import State, TaskRun

from fleetwright.errors import is_retryable

__all__ = ["retry_if_retryable"]


def retry_if_retryable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry navigation timeouts, proxy failures, 5xx, browser crashes; not bad input."""
    data = state.data
    if isinstance(data, ResultRecord):  # a persisted result holds the exception
        data = data.result
    if isinstance(data, BaseException):
        return is_retryable(data)
    return False

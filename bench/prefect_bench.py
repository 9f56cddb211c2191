"""Prefect's own floor: an empty task run in a flow, sequential, against a plain coroutine."""

from __future__ import annotations

import time

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from bench.harness import Bench
from bench.stats import Figure, summary

__all__ = ["FIGURES", "run"]

FIGURES = ("prefect_empty_task_ms",)


@task(name="bench-empty", cache_policy=NO_CACHE, persist_result=False)
async def empty_task() -> None:
    return None


async def _empty() -> None:
    return None


@flow(name="bench-empty-tasks", persist_result=False)
async def empty_flow(n: int) -> tuple[list[float], list[float]]:
    task_ms: list[float] = []
    plain_ms: list[float] = []
    await empty_task()  # warm-up
    for _ in range(n):
        t0 = time.perf_counter()
        await empty_task()
        task_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        await _empty()
        plain_ms.append((time.perf_counter() - t0) * 1000)
    return task_ms, plain_ms


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    task_ms, plain_ms = await empty_flow(bench.sizes.empty_task_n)
    fig = summary(task_ms, "ms", what="one empty task run inside a flow, sequential")
    fig["baseline"] = summary(plain_ms, "ms") | {"name": "awaiting an empty coroutine"}
    return {"prefect_empty_task_ms": fig}

"""StopWatch against the real test Prefect server: a Cancelling set on the API reaches a running
fleet flow through Prefect's event stream, with one read of the flow run (when the stream
opens) instead of one every second; when the stream cannot be opened it polls instead."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from fleetwright.fleet.stop import StopWatch

pytestmark = [pytest.mark.prefect]


async def _flow_run_id() -> str:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    @flow(name="stop-watch-probe")
    def probe() -> None:
        pass

    async with get_client() as client:
        run = await client.create_flow_run(probe, state=Running())
    return str(run.id)


async def _cancelling(flow_run_id: str, message: str) -> None:
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async with get_client() as client:
        await client.set_flow_run_state(uuid.UUID(flow_run_id), Cancelling(message=message))


async def _watch_then_cancel(idle_s: float, interval: timedelta) -> tuple[StopWatch, bool, float]:
    flow_run_id = await _flow_run_id()
    loop = asyncio.get_running_loop()
    async with StopWatch(flow_run_id, interval=interval) as watch:
        await asyncio.sleep(idle_s)
        stopped_early = watch.event.is_set()
        sent = loop.time()
        await _cancelling(flow_run_id, "cancelled by the stop-watch test")
        await asyncio.wait_for(watch.event.wait(), timeout=15)
        return watch, stopped_early, loop.time() - sent


def test_a_cancel_arrives_through_the_event_stream_without_polling(prefect_api: str) -> None:
    # a 0.1 s interval would read the flow run ~30 times in 3 s if it polled
    watch, early, latency = asyncio.run(_watch_then_cancel(3.0, timedelta(seconds=0.1)))
    assert not early
    assert watch.reason == "cancelled by the stop-watch test"
    # one read when the stream opened, one when the Cancelling event came
    assert watch.reads == 2, watch.reads
    assert latency < 15


def test_without_the_event_stream_it_polls(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.events.clients

    tries: list[int] = []

    def refused(*_a: Any, **_k: Any) -> Any:
        tries.append(1)
        raise OSError("no websocket here")

    monkeypatch.setattr(prefect.events.clients, "get_events_subscriber", refused)
    watch, early, _latency = asyncio.run(_watch_then_cancel(1.0, timedelta(seconds=0.1)))
    assert not early
    assert watch.reason == "cancelled by the stop-watch test"
    assert watch.reads >= 5, watch.reads
    assert len(tries) == 1  # a refused stream is not retried every poll


def test_a_cancel_sent_before_the_watch_starts_stops_it_at_once(prefect_api: str) -> None:
    async def scenario() -> StopWatch:
        flow_run_id = await _flow_run_id()
        await _cancelling(flow_run_id, "cancelled before the flow looked")
        async with StopWatch(flow_run_id, interval=timedelta(seconds=30)) as watch:
            await asyncio.wait_for(watch.event.wait(), timeout=15)
            return watch

    watch = asyncio.run(scenario())
    assert watch.reason == "cancelled before the flow looked"

"""Health transitions reach the installed `fleetwright.proxy_health` listeners, not Prefect
directly: the health module runs without Prefect (see the layering contract)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fleetwright.listeners import installed
from fleetwright.proxies import health
from fleetwright.proxies.health import HEALTH_LISTENERS, HealthChange, emit_health_event
from fleetwright.registry.events import emit_proxy_health


def _change() -> HealthChange:
    return HealthChange(
        kind="quarantined",
        proxy_id=7,
        proxy_name="px-7",
        error_score=3.2,
        quarantined_until=None,
        quarantine_count=1,
        error="unreachable",
    )


def test_the_prefect_event_listener_is_installed() -> None:
    installed.cache_clear()
    assert emit_proxy_health in health._listeners()
    assert HEALTH_LISTENERS == "fleetwright.proxy_health"


def test_every_listener_hears_a_change_and_a_failing_one_is_only_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[Any] = []

    def broken(change: HealthChange) -> None:
        raise RuntimeError("listener down")

    monkeypatch.setattr(health, "_listeners", lambda: (broken, heard.append))
    with caplog.at_level(logging.WARNING, logger="fleetwright.listeners"):
        emit_health_event(_change())
    assert heard == [_change()]
    assert "proxy health (quarantined) listener" in caplog.text and "failed" in caplog.text

"""Run decisions in the logs: breaker refusals and transitions (with their metric), and the
optional JSON log format with run and session ids."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from fleetwright.errors import CircuitOpenError, ServiceUnavailableError


async def test_breaker_transitions_and_refusals_are_logged_and_measured(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fleetwright.integrations.breaker import breaker_for, reset_breakers
    from fleetwright.observability.metrics import fleet_metrics

    metrics = fleet_metrics()
    assert metrics is not None
    reset_breakers()
    breaker = breaker_for("github", "obs-bot", threshold=2, cooldown=timedelta(minutes=5))

    async def down() -> None:
        raise ServiceUnavailableError("github is down")

    caplog.set_level(logging.INFO, logger="fleetwright")
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await breaker.call(down)
    with pytest.raises(CircuitOpenError):
        await breaker.call(down)
    messages = [r.getMessage() for r in caplog.records]
    assert "Circuit breaker for github:obs-bot is now opened" in messages
    assert "Circuit breaker for github:obs-bot refused a call (open)" in messages
    gauge = metrics.breaker_state.labels(service="github", account="obs-bot")
    assert gauge._value.get() == 2.0
    assert any(p.name.startswith("gauge_mostrecent_") for p in (home / "metrics").iterdir())
    reset_breakers()


def test_json_log_format_carries_session_ids() -> None:
    from fleetwright.observability.context import session_ids
    from fleetwright.observability.logformat import JsonFormatter, apply_log_format

    assert apply_log_format("text", name="fleetwright.test-text") is False
    assert not logging.getLogger("fleetwright.test-text").handlers
    name = "fleetwright.test-json"
    assert apply_log_format("json", name=name) is True
    assert apply_log_format("json", name=name) is True  # once
    logger = logging.getLogger(name)
    handlers = [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(handlers) == 1
    stream = io.StringIO()
    handlers[0].setStream(stream)  # type: ignore[attr-defined]
    token = session_ids.set({"profile": "p1", "session": 42, "command": "demo"})
    try:
        logger.warning("proxy %s quarantined", "px")
    finally:
        session_ids.reset(token)
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "proxy px quarantined" and first["level"] == "WARNING"
    assert (first["profile"], first["session"], first["command"]) == ("p1", 42, "demo")
    assert "profile" not in second and second["message"] == "outside"

"""A small flow run against the HA stack by tests/cluster/test_ha.py, in its own process.

It runs one task, tells the test its flow run id, waits until the test has killed an API
server, then runs four more tasks: every call after the gate goes through the survivor.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prefect import flow, task
from prefect.runtime import flow_run


@task
def step(i: int) -> int:
    return i


@flow(name="ha-failover")
def ha_failover(gate: str) -> int:
    total = step(1)
    Path(gate + ".id").write_text(str(flow_run.id))
    deadline = time.monotonic() + 600
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.2)
    for i in range(2, 6):
        total += step(i)
    return total


if __name__ == "__main__":
    assert ha_failover(sys.argv[1]) == 15

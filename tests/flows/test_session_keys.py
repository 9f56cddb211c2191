"""`{{ run.idempotency_key }}`: the same for a session across a task retry and across a resume
of its fleet run, different between profiles — checked by what a real site receives."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from fleetwright.commands import load_commands
from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.site import AppServer

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

COMMAND = """\
name: keyed-order
version: "1"
timeout: 5
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/order/{{ profile.name }}?key={{ run.idempotency_key }}"
    timeout: 3
  - assert: {text: {selector: "#state", equals: "ok"}}
    timeout: 1
"""

FLAKY = "key001"  # its first request stalls past the goto timeout: the task retries
BAD = "key002"  # its page says "bad" in the first fleet run: failed, so the resume reruns it


class OrderSite:
    """Records the key of every order request, per profile."""

    def __init__(self) -> None:
        self.keys: dict[str, list[str]] = defaultdict(list)
        self.bad = {BAD}

        async def order(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            self.keys[name].append(request.query_params.get("key", ""))
            if name == FLAKY and len(self.keys[name]) == 1:
                await asyncio.sleep(8)
            return HTMLResponse(f"<p id=state>{'bad' if name in self.bad else 'ok'}</p>")

        self.app = Starlette(routes=[Route("/order/{name}", order)])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def order_site() -> Iterator[OrderSite]:
    site = OrderSite()
    with AppServer(site.app, port=site.port):
        yield site


def test_idempotency_key_is_stable_across_retry_and_resume(
    order_site: OrderSite, make_profiles, home: Path, tmp_path: Path
) -> None:
    from fleetwright.flows.run_command import run_command

    (tmp_path / "keyed-order.yaml").write_text(COMMAND)
    load_commands([tmp_path])
    names = make_profiles(4, prefix="key", tags=["keyed"])
    first = asyncio.run(
        run_command(
            command="keyed-order",
            tags=["keyed"],
            params={"base_url": order_site.url},
            concurrency=4,
            return_state=True,
        )
    )
    first_id = str(first.state_details.flow_run_id)
    summary = first.result(raise_on_failure=False)
    assert (summary["ok"], summary["failed"]) == (3, 1)

    # a task retry: two requests, one key
    assert len(order_site.keys[FLAKY]) == 2 and len(set(order_site.keys[FLAKY])) == 1
    # one key per profile, all different
    per_profile = {n: order_site.keys[n][0] for n in names}
    assert all(len(k) == 32 for k in per_profile.values())
    assert len(set(per_profile.values())) == len(names)

    # a resume of that fleet run reruns the failed session with the same key
    order_site.bad.clear()
    resumed = asyncio.run(
        run_command(command="keyed-order", resume_from=first_id, return_state=True)
    )
    again = resumed.result(raise_on_failure=False)
    assert (again["ok"], again["skipped"]) == (1, 3)
    assert order_site.keys[BAD] == [per_profile[BAD], per_profile[BAD]]
    assert all(len(order_site.keys[n]) == 1 for n in set(names) - {FLAKY, BAD})

    # a new fleet run of the same command is a new set of keys
    asyncio.run(
        run_command(command="keyed-order", profiles=[names[3]], params={"base_url": order_site.url})
    )
    assert order_site.keys[names[3]][1] != per_profile[names[3]]

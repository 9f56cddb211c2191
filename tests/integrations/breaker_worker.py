"""A worker process for the breaker tests: makes GitHub calls and prints their outcomes as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta


async def main(config: dict[str, object]) -> list[str]:
    from fleetwright.blocks.github import GitHubCredentials
    from fleetwright.integrations.steps import Integrations

    block = GitHubCredentials(
        account=str(config["account"]), token=str(config["token"]), base_url=str(config["url"])
    )
    gh = Integrations.with_credentials(
        block,
        prefect_rate_limits=False,
        redis_url=str(config["redis_url"]),
        breaker_threshold=int(str(config["threshold"])),
        breaker_cooldown=timedelta(seconds=float(str(config["cooldown"]))),
    )
    outcomes = []
    for _ in range(int(str(config["calls"]))):
        try:
            await gh.call("github.get_repo", {"repo": "octo/demo"})
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))

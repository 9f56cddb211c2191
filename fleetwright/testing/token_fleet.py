"""A fleet of GitHub-calling processes for the shared-token tests and the bench.

`run_token_fleet` starts `hosts` × `processes` real subprocesses, each with its own home (a
"host" here is a set of homes: processes share nothing but Redis and the GitHub they call).
Each gets its credentials as one JSON line on stdin (never in argv), says "ready", and starts
on "go" together with the others, so they all meet a cold cache at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["run_token_fleet"]


def run_token_fleet(
    block: dict[str, Any],
    *,
    redis_url: str,
    root: Path,
    hosts: int = 2,
    processes: int = 4,
    calls: int = 3,
    parallel: int = 2,
    seconds: float = 0.0,
    pause: float = 0.0,
    timeout: float = 300.0,
) -> list[dict[str, int]]:
    """Run the fleet; each process's outcomes ({"ok": n, "<error>": n}), in start order.

    `block`: GitHubCredentials fields (secrets as plain strings, datetimes as ISO text).
    `redis_url` "" means no shared cache."""
    config = json.dumps(
        {
            "block": block,
            "redis_url": redis_url,
            "calls": calls,
            "parallel": parallel,
            "seconds": seconds,
            "pause": pause,
        }
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        for h in range(hosts):
            for p in range(processes):
                home = root / f"host{h}" / f"proc{p}"
                home.mkdir(parents=True, exist_ok=True)
                env = {**os.environ, "FLEETWRIGHT_HOME": str(home), "HOME": str(home)}
                env.pop("FLEETWRIGHT_REDIS_URL", None)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "fleetwright.testing.token_fleet"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=env, cwd=home,
                )  # fmt: skip
                assert proc.stdin is not None
                proc.stdin.write(config + "\n")
                proc.stdin.flush()
                procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a fleet process did not start: {proc.stderr.read()[-2000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + seconds + timeout
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"a fleet process failed ({proc.returncode}): {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def _worker(config: dict[str, Any]) -> dict[str, int]:
    from pydantic import SecretStr

    from fleetwright.blocks.github import GitHubCredentials
    from fleetwright.integrations.steps import Integrations

    fields = dict(config["block"])
    for name in ("private_key", "client_secret", "access_token", "refresh_token"):
        if fields.get(name):
            fields[name] = SecretStr(fields[name])
    for name in ("access_token_expires_at", "refresh_token_expires_at"):
        if fields.get(name):
            fields[name] = datetime.fromisoformat(fields[name])
    gh = Integrations.with_credentials(
        GitHubCredentials(**fields), prefect_rate_limits=False, redis_url=config["redis_url"]
    )
    print("ready", flush=True)
    sys.stdin.readline()
    outcomes: Counter[str] = Counter()

    async def one() -> None:
        try:
            await gh.call("github.get_repo", {"repo": "octo/demo"})
            outcomes["ok"] += 1
        except Exception as exc:
            outcomes[f"{type(exc).__name__}: {exc}"] += 1

    done, until = 0, time.monotonic() + float(config["seconds"])
    while done < int(config["calls"]) or time.monotonic() < until:
        await asyncio.gather(*(one() for _ in range(int(config["parallel"]))))
        done += int(config["parallel"])
        if config["pause"]:
            await asyncio.sleep(float(config["pause"]))
    return dict(outcomes)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_worker(json.loads(sys.stdin.readline())))), flush=True)

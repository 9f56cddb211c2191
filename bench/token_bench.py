"""GitHub App installation-token mints per hour for 2 hosts × 4 processes: with the fleet's
shared token cache (Redis) and, as the baseline, without it (each process its own cache).

Each process calls GitHub (the loopback fake, App auth) steadily for `token_seconds`. The fake's
tokens live 60 s + `LIFETIME_S`: githubkit keeps a token until a minute before it expires, so
each is used for `LIFETIME_S`. Mints per token lifetime (over the span from the fleet's first
call to its last), times lifetimes per hour of GitHub's real tokens (1 h, used for 59 min), is
the figure. `min_gap_between_mints_s` near `LIFETIME_S` shows one mint per expiry.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import Bench
from bench.stats import Figure, summary

__all__ = ["FIGURES", "HOSTS", "LIFETIME_S", "PROCESSES", "run"]

FIGURES = ("token_mints_per_hour",)
HOSTS, PROCESSES = 2, 4
LIFETIME_S = 10.0
_GITHUB_USED_S = 3600 - 60  # GitHub's installation tokens live 1 h; githubkit stops 1 min early


def _redis_url() -> str:
    return os.environ.get(
        "FLEETWRIGHT_BENCH_REDIS_URL",
        os.environ.get("FLEETWRIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )


def _app() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _round(bench: Bench, redis_url: str, seconds: float, tag: str) -> dict[str, Any]:
    """One fleet run against a fresh fake and App; its mints and calls."""
    from fleetwright.testing.fake_github import FakeGitHub
    from fleetwright.testing.token_fleet import run_token_fleet

    private, public = _app()
    app_id = str(uuid.uuid4().int % 10_000_000)
    with FakeGitHub(repos=["octo/demo"]) as fake:
        fake.add_app(app_id, public, installation_id=1)
        fake.installation_token_ttl = timedelta(seconds=60 + LIFETIME_S)
        block = {
            "account": f"bench-{tag}", "auth_mode": "app", "app_id": app_id,
            "private_key": private, "installation_id": 1, "base_url": fake.url,
        }  # fmt: skip
        results = run_token_fleet(
            block, redis_url=redis_url, root=bench.root / "tokens" / tag, hosts=HOSTS,
            processes=PROCESSES, calls=1, parallel=1, seconds=seconds, pause=0.1,
        )  # fmt: skip
        errors = [k for r in results for k in r if k != "ok"]
        if errors:
            raise RuntimeError(f"the fleet's GitHub calls failed: {errors[0][:200]}")
        mints = fake.installation_tokens_issued
        minted_at = sorted(r.at for r in fake.requests if r.path.endswith("/access_tokens"))
        called_at = [r.at for r in fake.requests if r.path == "/repos/octo/demo"]
    span = max(called_at) - min(called_at)  # the fleet's calls, first to last
    gaps = [b - a for a, b in itertools.pairwise(minted_at)]
    return {
        "mints": mints,
        "calls": sum(r["ok"] for r in results),
        "span_s": round(span, 2),
        "min_gap_between_mints_s": round(min(gaps), 2) if gaps else None,
        "per_hour": mints / (span / LIFETIME_S) * (3600 / _GITHUB_USED_S),
    }


async def run(bench: Bench) -> dict[str, Figure]:
    import redis

    redis_url = _redis_url()
    redis.Redis.from_url(redis_url).ping()  # no Redis: the figure is missing, with the reason
    seconds = 40.0 if bench.mode == "full" else 2 * LIFETIME_S
    rounds = 3 if bench.mode == "full" else 1
    shared: list[dict[str, Any]] = []
    alone: list[dict[str, Any]] = []
    for n in range(rounds):
        shared.append(await asyncio.to_thread(_round, bench, redis_url, seconds, f"shared{n}"))
        alone.append(await asyncio.to_thread(_round, bench, "", seconds, f"alone{n}"))
    base = [r["per_hour"] for r in alone]
    fig = summary(
        [r["per_hour"] for r in shared],
        "mints/h",
        hosts=HOSTS,
        processes_per_host=PROCESSES,
        seconds_per_round=seconds,
        token_lifetime_s=LIFETIME_S,
        rounds=[{"shared": s, "per_process": a} for s, a in zip(shared, alone, strict=True)],
        baseline={
            "name": "no shared cache (per process)",
            "median": round(statistics.median(base), 4),
            "min": round(min(base), 4),
            "max": round(max(base), 4),
            "unit": "mints/h",
        },
    )
    return {"token_mints_per_hour": fig}

"""State-backend fixtures: a real S3-compatible server on loopback (moto's server mode), a fresh
bucket per test, and settings pointing the state store at it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetwright.settings import reset_settings
from fleetwright.testing.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials in the standard AWS variables (the server accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"fw-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def use_backend(
    home: Path, aws_env: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Callable[[str], str | None]:
    """Point settings at a backend; for `object` a fresh bucket on the loopback server
    (returned)."""

    def use(backend: str) -> str | None:
        monkeypatch.setenv("FLEETWRIGHT_STATE_BACKEND", backend)
        bucket = None
        if backend == "object":
            server: S3Server = request.getfixturevalue("s3_server")
            bucket = make_bucket(server.url)
            monkeypatch.setenv("FLEETWRIGHT_STATE_ENDPOINT_URL", server.url)
            monkeypatch.setenv("FLEETWRIGHT_STATE_BUCKET", bucket)
        reset_settings()
        return bucket

    return use


@pytest.fixture
def own_s3_server() -> Iterator[S3Server]:
    """A server of this test's own, which the test may stop and start again."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket_on() -> Callable[[str], str]:
    """Make a fresh bucket on the server at the given endpoint."""
    return make_bucket

"""Run the real `fleetwright` entry point in-process and capture what it prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Call `fleetwright ARGS...` through main() (its error handling included)."""
    from fleetwright.cli.main import main

    def run(*args: str, stdin: str | None = None, monkeypatch: Any = None) -> Result:
        import io
        import os
        import sys

        capsys.readouterr()
        old_env = dict(os.environ)  # main() points Prefect's env at this test's home
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.stdin = old_stdin
            os.environ.clear()
            os.environ.update(old_env)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run

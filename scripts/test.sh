#!/usr/bin/env bash
# The whole test suite: set up, install what the tests need, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh
source scripts/test-services.sh

.venv/bin/ruff check fleetwright blocks tasks flows deployments bench tests
.venv/bin/ruff format --check fleetwright blocks tasks flows deployments bench tests
.venv/bin/mypy
.venv/bin/lint-imports
# Two pytest workers (pytest-xdist), each given whole test files: a file's module fixtures are
# built once. Every worker has its own Fleetwright home, Prefect server and databases
# (tests/conftest.py). FLEETWRIGHT_TEST_WORKERS=0 runs everything in one process.
exec .venv/bin/pytest -n "${FLEETWRIGHT_TEST_WORKERS:-2}" --dist loadfile "$@"

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
exec .venv/bin/pytest "$@"

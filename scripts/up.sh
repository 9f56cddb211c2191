#!/usr/bin/env bash
# The main job on the embedded default: set up, then `fleetwright up` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleetwright up "$@"

#!/usr/bin/env bash
# Regenerate requirements.lock: every package (with the dev extras) pinned, resolved from
# pyproject.toml for Python 3.11 and newer on any platform (environment markers kept).
# Without arguments it keeps the current pins; `-c FILE` holds versions (e.g. `pip freeze` of
# a tested environment); `--upgrade` takes the newest releases the ranges allow.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
command -v "$UV" >/dev/null || { echo "needs uv (pip install 'uv<1'), or UV=/path/to/uv" >&2; exit 1; }
"$UV" pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
  --no-emit-package fleetwright \
  --custom-compile-command "bash scripts/lock.sh" -o requirements.lock "$@"

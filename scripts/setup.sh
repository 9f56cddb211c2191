#!/usr/bin/env bash
# Fleetwright set-up, shared by scripts/up.sh and scripts/test.sh: a virtualenv with the
# project installed, and a usable Chromium. Safe to run again; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

source scripts/lib.sh

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "Fleetwright needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
# Dependencies come from requirements.lock (exact versions, tested together); the project
# itself is installed editable on top, without re-resolving. Re-run when either file changes.
stamp=.venv/.fleetwright-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing Fleetwright and its locked dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m pip check >/dev/null || {
    .venv/bin/python -m pip check >&2
    echo "requirements.lock does not satisfy pyproject.toml: run bash scripts/lock.sh" >&2
    exit 1
  }
  echo "$want" > "$stamp"
fi

# Chromium: the configured one, else a system Chromium, else Playwright's (needs internet).
chromium_ok() { [ -n "${1:-}" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }
if chromium_ok "${FLEETWRIGHT_CHROMIUM_EXECUTABLE:-}"; then
  :
elif chromium_ok /usr/bin/chromium; then
  :
elif .venv/bin/python - <<'PY' 2>/dev/null
from playwright.sync_api import sync_playwright
import os, sys
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
PY
then
  :
elif [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*debian' /etc/os-release && grep -qi '^ID=debian' /etc/os-release; then
  apt_install chromium
else
  say "installing Playwright's Chromium (needs internet)"
  .venv/bin/python -m playwright install --with-deps chromium
fi

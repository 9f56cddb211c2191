#!/usr/bin/env bash
# One-off, mechanical: the Prefect layer's top-level folders (blocks, tasks, flows, deployments)
# become subpackages of `fleetwright` (fleetwright/<name> -> ../<name> symlinks) and every
# import of them is rewritten to its namespaced name. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in blocks tasks flows deployments; do
  [ -L "fleetwright/$d" ] || ln -s "../$d" "fleetwright/$d"
done
git ls-files -z -- '*.py' '*.md' | grep -zv '^fleetwright/\(blocks\|tasks\|flows\|deployments\)/' \
  | xargs -0 sed -i -E \
    -e 's/^([[:space:]]*)from (blocks|tasks|flows|deployments)(\.[A-Za-z_][A-Za-z0-9_.]*)? import /\1from fleetwright.\2\3 import /' \
    -e 's/"-m", "deployments\.warm_worker"/"-m", "fleetwright.deployments.warm_worker"/'
# Longer names can unsort or overflow an import block: let ruff re-sort and re-wrap them.
.venv/bin/ruff check --quiet --select I --fix fleetwright blocks tasks flows deployments bench tests || true
.venv/bin/ruff format --quiet fleetwright blocks tasks flows deployments bench tests

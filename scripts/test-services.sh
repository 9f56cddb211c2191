#!/usr/bin/env bash
# What the tests need beyond the project: real proxy servers, Prometheus (promtool),
# PostgreSQL and Redis.
# Sourced by scripts/test.sh; says exactly what is missing when it cannot provide it.

apt_install tinyproxy microsocks xvfb nginx prometheus libnss3-tools socat chromium-headless-shell  # socat: the multi-host tests' forwarders; certutil: a CA for Chromium in the TLS tests; the headless shell: FLEETWRIGHT_HEADLESS_SHELL's tests

export FLEETWRIGHT_TEST_DATABASE_URL=${FLEETWRIGHT_TEST_DATABASE_URL:-postgresql+psycopg://root@127.0.0.1:5432/postgres}
pg_up() { .venv/bin/python - "$FLEETWRIGHT_TEST_DATABASE_URL" <<'PY' >/dev/null 2>&1
import sys
from sqlalchemy import create_engine, text
create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect().execute(text("select 1"))
PY
}
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    say "starting the local PostgreSQL cluster"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
  fi
  if ! pg_up; then
    echo "The tests need PostgreSQL at $FLEETWRIGHT_TEST_DATABASE_URL (a user that may create" >&2
    echo "databases). Start one, or set FLEETWRIGHT_TEST_DATABASE_URL to a server that answers." >&2
    exit 1
  fi
fi

export FLEETWRIGHT_TEST_REDIS_URL=${FLEETWRIGHT_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
redis_up() { .venv/bin/python -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$FLEETWRIGHT_TEST_REDIS_URL" >/dev/null 2>&1; }
if ! redis_up; then
  if command -v redis-server >/dev/null || apt_install redis-server; then
    say "starting a Redis server for the tests"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    sleep 1
  fi
  redis_up || { echo "The tests need Redis at $FLEETWRIGHT_TEST_REDIS_URL" >&2; exit 1; }
fi

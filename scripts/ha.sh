#!/usr/bin/env bash
# A highly available Prefect on one machine, as Prefect documents self-hosting: two API servers
# (`prefect server start --no-services`) and one background-services process
# (`prefect server services start`) on PostgreSQL, Redis for messaging (prefect-redis), and nginx
# in front serving API and UI on one port. For tests and demos; docs/deploy.md has the
# production version.
#
#   bash scripts/ha.sh up          start everything (migrations once, then the processes)
#   bash scripts/ha.sh status      what runs, and whether each API server and the balancer answer
#   bash scripts/ha.sh kill-api N  SIGKILL API server N (1 or 2) to watch the other take over
#   bash scripts/ha.sh down        stop everything; `down --purge` also drops the database
#
# Settings (environment):
#   FLEETWRIGHT_HA_DIR        folder for pid files, logs and the nginx config
#                             (default ~/.fleetwright/ha)
#   FLEETWRIGHT_HA_PORT       balancer port (default 4300); API and UI at http://LISTEN:PORT
#   FLEETWRIGHT_HA_LISTEN     address the balancer listens on (default 127.0.0.1; e.g. a bridge
#                             address so worker hosts on that network reach it). The API servers
#                             always listen on loopback, behind the balancer.
#   FLEETWRIGHT_HA_API_PORTS  the API servers' ports (default "4301 4302")
#   FLEETWRIGHT_HA_PG         PostgreSQL server (default postgresql://root@127.0.0.1:5432)
#   FLEETWRIGHT_HA_DATABASE   the stack's own database (default fleetwright_ha)
#   FLEETWRIGHT_HA_REDIS      Redis host:port (default 127.0.0.1:6379)
#   FLEETWRIGHT_HA_REDIS_DB   Redis database for messaging (default 5); Docket uses the next one
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/lib.sh

DIR=${FLEETWRIGHT_HA_DIR:-${FLEETWRIGHT_HOME:-$HOME/.fleetwright}/ha}
LB_PORT=${FLEETWRIGHT_HA_PORT:-4300}
LISTEN=${FLEETWRIGHT_HA_LISTEN:-127.0.0.1}
read -r -a API_PORTS <<< "${FLEETWRIGHT_HA_API_PORTS:-4301 4302}"
PG=${FLEETWRIGHT_HA_PG:-postgresql://root@127.0.0.1:5432}
DB=${FLEETWRIGHT_HA_DATABASE:-fleetwright_ha}
REDIS=${FLEETWRIGHT_HA_REDIS:-127.0.0.1:6379}
REDIS_DB=${FLEETWRIGHT_HA_REDIS_DB:-5}
PY=$ROOT/.venv/bin/python

usage() { echo "usage: bash scripts/ha.sh up | status | kill-api N | down [--purge]" >&2; exit 2; }
die() { echo "ha: $*" >&2; exit 1; }
bad() { echo "ha: $*" >&2; exit 2; }

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || bad "FLEETWRIGHT_HA_DATABASE must be a plain lower-case name, not '$DB'"
[[ $REDIS_DB =~ ^[0-9]+$ ]] || bad "FLEETWRIGHT_HA_REDIS_DB must be a number, not '$REDIS_DB'"
[[ $LISTEN =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || bad "FLEETWRIGHT_HA_LISTEN must be an IPv4 address, not '$LISTEN'"
# The address clients use: the listen address, or loopback when listening on every address.
LB_HOST=$LISTEN
[ "$LB_HOST" = 0.0.0.0 ] && LB_HOST=127.0.0.1
[ ${#API_PORTS[@]} -ge 2 ] || bad "FLEETWRIGHT_HA_API_PORTS needs at least two ports"

# The environment every Prefect process of the stack shares (Prefect's self-hosting guide).
prefect_env() {
  local v
  for v in $(compgen -e | grep '^PREFECT_' || true); do unset "$v"; done
  export PREFECT_HOME=$DIR/prefect-home
  export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://${PG#postgresql://}/$DB"
  export PREFECT_API_DATABASE_MIGRATE_ON_START=false
  export PREFECT_MESSAGING_BROKER=prefect_redis.messaging
  export PREFECT_MESSAGING_CACHE=prefect_redis.messaging
  export PREFECT_SERVER_EVENTS_CAUSAL_ORDERING=prefect_redis.ordering
  export PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect_redis.lease_storage
  export PREFECT_REDIS_MESSAGING_HOST=${REDIS%:*}
  export PREFECT_REDIS_MESSAGING_PORT=${REDIS##*:}
  export PREFECT_REDIS_MESSAGING_DB=$REDIS_DB
  export PREFECT_SERVER_DOCKET_URL="redis://$REDIS/$((REDIS_DB + 1))"
  export PREFECT_SERVER_DOCKET_NAME="fleetwright-ha-$DB"
  export PREFECT_SERVER_ANALYTICS_ENABLED=false
  export PREFECT_SERVER_UI_API_URL="http://$LB_HOST:$LB_PORT/api"
  export PREFECT_API_URL="http://$LB_HOST:$LB_PORT/api"
  export PREFECT_SERVER_LOGGING_LEVEL=WARNING
}

pidfile() { echo "$DIR/run/$1.pid"; }
alive() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# Start "$@" in a session (and process group) of its own, so it and its children stop together.
spawn() {
  local name=$1; shift
  setsid "$@" > "$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

# Stop a process group: SIGTERM, up to 30 s to exit, then SIGKILL.
stop_group() {
  local name=$1 f pid
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null || pgrep -g "$pid" >/dev/null 2>&1; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 60); do pgrep -g "$pid" >/dev/null 2>&1 || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    for _ in $(seq 20); do pgrep -g "$pid" >/dev/null 2>&1 || break; sleep 0.5; done
  fi
  rm -f "$f"
}

# healthy PORT [HOST]: /api/health answers (HOST default loopback, where the API servers listen)
healthy() { curl -fsS --max-time 5 "http://${2:-127.0.0.1}:$1/api/health" >/dev/null 2>&1; }

wait_healthy() {
  local name=$1 port=$2 host=${3:-127.0.0.1}
  for _ in $(seq 240); do
    healthy "$port" "$host" && return 0
    alive "$name" || { tail -n 30 "$DIR/logs/$name.log" >&2; die "$name exited (log $DIR/logs/$name.log)"; }
    sleep 1
  done
  die "$name did not answer on port $port within 240 s (log $DIR/logs/$name.log)"
}

api_names() { local i; for i in "${!API_PORTS[@]}"; do echo "api-$((i + 1))"; done; }

check_services() {
  "$PY" - "$PG/postgres" <<'PY' || die "PostgreSQL does not answer at $PG (trust auth expected); start it or set FLEETWRIGHT_HA_PG"
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=5).close()
PY
  "$PY" -c "import redis,sys; h,p=sys.argv[1].rsplit(':',1); redis.Redis(host=h, port=int(p), socket_timeout=3).ping()" "$REDIS" 2>/dev/null \
    || die "Redis does not answer at $REDIS; start it (redis-server) or set FLEETWRIGHT_HA_REDIS"
}

create_database() {
  "$PY" - "$PG" "$DB" <<'PY'
import sys, psycopg
server, name = sys.argv[1], sys.argv[2]
with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
    if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
        conn.execute(f'create database "{name}"')
with psycopg.connect(f"{server}/{name}", autocommit=True) as conn:
    conn.execute("create extension if not exists pg_trgm")
PY
}

write_nginx_conf() {
  # The shipped deploy/nginx/nginx.conf with loopback upstreams, listen address and log paths.
  local servers="" i
  for i in "${!API_PORTS[@]}"; do
    servers+="        server 127.0.0.1:${API_PORTS[$i]} max_fails=1 fail_timeout=10s;\n"
  done
  mkdir -p "$DIR/nginx/temp"
  awk -v servers="$servers" -v listen="$LISTEN:$LB_PORT" -v logs="$DIR/logs" '
    /server prefect-api-1:4200/ { printf "%s", servers; next }
    /server prefect-api-[0-9]+:4200/ { next }
    /listen 4200;/ { sub(/4200/, listen) }
    /access_log / { sub(/\/var\/log\/nginx/, logs) }
    { print }
  ' deploy/nginx/nginx.conf | sed 's/\\n/\n/g' > "$DIR/nginx/nginx.conf"
  # Temp files under our folder. nginx's worker runs as an unprivileged user, which cannot
  # enter a private folder (a 0700 home or temp dir): request bodies (up to the 64 MB limit)
  # stay in memory and responses are not spooled to files, or any request body over 16 KB (a
  # fleet run's summary table artifact) would get a 500 from nginx.
  sed -i "s|^http {|http {\n    client_body_buffer_size 64m;\n    proxy_max_temp_file_size 0;\n    client_body_temp_path $DIR/nginx/temp/body;\n    proxy_temp_path $DIR/nginx/temp/proxy;\n    fastcgi_temp_path $DIR/nginx/temp/fastcgi;\n    uwsgi_temp_path $DIR/nginx/temp/uwsgi;\n    scgi_temp_path $DIR/nginx/temp/scgi;|" "$DIR/nginx/nginx.conf"
}

up() {
  command -v nginx >/dev/null || apt_install nginx
  [ -x "$ROOT/.venv/bin/prefect" ] || bash scripts/setup.sh
  mkdir -p "$DIR/run" "$DIR/logs" "$DIR/prefect-home"
  local name
  for name in lb services $(api_names); do
    alive "$name" && die "the stack is already running in $DIR ($name); run: bash scripts/ha.sh down"
  done
  check_services
  prefect_env
  say "database $DB on ${PG#postgresql://}, Redis $REDIS db $REDIS_DB"
  create_database
  "$ROOT/.venv/bin/prefect" server database upgrade -y > "$DIR/logs/migrate.log" 2>&1 \
    || { tail -n 30 "$DIR/logs/migrate.log" >&2; die "migrations failed (log $DIR/logs/migrate.log)"; }

  # The first API server registers Prefect's block types on a fresh database; the others start
  # once it answers (started together, they race on the same inserts and one exits).
  local i
  for i in "${!API_PORTS[@]}"; do
    spawn "api-$((i + 1))" "$ROOT/.venv/bin/prefect" server start --host 127.0.0.1 \
      --port "${API_PORTS[$i]}" --no-services --analytics-off
    [ "$i" = 0 ] && wait_healthy api-1 "${API_PORTS[0]}"
  done
  spawn services "$ROOT/.venv/bin/prefect" server services start
  write_nginx_conf
  nginx -t -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -g "pid $DIR/run/nginx.master.pid; error_log $DIR/logs/nginx-error.log;" \
    > "$DIR/logs/nginx-test.log" 2>&1 || { cat "$DIR/logs/nginx-test.log" >&2; down; die "nginx rejected $DIR/nginx/nginx.conf"; }
  spawn lb nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" \
    -g "daemon off; pid $DIR/run/nginx.master.pid; error_log $DIR/logs/nginx-error.log;"

  for i in "${!API_PORTS[@]}"; do wait_healthy "api-$((i + 1))" "${API_PORTS[$i]}"; done
  wait_healthy lb "$LB_PORT" "$LB_HOST"
  sleep 2
  alive services || { tail -n 30 "$DIR/logs/services.log" >&2; die "the services process exited (log $DIR/logs/services.log)"; }
  say "Prefect (HA) at http://$LB_HOST:$LB_PORT  (API: PREFECT_API_URL=http://$LB_HOST:$LB_PORT/api)"
  echo "   API servers on ${API_PORTS[*]}, services, nginx; logs in $DIR/logs"
}

status() {
  local rc=0 name i
  for name in lb services $(api_names); do
    if alive "$name"; then echo "$name: running (pid $(cat "$(pidfile "$name")"))"
    else echo "$name: stopped"; rc=1; fi
  done
  for i in "${!API_PORTS[@]}"; do
    if healthy "${API_PORTS[$i]}"; then echo "api-$((i + 1)) :${API_PORTS[$i]}: healthy"
    else echo "api-$((i + 1)) :${API_PORTS[$i]}: not answering"; rc=1; fi
  done
  if healthy "$LB_PORT" "$LB_HOST"; then echo "balancer :$LB_PORT: healthy"; else echo "balancer :$LB_PORT: not answering"; rc=1; fi
  return $rc
}

kill_api() {
  local n=${1:-}
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le ${#API_PORTS[@]} ] || usage
  local f pid
  f=$(pidfile "api-$n")
  [ -f "$f" ] || die "api-$n is not running"
  pid=$(cat "$f")
  kill -KILL -- "-$pid" 2>/dev/null || true
  for _ in $(seq 20); do pgrep -g "$pid" >/dev/null 2>&1 || break; sleep 0.5; done
  rm -f "$f"
  echo "api-$n killed"
}

down() {
  local name
  for name in lb $(api_names) services; do stop_group "$name"; done
  rm -f "$DIR/run/nginx.master.pid"
  if [ "${1:-}" = --purge ]; then
    "$PY" - "$PG" "$DB" "$REDIS" "$REDIS_DB" <<'PY'
import sys, psycopg, redis
server, name, address, db = sys.argv[1:]
with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
    conn.execute(f'drop database if exists "{name}" with (force)')
host, port = address.rsplit(":", 1)
for n in (int(db), int(db) + 1):
    redis.Redis(host=host, port=int(port), db=n).flushdb()
PY
    rm -rf "$DIR"
    echo "stopped; database $DB dropped, Redis dbs $REDIS_DB and $((REDIS_DB + 1)) flushed, $DIR removed"
  else
    echo "stopped (database $DB kept; \`down --purge\` drops it)"
  fi
}

case ${1:-} in
  up) up ;;
  status) status ;;
  kill-api) kill_api "${2:-}" ;;
  down) down "${2:-}" ;;
  *) usage ;;
esac

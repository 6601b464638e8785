#!/usr/bin/env bash
# A private PostgreSQL 15 cluster, jnx-shim and its nginx edge for this checkout.
#
#   cluster.sh run             start (or reuse) the cluster, create the database and
#                              extension, configure a dev secret, start the shim and
#                              nginx in front of it (the production topology)
#   cluster.sh start           the same without the shim and nginx
#   cluster.sh shim            (re)start the shim; start nginx too if it is not running
#   cluster.sh stop-shim       stop only the shim (nginx answers 503 meanwhile)
#   cluster.sh edge            render deploy/nginx for this instance and (re)start nginx
#   cluster.sh stop-edge       stop only nginx
#   cluster.sh db-stop|db-start   stop or start only the database
#   cluster.sh stop            stop nginx, the shim and the cluster
#   cluster.sh psql [args]     psql on the cluster's database
#   cluster.sh reset           drop and recreate the database (loses its data)
#   cluster.sh env             print the shell variables of this instance
#   cluster.sh sample-webhook  sign and send a sample user.created (through nginx)
#   cluster.sh resend-webhook  send that same delivery again (as a Svix retry)
#   cluster.sh dev-token [SUB] [ORG] [ROLE]   a session token signed by the dev key
#
# JNX_INSTANCE (default "dev") names the instance, so `make test` ("test") never
# touches the cluster of `make run`. PostgreSQL refuses to run as root and the
# checkout may sit where the postgres user cannot enter, so the data directory,
# socket and log live under /tmp, keyed by the checkout's path; so do nginx's
# rendered configuration, pid, logs and temporary files ($BASE/edge).
#
# Addresses: nginx listens on JNX_LISTEN (dev 127.0.0.1:8787; test 18000-18999
# and bench 19000-19999, keyed by checkout); the shim on JNX_SHIM_LISTEN,
# loopback, by default the edge's port + 2000 (dev 10787, test 20000-20999,
# bench 21000-21999): the ranges never overlap.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INSTANCE=${JNX_INSTANCE:-dev}
KEY=$(printf '%s' "$ROOT" | sha256sum | cut -c1-10)
BASE=/tmp/jnx_auth-$KEY-$INSTANCE
PGDATA_DIR=$BASE/data
SOCKET_DIR=$BASE/run
PGLOG=$BASE/postgresql.log
SECRET_FILE=$BASE/webhook-secret
SHIM_PID=$BASE/shim.pid
SHIM_LOG=$BASE/shim.log
DB=${JNX_DB:-jnx}
DEV_ISSUER=https://clerk.dev.jnx.test
PGPORT_NUM=5432
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
if [[ ! -x $PGBIN/pg_ctl ]]; then PGBIN=/usr/lib/postgresql/15/bin; fi
DEFAULT_LISTEN=127.0.0.1:8787
# Tests get a port of their own per checkout, so two checkouts can test at once.
[[ $INSTANCE == test ]] && DEFAULT_LISTEN=127.0.0.1:$((18000 + 16#${KEY:0:4} % 1000))
[[ $INSTANCE == bench ]] && DEFAULT_LISTEN=127.0.0.1:$((19000 + 16#${KEY:0:4} % 1000))
LISTEN=${JNX_LISTEN:-$DEFAULT_LISTEN}
EDGE_PORT=${LISTEN##*:}
if [[ -n ${JNX_SHIM_LISTEN:-} ]]; then
  SHIM_LISTEN=$JNX_SHIM_LISTEN
elif ((EDGE_PORT + 2000 <= 65535)); then
  # Always loopback, whatever address the edge listens on.
  SHIM_LISTEN=127.0.0.1:$((EDGE_PORT + 2000))
else
  echo "JNX_LISTEN port $EDGE_PORT leaves no room for the shim at port + 2000: set JNX_SHIM_LISTEN" >&2
  exit 2
fi
# Browser origins the shim answers CORS for (JNX_CORS_ORIGINS, comma-separated):
# none unless set, but the test instance lists two, which test_shim.py and
# test_edge.py call from (and one they never list).
DEFAULT_CORS_ORIGINS=
[[ $INSTANCE == test ]] && DEFAULT_CORS_ORIGINS=https://app.jnx.test,http://localhost:3000
CORS_ORIGINS=${JNX_CORS_ORIGINS-$DEFAULT_CORS_ORIGINS}
EDGE_DIR=$BASE/edge
EDGE_CONF=$EDGE_DIR/nginx.conf
EDGE_PID=$EDGE_DIR/nginx.pid
EDGE_ACCESS_LOG=$EDGE_DIR/access.log
EDGE_ERROR_LOG=$EDGE_DIR/error.log

# From / : the caller's directory (a checkout under /root, say) may be one that
# postgres cannot enter.
as_postgres() {
  if [[ $(id -un) == postgres ]]; then (cd / && "$@"); else (cd / && runuser -u postgres -- "$@"); fi
}

psql_db() {
  PGHOST=$SOCKET_DIR PGPORT=$PGPORT_NUM PGUSER=postgres \
    psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

cluster_running() {
  [[ -f $PGDATA_DIR/postmaster.pid ]] && as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

start_cluster() {
  mkdir -p "$BASE"
  chmod 755 "$BASE"
  chown postgres:postgres "$BASE"
  if [[ ! -f $PGDATA_DIR/PG_VERSION ]]; then
    as_postgres mkdir -p "$PGDATA_DIR" "$SOCKET_DIR"
    as_postgres chmod 700 "$PGDATA_DIR" "$SOCKET_DIR"
    as_postgres "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    # Unix socket only, in a directory only postgres (and root) can enter.
    cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$SOCKET_DIR'
port = $PGPORT_NUM
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
CONF
  fi
  if ! cluster_running; then
    as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start >/dev/null
  fi
  if ! psql_db -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    psql_db -d postgres -c "CREATE DATABASE $DB"
  fi
  # Create the extension, or bring an existing one to the installed version.
  psql_db -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS jnx_auth" \
    -c "ALTER EXTENSION jnx_auth UPDATE"
  if [[ ! -s $SECRET_FILE ]]; then
    (umask 077 && printf 'whsec_%s\n' "$(openssl rand -base64 32)" >"$SECRET_FILE")
  fi
  psql_db -v secret="$(cat "$SECRET_FILE")" >/dev/null <<'SQL'
SELECT jnx.set_webhook_secrets(:'secret')
 WHERE NOT EXISTS (SELECT 1 FROM jnx.webhook_secrets WHERE secret = :'secret');
SQL
  # A development key pair for session tokens (make dev-token signs with it).
  if [[ ! -s $BASE/ins_dev.pem ]]; then
    (umask 077 && "$ROOT/build/jnx-mint" keygen "$BASE" ins_dev >"$BASE/dev-jwk.json")
  fi
  psql_db -v jwks="{\"keys\":[$(cat "$BASE/dev-jwk.json")]}" -v issuer="$DEV_ISSUER" >/dev/null <<'SQL'
SELECT jnx.set_jwks(:'jwks')
 WHERE NOT EXISTS (SELECT 1 FROM jnx.token_config WHERE jwks = :'jwks'::jsonb);
SELECT jnx.set_token_policy(ARRAY[:'issuer'], '{}')
 WHERE NOT EXISTS (SELECT 1 FROM jnx.token_config WHERE issuers = ARRAY[:'issuer']);
SQL
}

# A session token for the development key: dev-token [SUB] [ORG_ID] [ORG_ROLE]
dev_token() {
  local sub=${1:-user_2sampleFakeUser0000000000} org=${2:-} role=${3:-admin} now
  now=$(date +%s)
  local claims="{\"sub\":\"$sub\",\"iss\":\"$DEV_ISSUER\",\"iat\":$now,\"nbf\":$((now - 5)),\"exp\":$((now + 3600)),\"v\":2"
  [[ -n $org ]] && claims+=",\"o\":{\"id\":\"$org\",\"rol\":\"$role\"}"
  "$ROOT/build/jnx-mint" token "$BASE" ins_dev '{"alg":"RS256","kid":"ins_dev","typ":"JWT"}' "$claims}"
}

stop_shim() {
  if [[ -f $SHIM_PID ]]; then
    local pid
    pid=$(cat "$SHIM_PID")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$SHIM_PID"
  fi
}

start_shim() {
  stop_shim
  # The shim's own login role: it can only ingest, authenticate and switch to
  # anon/authenticated (created by the extension).
  local conninfo="host=$SOCKET_DIR port=$PGPORT_NUM dbname=$DB user=jnx_authenticator"
  JNX_DATABASE_URL=${JNX_DATABASE_URL:-$conninfo} JNX_LISTEN=$SHIM_LISTEN \
    JNX_CORS_ORIGINS=$CORS_ORIGINS nohup "$ROOT/shim/jnx-shim" >>"$SHIM_LOG" 2>&1 &
  echo $! >"$SHIM_PID"
  for _ in $(seq 1 100); do
    if curl -fsS "http://$SHIM_LISTEN/healthz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$SHIM_PID")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "jnx-shim did not start; see $SHIM_LOG" >&2
  tail -n 20 "$SHIM_LOG" >&2 || true
  return 1
}

edge_running() {
  [[ -f $EDGE_PID ]] && kill -0 "$(cat "$EDGE_PID")" 2>/dev/null
}

stop_nginx() {  # stop_nginx PIDFILE
  if [[ -f $1 ]]; then
    local pid
    pid=$(cat "$1")
    if kill -0 "$pid" 2>/dev/null; then
      # QUIT: finish the requests in flight, close idle connections, exit.
      kill -QUIT "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
  fi
}

stop_edge() {
  stop_nginx "$EDGE_PID"
}

# The production configuration (deploy/nginx), rendered with this instance's
# addresses and paths; rates stay production's (test/shim/test_edge.py renders
# its own low-rate copy to test them quickly).
render_edge() {
  mkdir -p "$EDGE_DIR/tmp"
  chmod 755 "$EDGE_DIR"
  local exempt=${JNX_RATE_EXEMPT:-}
  # make bench measures throughput from loopback through the edge: not the
  # rate limits (which would answer 429 to its single token).
  [[ $INSTANCE == bench && -z ${JNX_RATE_EXEMPT+x} ]] && exempt=127.0.0.0/8
  JNX_EDGE_LISTEN=$LISTEN JNX_SHIM_LISTEN=$SHIM_LISTEN JNX_RATE_EXEMPT=$exempt \
    JNX_EDGE_PID=$EDGE_PID JNX_EDGE_ACCESS_LOG=$EDGE_ACCESS_LOG JNX_EDGE_ERROR_LOG=$EDGE_ERROR_LOG \
    JNX_EDGE_TEMP_DIR=$EDGE_DIR/tmp \
    bash "$ROOT/deploy/nginx/render.sh" -o "$EDGE_CONF"
  nginx -q -t -p "$EDGE_DIR/" -c "$EDGE_CONF" -e "$EDGE_ERROR_LOG"
}

start_edge() {
  if ! command -v nginx >/dev/null; then
    echo "nginx is not installed: run test/env/deps.sh (make deps)" >&2
    return 1
  fi
  stop_edge
  render_edge
  # -e: nginx's early error log (before the configuration is read) goes here
  # too, not to the system's.
  nginx -p "$EDGE_DIR/" -c "$EDGE_CONF" -e "$EDGE_ERROR_LOG"
  for _ in $(seq 1 50); do
    # Any HTTP answer means nginx listens (503 while the shim is down).
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$LISTEN/healthz" 2>/dev/null) != 000 ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "nginx did not start on $LISTEN; see $EDGE_ERROR_LOG" >&2
  tail -n 20 "$EDGE_ERROR_LOG" >&2 || true
  return 1
}

ensure_edge() {
  edge_running || start_edge
}

stop_cluster() {
  stop_edge
  # The low-rate copy test/shim/test_edge.py starts, if a killed run left it.
  stop_nginx "$BASE/edge-lowrate/nginx.pid"
  stop_shim
  if cluster_running; then
    as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
  fi
}

print_env() {
  cat <<ENV
export PGHOST=$SOCKET_DIR PGPORT=$PGPORT_NUM PGUSER=postgres PGDATABASE=$DB
export JNX_BASE=$BASE JNX_LISTEN=$LISTEN JNX_SHIM_LISTEN=$SHIM_LISTEN JNX_SECRET_FILE=$SECRET_FILE
export JNX_SHIM_LOG=$SHIM_LOG JNX_SHIM_PID_FILE=$SHIM_PID JNX_PGDATA=$PGDATA_DIR JNX_PGBIN=$PGBIN
export JNX_EDGE_DIR=$EDGE_DIR JNX_EDGE_ACCESS_LOG=$EDGE_ACCESS_LOG JNX_EDGE_PID_FILE=$EDGE_PID
export JNX_CORS_ORIGINS=$(printf %q "$CORS_ORIGINS")
ENV
}

case ${1:-} in
  start) start_cluster ;;
  run)
    start_cluster
    start_shim
    start_edge
    cat <<MSG

jnx_auth is running (instance "$INSTANCE").
  edge        http://$LISTEN   nginx, the address to use (access log: $EDGE_ACCESS_LOG)
  shim        http://$SHIM_LISTEN   jnx-shim behind it, loopback only (log: $SHIM_LOG)
  database    $DB on socket $SOCKET_DIR (log: $PGLOG)
  dev secret  $SECRET_FILE

Next:
  make sample-webhook     sign and POST a sample user.created to the shim
  make resend-webhook     POST the very same delivery again: answered "duplicate"
  curl -H "Authorization: Bearer \$(make -s dev-token)" http://$LISTEN/api/me
                          the sample user's profile, with a token signed by the dev key
  make psql               then: SELECT clerk_user_id, email, sync_state FROM jnx.users;
  make stop               stop nginx, the shim and the database
MSG
    ;;
  shim) start_shim; ensure_edge ;;
  edge) start_edge ;;
  stop-edge) stop_edge ;;
  # For fault tests: stop or start only the database, leaving the shim up.
  db-stop) as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m "${2:-fast}" -w stop >/dev/null ;;
  db-start) as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start >/dev/null ;;
  stop-shim) stop_shim ;;
  stop) stop_cluster ;;
  psql) shift; psql_db "$@" ;;
  reset)
    # Drops and recreates this instance's database: all its data is lost. For
    # development, when the extension changed without a new version number
    # (ALTER EXTENSION UPDATE does nothing then).
    stop_shim
    psql_db -d postgres -c "DROP DATABASE IF EXISTS $DB (FORCE)"
    start_cluster
    start_shim
    ensure_edge
    echo "database $DB recreated with the installed jnx_auth; shim restarted"
    ;;
  env) print_env ;;
  dev-token) shift; dev_token "$@" ;;
  sample-webhook | resend-webhook)
    arg=$ROOT/test/fixtures/user_created.json
    [[ $1 == resend-webhook ]] && arg=--resend
    JNX_SECRET_FILE=$SECRET_FILE JNX_LISTEN=$LISTEN JNX_BASE=$BASE \
      python3 "$ROOT/test/fixtures/send_webhook.py" "$arg"
    ;;
  *) sed -n '2,30p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac

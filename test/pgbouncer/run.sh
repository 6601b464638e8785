#!/usr/bin/env bash
# The whole HTTP suite (test/shim/test_shim.py) with the shim talking to the database through a
# real PgBouncer in transaction mode, then the tests that only make sense behind one
# (test_pgbouncer.py). Uses the running test cluster (test/run-all.sh starts it; standalone:
# `JNX_INSTANCE=test bash test/env/cluster.sh run` first).
#
# PgBouncer (Debian's package) gets a configuration generated under $JNX_BASE/pgbouncer: pool_mode
# = transaction, trust against a user list written at start, 4 server connections for the
# shim's 8. The cluster's shim is restarted behind it with JNX_TRANSACTION_POOLING=on and, on
# the way out (also on failure), restarted as it was, straight to the database; PgBouncer stops.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export JNX_INSTANCE=${JNX_INSTANCE:-test}
CLUSTER="bash $ROOT/test/env/cluster.sh"
eval "$($CLUSTER env)"
BOUNCER_DIR=$JNX_BASE/pgbouncer
POOL_SIZE=4

if ! command -v pgbouncer >/dev/null && [[ ! -x /usr/sbin/pgbouncer ]]; then
  echo "pgbouncer is not installed: run test/env/deps.sh (make deps)" >&2
  exit 1
fi

cleanup() {
  # The shim straight to the database again, as the rest of the suites expect it.
  env -u JNX_DATABASE_URL -u JNX_TRANSACTION_POOLING $CLUSTER shim >/dev/null 2>&1 || true
  python3 "$ROOT/test/pgbouncer/pgbouncer.py" stop "$BOUNCER_DIR" || true
  # The tests' own PgBouncers, should a test have died before stopping its own.
  local dir
  for dir in "$JNX_BASE"/pgbouncer-*; do
    [[ -d $dir ]] && python3 "$ROOT/test/pgbouncer/pgbouncer.py" stop "$dir"
  done
  return 0
}
trap cleanup EXIT

python3 "$ROOT/test/pgbouncer/pgbouncer.py" stop "$BOUNCER_DIR" 2>/dev/null || true
port=$(python3 "$ROOT/test/pgbouncer/pgbouncer.py" start "$BOUNCER_DIR" "$PGHOST" "$PGPORT" "$POOL_SIZE") || {
  echo "pgbouncer did not start" >&2
  cat "$BOUNCER_DIR/pgbouncer.log" >&2 2>/dev/null
  exit 1
}
echo "# pgbouncer $(pgbouncer --version | head -1 | cut -d' ' -f2) on 127.0.0.1:$port, pool_mode transaction, $POOL_SIZE server connections"

# The cluster's shim (pool of 8, the default) through it.
JNX_DATABASE_URL="host=127.0.0.1 port=$port dbname=$PGDATABASE user=jnx_authenticator" \
  JNX_TRANSACTION_POOLING=on $CLUSTER shim || exit 1
export JNX_TEST_PGBOUNCER=1 JNX_TEST_PGBOUNCER_PORT=$port

status=0
# Test names as arguments run only those (of either file), for development.
shim_tests=() own_tests=()
for name in "$@"; do
  if grep -q "^def $name(" "$ROOT/test/pgbouncer/test_pgbouncer.py"; then own_tests+=("$name"); else shim_tests+=("$name"); fi
done
if (($# == 0 || ${#shim_tests[@]} > 0)); then
  python3 "$ROOT/test/shim/test_shim.py" "${shim_tests[@]}" || status=1
fi
if (($# == 0 || ${#own_tests[@]} > 0)); then
  python3 "$ROOT/test/pgbouncer/test_pgbouncer.py" "${own_tests[@]}" || status=1
fi
exit $status

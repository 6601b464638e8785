#!/usr/bin/env bash
# Every suite, in order, on a fresh private cluster ("test" instance: nginx on a
# loopback port of its own, the shim behind it on another, as in production).
# Called by `make test` after deps, build and install.
# Stops what it started, also on failure. The last line counts the suites.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export JNX_INSTANCE=test
CLUSTER="bash $ROOT/test/env/cluster.sh"
FUZZ_SECONDS=${JNX_FUZZ_SECONDS:-30}

passed=0
failed=0
failures=()
started=$(date +%s)

suite() {
  local name=$1
  shift
  echo
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    echo "=== $name: passed in $((SECONDS - t0))s"
    passed=$((passed + 1))
  else
    echo "=== $name: FAILED after $((SECONDS - t0))s"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

cleanup() {
  $CLUSTER stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

fresh_cluster() {
  $CLUSTER stop >/dev/null 2>&1 || true
  eval "$($CLUSTER env)"
  rm -rf "$JNX_BASE"
  $CLUSTER run
}

regress() {
  eval "$($CLUSTER env)"
  if ! make -s installcheck; then
    [[ -f regression.diffs ]] && head -n 80 regression.diffs
    return 1
  fi
}

pgtap() {
  eval "$($CLUSTER env)"
  make -s regress-tokens
  export JNX_TOKENS_FILE=$ROOT/build/regress-tokens/tokens.psql
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS jnx_pgtap" -c "CREATE DATABASE jnx_pgtap" &&
    psql -X -q -d jnx_pgtap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION jnx_auth" &&
    pg_prove -d jnx_pgtap test/pgtap/*.sql
}

# On a throwaway cluster of its own: pg_cron must be preloaded.
cron_retention() {
  bash test/cron/run.sh
}

upgrade() {
  eval "$($CLUSTER env)"
  bash test/upgrade/run.sh
}

shim_integration() {
  eval "$($CLUSTER env)"
  python3 test/shim/test_shim.py
}

edge() {
  eval "$($CLUSTER env)"
  python3 test/shim/test_edge.py
}

# Its own database in the cluster, local HTTPS servers with a CA made at test time.
refresh_jwks() {
  eval "$($CLUSTER env)"
  bash test/jwks/run.sh
}

# The whole shim suite again, the shim behind a real PgBouncer in transaction mode; it restarts
# the cluster's shim straight to the database when done.
through_pgbouncer() {
  eval "$($CLUSTER env)"
  bash test/pgbouncer/run.sh
}

suite "unit (GoogleTest, extension/core)" make -s unit
suite "fuzz (libFuzzer + ASan/UBSan, ${FUZZ_SECONDS}s per target)" make -s fuzz FUZZ_SECONDS="$FUZZ_SECONDS"
suite "format (clang-format)" make -s format-check
suite "lint (clang-tidy)" make -s lint
suite "symbols (no library call shadowed by the server)" make -s symbols-check
suite "Prometheus alert rules (promtool check and test rules)" bash test/prometheus/run.sh
suite "private cluster, shim and nginx edge" fresh_cluster
suite "pg_regress (make installcheck)" regress
suite "pgTAP (pg_prove)" pgtap
suite "pg_cron runs jnx.apply_retention (own cluster)" cron_retention
suite "upgrade from every released version" upgrade
suite "shim integration (HTTP, through the edge)" shim_integration
# After the shim suite, so that its access-log check covers that traffic too.
suite "edge (nginx in front of the shim)" edge
suite "jnx-shim refresh-jwks (HTTPS, TLS checks, owner-only writes)" refresh_jwks
suite "systemd units (systemd-analyze verify and security)" bash test/systemd/run.sh
suite "shim integration through PgBouncer (transaction mode)" through_pgbouncer
suite "failover to a promoted standby (own clusters, multi-host conninfo)" bash test/failover/run.sh

echo
echo "make test finished in $(($(date +%s) - started))s"
((failed > 0)) && echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
((failed == 0))

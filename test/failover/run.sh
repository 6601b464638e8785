#!/usr/bin/env bash
# Failover under a stream of webhooks (test/failover/test_failover.py): a primary and a streaming
# standby of their own, and a jnx-shim given both with a multi-host conninfo. Everything lives in
# /tmp/jnx_auth-<checkout hash>-failover and is stopped and removed on the way out, also on
# failure. Needs the installed extension and shim/jnx-shim built; no other cluster.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KEY=$(printf '%s' "$ROOT" | sha256sum | cut -c1-10)
export JNX_FAILOVER_BASE=/tmp/jnx_auth-$KEY-failover
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[[ -x $PGBIN/pg_ctl ]] || PGBIN=/usr/lib/postgresql/15/bin
export JNX_PGBIN=$PGBIN

cleanup() {
  local pid
  if [[ -f $JNX_FAILOVER_BASE/shim.pid ]]; then
    pid=$(cat "$JNX_FAILOVER_BASE/shim.pid")
    kill -TERM "$pid" 2>/dev/null && sleep 0.5
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for node in node_a node_b; do
    if [[ -f $JNX_FAILOVER_BASE/$node/postmaster.pid ]]; then
      (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$JNX_FAILOVER_BASE/$node" -m immediate -w stop >/dev/null 2>&1) || true
    fi
  done
  rm -rf "$JNX_FAILOVER_BASE"
}
trap cleanup EXIT

cleanup  # what a killed run may have left
status=0
python3 "$ROOT/test/failover/test_failover.py" || status=1
if ((status != 0)); then
  for f in "$JNX_FAILOVER_BASE"/*.log; do
    [[ -f $f ]] && { echo "--- $f (last lines)"; tail -n 15 "$f"; }
  done
fi
exit $status

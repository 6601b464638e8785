#!/usr/bin/env bash
# Webhooks end to end straight to PostgreSQL vs through PgBouncer in transaction mode, in one
# run (not part of make test or make bench): test/bench/loadgen sends signed user.created
# deliveries to two shims on the private "bench" cluster, in alternating rounds:
#   direct     JNX_POOL_SIZE=8, named statements prepared once per connection, timeout at login
#   pgbouncer  the same pool through PgBouncer (pool_mode transaction, default_pool_size 8, the
#              same number of server connections), JNX_TRANSACTION_POOLING=on: statements
#              unnamed and SET LOCAL statement_timeout in every transaction
# Prints events/s of each round and the ratio pgbouncer/direct of the medians.
#   BENCH_CLIENTS (16), BENCH_SECONDS (8), BENCH_ROUNDS (3)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CLIENTS=${BENCH_CLIENTS:-16}
SECONDS_EACH=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
make -s build/loadgen shim/jnx-shim tools
export JNX_INSTANCE=bench
CLUSTER="bash $ROOT/test/env/cluster.sh"
$CLUSTER start >/dev/null
eval "$($CLUSTER env)"
BOUNCER_DIR=$JNX_BASE/pgbouncer-bench
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  python3 test/pgbouncer/pgbouncer.py stop "$BOUNCER_DIR" || true
  $CLUSTER stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

bport=$(python3 test/pgbouncer/pgbouncer.py start "$BOUNCER_DIR" "$PGHOST" "$PGPORT" 8)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_shim() {  # start_shim PORT CONNINFO POOLING
  JNX_LISTEN=127.0.0.1:$1 JNX_DATABASE_URL=$2 JNX_TRANSACTION_POOLING=$3 JNX_POOL_SIZE=8 \
    ./shim/jnx-shim >>"$JNX_BASE/bench-pgbouncer-shim.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "shim on $1 did not become ready" >&2
  return 1
}
direct_port=$(free_port)
pooled_port=$(free_port)
start_shim "$direct_port" "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=jnx_authenticator" off
start_shim "$pooled_port" "host=127.0.0.1 port=$bport dbname=$PGDATABASE user=jnx_authenticator" on
check="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER"

echo "== webhooks end to end: direct vs through PgBouncer $(pgbouncer --version | head -1 | cut -d' ' -f2) (transaction mode), $CLIENTS clients, ${ROUNDS}x${SECONDS_EACH}s each, alternating"
direct=() pooled=()
for r in $(seq 1 "$ROUNDS"); do
  for side in direct pgbouncer; do
    port=$direct_port
    [[ $side == pgbouncer ]] && port=$pooled_port
    out=$(./build/loadgen "127.0.0.1:$port" "$JNX_SECRET_FILE" "$CLIENTS" "$SECONDS_EACH" 1000000 "pgb$(date +%s)$side" "$check")
    eps=$(sed -n 's/.*= *\([0-9]*\) events\/s.*/\1/p' <<<"$out")
    echo "  round $r $side: $(grep -m1 'events/s' <<<"$out")"
    if [[ $side == direct ]]; then direct+=("$eps"); else pooled+=("$eps"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
d=$(median "${direct[@]}")
p=$(median "${pooled[@]}")
awk -v d="$d" -v p="$p" 'BEGIN { printf "  medians: direct %d events/s, through PgBouncer %d events/s; ratio pgbouncer/direct %.3f\n", d, p, p / d }'

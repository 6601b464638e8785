#!/usr/bin/env bash
# What the per-request metrics bookkeeping costs (not part of make test).
#
# Builds the shim twice from this checkout, as the Makefile does, once with
# -DJNX_METRICS_BOOKKEEPING=0 (nothing counted per request), and measures:
#   1. GET /healthz with wrk (the cheapest route, where counting weighs most),
#      the two builds in alternating rounds on the same machine: requests per
#      second and the shim's CPU time per request, and the ratios of their
#      medians (with / without);
#   2. under callgrind, the instructions per request of the whole process for
#      each build (one connection, sequential requests), and the counting's
#      own (Metrics::ObserveRequest, inclusive) in the build that counts.
# No database is needed: /healthz never touches it.
#   METRICS_BENCH_ROUNDS (5), METRICS_BENCH_SECONDS (5), METRICS_BENCH_CONNECTIONS (16),
#   METRICS_BENCH_REQUESTS (2000, under callgrind)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ROUNDS=${METRICS_BENCH_ROUNDS:-5}
SECONDS_EACH=${METRICS_BENCH_SECONDS:-5}
CONNECTIONS=${METRICS_BENCH_CONNECTIONS:-16}
BUILD=$ROOT/build/metrics-cost
mkdir -p "$BUILD"

extversion=$(sed -n "s/^default_version = '\(.*\)'/\1/p" extension/jnx_auth.control)
build() {  # build OUTPUT BOOKKEEPING
  # shellcheck disable=SC2046
  g++ -std=c++17 -Wall -Wextra -Wshadow=local -Werror -O2 -g -DJNX_EXTVERSION="\"$extversion\"" \
    -DJNX_METRICS_BOOKKEEPING="$2" -I"$(pg_config --includedir)" -o "$1" shim/*.cpp \
    $(pkg-config --cflags --libs cpp-httplib) -lpq -lpthread
}
echo "building both shims..."
build "$BUILD/with" 1 &
build "$BUILD/without" 0 &
wait

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # start BINARY PORT [launcher...]: the shim on PORT, its log discarded
  local bin=$1 port=$2
  shift 2
  JNX_LISTEN=127.0.0.1:$port JNX_DATABASE_URL="host=/nonexistent dbname=none" \
    "$@" "$bin" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the shim on $port did not start" >&2
  return 1
}

echo
echo "== 1. GET /healthz, wrk -c$CONNECTIONS, ${ROUNDS}x${SECONDS_EACH}s each, alternating"
port_with=$(free_port)
port_without=$(free_port)
start "$BUILD/with" "$port_with"
start "$BUILD/without" "$port_without"
pid_with=${pids[0]}
pid_without=${pids[1]}
# The shim's CPU time (user + system, in clock ticks) from /proc: on a shared
# machine the CPU a request costs varies much less than the requests a second.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -a with without cpu_with cpu_without
for round in $(seq 1 "$ROUNDS"); do
  for which in with without; do
    port=$port_with pid=$pid_with
    [[ $which == without ]] && port=$port_without pid=$pid_without
    before=$(cpu_ticks "$pid")
    report=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "http://127.0.0.1:$port/healthz")
    after=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")
    n=$(awk '/requests in/ {print $1}' <<<"$report")
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    echo "  round $round $which bookkeeping: $rps requests/s, $us us of shim CPU per request"
    if [[ $which == with ]]; then
      with+=("$rps") cpu_with+=("$us")
    else
      without+=("$rps") cpu_without+=("$us")
    fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m_with=$(median "${with[@]}")
m_without=$(median "${without[@]}")
c_with=$(median "${cpu_with[@]}")
c_without=$(median "${cpu_without[@]}")
echo "  median: with $m_with, without $m_without requests/s; CPU per request with $c_with us, without $c_without us"
awk -v a="$m_with" -v b="$m_without" -v c="$c_with" -v d="$c_without" 'BEGIN {
  printf "  ratio with/without: throughput %.3f, CPU per request %.3f\n", a / b, c / d }'
# The counters moved: the build with bookkeeping counted what wrk sent.
counted=$(curl -fsS "http://127.0.0.1:$port_with/metrics" |
  awk '/^jnx_http_requests_total\{route="\/healthz",method="GET",status="200"\}/ {print $2}')
echo "  /healthz requests counted by the build with bookkeeping: $counted"

echo
echo "== 2. callgrind: instructions per GET /healthz (the whole process), with and without"
if ! command -v valgrind >/dev/null; then
  echo "  valgrind not installed: skipped"
  exit 0
fi
REQUESTS=${METRICS_BENCH_REQUESTS:-2000}
send() {  # send PORT N: N sequential GET /healthz on one connection
  python3 - "$1" "$2" <<'PY'
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
for _ in range(int(sys.argv[2])):
    conn.request("GET", "/healthz")
    conn.getresponse().read()
PY
}
declare -A per_request
for which in with without; do
  port=$(free_port)
  out=$BUILD/callgrind.$which
  rm -f "$out" "$out".*
  start "$BUILD/$which" "$port" valgrind --tool=callgrind --callgrind-out-file="$out" -q
  pid=${pids[-1]}
  send "$port" 200  # warm up: thread-locals, the first allocations
  callgrind_control -z "$pid" >/dev/null 2>&1
  send "$port" "$REQUESTS"
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 1 50); do [[ -s $out.1 ]] && break; sleep 0.1; done
  total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  per_request[$which]=$((total / REQUESTS))
  echo "  $which bookkeeping: $total instructions for $REQUESTS requests, ${per_request[$which]} per request"
  if [[ $which == with ]]; then
    # The counting itself, measured inside the same run: Metrics::ObserveRequest
    # (its own file, never inlined) and everything it calls.
    observe=$(callgrind_annotate --inclusive=yes --threshold=100 "$out.1" 2>/dev/null |
      awk '/metrics.cpp:jnx::shim::Metrics::ObserveRequest/ {gsub(",", "", $1); print $1; exit}' || true)
    echo "  Metrics::ObserveRequest: ${observe:-0} instructions, $((${observe:-0} / REQUESTS)) per request"
  fi
  kill "$pid" 2>/dev/null || true
done
# Idle threads wake every 200 ms to poll: the two totals differ by some
# hundred instructions per request from run to run, whichever build runs.
awk -v a="${per_request[with]}" -v b="${per_request[without]}" 'BEGIN {
  printf "  difference %d instructions per request: ratio with/without %.4f\n", a - b, a / b }'

#!/usr/bin/env bash
# The Prometheus alert rules (deploy/prometheus/jnx_auth.rules.yml): promtool
# checks them, runs their unit tests (jnx_auth.rules.test.yml: series fed in,
# each alert asserted to fire when it should and not when it should not), then
# runs the same tests against copies of the rules each broken in one way, all
# of which must fail: the tests can tell a wrong rule from a right one.
# Needs only promtool (Debian package prometheus, installed by test/env/deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RULES=$ROOT/deploy/prometheus/jnx_auth.rules.yml
TESTS=$ROOT/deploy/prometheus/jnx_auth.rules.test.yml
if ! command -v promtool >/dev/null; then
  echo "promtool not found: run test/env/deps.sh (make deps)" >&2
  exit 1
fi

passed=0
failed=0
check() {  # check NAME COMMAND...: one counted step
  local name=$1
  shift
  if "$@"; then
    echo "ok - $name"
    passed=$((passed + 1))
  else
    echo "not ok - $name"
    failed=$((failed + 1))
  fi
}

check "promtool check rules" promtool check rules "$RULES"
check "promtool test rules" promtool test rules "$TESTS"

# Each a sed expression that makes one rule wrong (alerting too early, too
# late, on the wrong series, never): the unit tests must fail for every one.
mutations=(
  's/up{job="jnx-shim"} == 0/up{job="jnx-shim"} == 1/'
  '0,/for: 2m/s//for: 0m/'
  's/jnx_dead_letters_waiting > 0/jnx_dead_letters_waiting > 1/'
  '0,/for: 15m/s//for: 5m/'
  's/jnx_provisional_users_over_1h > 0/jnx_provisional_users_over_1h > 5/'
  '0,/for: 30m/s//for: 40m/'
  's/) > 0.01/) > 0.05/'
  's/{route!="\/metrics",status=~"5.."}/{status=~"5.."}/; s/{route!="\/metrics"}//'
  's/jnx_db_pool_waiting > 0 or //'
  's/jnx_db_pool_in_use >= jnx_db_pool_size/jnx_db_pool_in_use > jnx_db_pool_size/'
  's/jnx_stats_up == 0/jnx_stats_up < 0/'
  's/) > 0.5/) > 0.95/'
  's/\[15m\])) >= 3/[15m])) >= 1/'
)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp "$TESTS" "$scratch/"
for m in "${mutations[@]}"; do
  sed "$m" "$RULES" >"$scratch/jnx_auth.rules.yml"
  if cmp -s "$RULES" "$scratch/jnx_auth.rules.yml"; then
    echo "not ok - mutation changed nothing: $m"
    failed=$((failed + 1))
    continue
  fi
  # The broken copy must still be valid rules, or the test proves only YAML.
  if ! promtool check rules "$scratch/jnx_auth.rules.yml" >/dev/null 2>&1; then
    echo "not ok - mutation made invalid rules: $m"
    failed=$((failed + 1))
    continue
  fi
  check "the unit tests catch: $m" \
    bash -c '! promtool test rules "$1" >/dev/null 2>&1' _ "$scratch/jnx_auth.rules.test.yml"
done

echo "prometheus: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS (default 30), starting from its
# checked-in seed corpus; new inputs go to a scratch copy, not the repository.
# A crash leaves its reproducer in build/fuzz-artifacts/ and fails the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-30}
ARTIFACTS=$ROOT/build/fuzz-artifacts
mkdir -p "$ARTIFACTS"
status=0
for target in "$@"; do
  name=$(basename "$target")          # fuzz_webhook
  seeds=$ROOT/test/fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [[ -d $seeds ]] && cp -r "$seeds/." "$work/"
  echo "fuzz: $name for ${SECONDS_EACH}s"
  if ! "$target" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$ARTIFACTS/$name-" -print_final_stats=1 "$work" >"$ARTIFACTS/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $ARTIFACTS/$name.log" >&2
    tail -n 40 "$ARTIFACTS/$name.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$ARTIFACTS/$name.log" | tail -n 2
  fi
  rm -rf "$work"
done
exit $status

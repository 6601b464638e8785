#!/usr/bin/env bash
# The units of deploy/systemd pass `systemd-analyze verify` without a single
# line of output, and systemd's own reading of them (`systemd-analyze security
# --offline=true`) has the hardening we rely on. Works without systemd as PID 1
# (containers, CI). ExecStart must name an existing executable, so the units are
# rendered into a temporary directory with the path of the built shim in place
# of /usr/local/bin/jnx-shim; nothing else is changed. The exposure scores are
# printed, not asserted.
#
#   bash test/systemd/run.sh    (needs shim/jnx-shim and the Debian package systemd)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UNITS=$ROOT/deploy/systemd
SHIM=$ROOT/shim/jnx-shim
INSTALLED=/usr/local/bin/jnx-shim
passed=0
failed=0

WORK=$(mktemp -d /tmp/jnx_systemd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

die() {
  echo "FAIL - $*" >&2
  exit 1
}
check() {  # check "description" command...
  if "${@:2}"; then
    echo "PASS - $1"
    passed=$((passed + 1))
  else
    echo "FAIL - $1"
    failed=$((failed + 1))
  fi
}
equals() { [[ "$1" == "$2" ]] || { echo "    got:  $1" >&2; echo "    want: $2" >&2; return 1; }; }
silent() { [[ -z "$1" ]] || { echo "    systemd-analyze said: $1" >&2; return 1; }; }
says_something() { [[ -n "$1" ]] || { echo "    systemd-analyze said nothing" >&2; return 1; }; }

command -v systemd-analyze >/dev/null || die "systemd-analyze is missing (Debian package systemd; make deps)"
[[ -x $SHIM ]] || die "build the shim first (make shim/jnx-shim)"

render() {  # render DIR: the units with the built shim in ExecStart
  mkdir -p "$1"
  local unit
  for unit in "$UNITS"/*.service "$UNITS"/*.timer; do
    sed "s|^ExecStart=$INSTALLED\\b|ExecStart=$SHIM|" "$unit" >"$1/$(basename "$unit")"
  done
}
verify() {  # verify DIR: everything systemd-analyze prints, and its exit code
  systemd-analyze verify "$1"/*.service "$1"/*.timer 2>&1
  echo "exit $?"
}

units=$(cd "$UNITS" && ls *.service *.timer | tr '\n' ' ')
check "the units: two services and a timer" equals "$units" \
  "jnx-refresh-jwks.service jnx-refresh-jwks.timer jnx-shim.service "
check "ExecStart names $INSTALLED, with refresh-jwks in the one-shot unit" equals \
  "$(grep -h '^ExecStart=' "$UNITS/jnx-shim.service" "$UNITS/jnx-refresh-jwks.service")" \
  "ExecStart=$INSTALLED
ExecStart=$INSTALLED refresh-jwks"

render "$WORK/units"
out=$(verify "$WORK/units")
check "systemd-analyze verify: exit 0 and no output" silent "${out%exit 0}"
check "systemd-analyze verify: exit 0" equals "${out##*$'\n'}" "exit 0"

# The check can fail: a unit with an unknown directive, and the units as shipped
# where /usr/local/bin/jnx-shim does not exist.
render "$WORK/broken"
printf 'NoSuchDirective=yes\n' >>"$WORK/broken/jnx-shim.service"
out=$(verify "$WORK/broken")
check "an unknown directive is reported" says_something "$(grep NoSuchDirective <<<"$out")"
if [[ ! -e $INSTALLED ]]; then
  mkdir "$WORK/shipped" && cp "$UNITS"/*.service "$UNITS"/*.timer "$WORK/shipped/"
  out=$(verify "$WORK/shipped")
  check "a missing ExecStart binary is reported" says_something "$(grep 'is not executable' <<<"$out")"
fi

# systemd's reading of the hardening: every one of these must be in force.
required='User=/DynamicUser= ProtectSystem= ProtectHome= PrivateTmp= PrivateDevices= NoNewPrivileges=
AmbientCapabilities= CapabilityBoundingSet=~CAP_SYS_ADMIN CapabilityBoundingSet=~CAP_NET_ADMIN
CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER) CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)
RestrictAddressFamilies=~AF_PACKET RestrictAddressFamilies=~AF_NETLINK SystemCallFilter=~@privileged
SystemCallFilter=~@mount SystemCallFilter=~@module SystemCallFilter=~@raw-io SystemCallArchitectures=
ProtectKernelTunables= ProtectKernelModules= ProtectControlGroups= RestrictNamespaces=~user
RestrictSUIDSGID= MemoryDenyWriteExecute= LockPersonality= UMask='
for unit in jnx-shim.service jnx-refresh-jwks.service; do
  json=$(systemd-analyze --offline=true security --json=short "$WORK/units/$unit" 2>/dev/null)
  missing=$(python3 -c '
import json, sys
found = {s["name"]: s["set"] for s in json.loads(sys.argv[1])}
print(" ".join(n for n in sys.argv[2].split() if found.get(n) is not True))' "$json" "$required")
  check "$unit: the hardening is in force as systemd reads it" equals "$missing" ""
  check "$unit: ProtectSystem=strict" equals "$(grep -c '^ProtectSystem=strict$' "$UNITS/$unit")" 1
  score=$(systemd-analyze --offline=true security "$WORK/units/$unit" 2>/dev/null | grep 'Overall exposure')
  echo "     $unit: ${score#→ }"
done
check "jnx-shim.service: stopped with SIGTERM, 30 s to drain, restarted on failure" equals \
  "$(grep -E '^(KillSignal|TimeoutStopSec|Restart)=' "$UNITS/jnx-shim.service" | tr '\n' ' ')" \
  "Restart=on-failure KillSignal=SIGTERM TimeoutStopSec=30s "
check "jnx-refresh-jwks.timer: every 15 minutes, randomized, persistent" equals \
  "$(grep -E '^(OnCalendar|RandomizedDelaySec|Persistent|Unit)=' "$UNITS/jnx-refresh-jwks.timer" | tr '\n' ' ')" \
  "OnCalendar=*:0/15 RandomizedDelaySec=2min Persistent=true Unit=jnx-refresh-jwks.service "
check "only the one-shot unit reads the owner's environment file" equals \
  "$(grep -l 'refresh-jwks.env' "$UNITS"/*.service | xargs -n1 basename)" "jnx-refresh-jwks.service"

echo "systemd: $passed passed, $failed failed"
((failed == 0))

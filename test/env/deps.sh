#!/usr/bin/env bash
# Installs the Debian packages jnx_auth needs to build, run and test, when any
# is missing. Idempotent and quiet when everything is there.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  postgresql-15-cron
  libpq-dev libssl-dev libjansson-dev libcpp-httplib-dev
  libgtest-dev libbenchmark-dev
  clang-14 libfuzzer-14-dev libclang-rt-14-dev clang-format clang-tidy
  python3 curl openssl wrk
  nginx pgbouncer
  # For promtool (check metrics, check/test rules). The package holds the
  # server too; nothing here starts it (on a host with systemd, the package
  # may: `systemctl disable --now prometheus` if you do not want it).
  prometheus
  systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Renders deploy/nginx/nginx.conf.template into a complete nginx.conf.
#
#   deploy/nginx/render.sh [-o FILE]      (stdout without -o)
#
# Every value comes from the environment; the defaults below are production's
# (deploy/README.md explains each). test/env/cluster.sh renders the same
# template for `make run` / `make test` with instance-local addresses and paths.
# A value that does not look right is refused: nothing half-rendered is written.
# Then: nginx -t -c FILE, and (re)start or reload nginx.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=
case ${1:-} in
  -o) out=${2:?render.sh: -o needs a file}; [[ $# -eq 2 ]] || { echo "usage: render.sh [-o FILE]" >&2; exit 2; } ;;
  "") ;;
  *) echo "usage: render.sh [-o FILE]" >&2; exit 2 ;;
esac

# --- production defaults ----------------------------------------------------
: "${JNX_EDGE_LISTEN:=80}"                      # public address of the edge ([host:]port)
: "${JNX_SHIM_LISTEN:=127.0.0.1:8787}"          # the shim (its JNX_LISTEN): loopback only
: "${JNX_EDGE_USER:=www-data}"                  # nginx worker processes run as this user
: "${JNX_EDGE_WORKERS:=2}"                      # worker_processes
: "${JNX_EDGE_WORKER_CONNECTIONS:=8192}"        # per worker
: "${JNX_EDGE_PID:=/run/nginx.pid}"             # Debian's nginx.service expects this one
: "${JNX_EDGE_ACCESS_LOG:=/var/log/nginx/jnx-access.log}"
: "${JNX_EDGE_ERROR_LOG:=/var/log/nginx/jnx-error.log}"
: "${JNX_EDGE_ERROR_LOG_LEVEL:=crit}"           # below crit the log holds client addresses
: "${JNX_EDGE_TEMP_DIR:=/var/lib/nginx}"
: "${JNX_MAX_BODY_BYTES:=1048576}"              # must equal the shim's JNX_MAX_BODY_BYTES
: "${JNX_WORKERS:=128}"                         # the shim's worker threads (JNX_WORKERS)
: "${JNX_UPSTREAM_KEEPALIVE:=8}"                # idle shim connections per nginx worker
: "${JNX_RATE_AUTH_PER_IP:=100r/s}"
: "${JNX_BURST_AUTH_PER_IP:=200}"
: "${JNX_RATE_AUTH_PER_TOKEN:=10r/s}"
: "${JNX_BURST_AUTH_PER_TOKEN:=20}"
: "${JNX_RATE_WEBHOOK_PER_IP:=200r/s}"
: "${JNX_BURST_WEBHOOK_PER_IP:=1000}"
: "${JNX_RATE_PROBE_PER_IP:=20r/s}"
: "${JNX_BURST_PROBE_PER_IP:=40}"
: "${JNX_CONN_AUTH_PER_IP:=128}"                # requests in progress per client address
: "${JNX_CONN_WEBHOOK_PER_IP:=256}"
: "${JNX_CONN_OTHER_PER_IP:=32}"
: "${JNX_RATE_EXEMPT:=}"                        # CIDRs never rate limited (space separated)
: "${JNX_REAL_IP_FROM:=}"                       # CIDRs of a load balancer in front (space separated)
: "${JNX_REAL_IP_HEADER:=X-Forwarded-For}"

fail() { echo "render.sh: $*" >&2; exit 1; }
want() {  # want NAME REGEX WHAT
  local name=$1 re=$2 what=$3
  [[ ${!name} =~ $re ]] || fail "$name must be $what"
}
INT='^[1-9][0-9]{0,6}$'
RATE='^[1-9][0-9]{0,5}r/[sm]$'
PATH_RE='^/[A-Za-z0-9._/+-]+$'
CIDR='^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$'

want JNX_EDGE_LISTEN '^((([0-9]{1,3}\.){3}[0-9]{1,3}|\[[0-9A-Fa-f:]+\]|localhost):)?[0-9]{1,5}$' "[host:]port"
want JNX_SHIM_LISTEN '^(([0-9]{1,3}\.){3}[0-9]{1,3}|\[[0-9A-Fa-f:]+\]|localhost):[0-9]{1,5}$' "host:port"
want JNX_EDGE_USER '^[a-z_][a-z0-9_-]{0,31}$' "a user name"
for v in JNX_EDGE_WORKERS JNX_EDGE_WORKER_CONNECTIONS JNX_MAX_BODY_BYTES JNX_WORKERS \
         JNX_UPSTREAM_KEEPALIVE JNX_BURST_AUTH_PER_IP JNX_BURST_AUTH_PER_TOKEN \
         JNX_BURST_WEBHOOK_PER_IP JNX_BURST_PROBE_PER_IP JNX_CONN_AUTH_PER_IP \
         JNX_CONN_WEBHOOK_PER_IP JNX_CONN_OTHER_PER_IP; do
  want "$v" "$INT" "a positive integer"
done
for v in JNX_RATE_AUTH_PER_IP JNX_RATE_AUTH_PER_TOKEN JNX_RATE_WEBHOOK_PER_IP JNX_RATE_PROBE_PER_IP; do
  want "$v" "$RATE" "a rate such as 10r/s or 30r/m"
done
for v in JNX_EDGE_PID JNX_EDGE_ACCESS_LOG JNX_EDGE_ERROR_LOG JNX_EDGE_TEMP_DIR; do
  want "$v" "$PATH_RE" "an absolute path without spaces"
done
want JNX_EDGE_ERROR_LOG_LEVEL '^(debug|info|notice|warn|error|crit|alert|emerg)$' "an nginx log level"
want JNX_REAL_IP_HEADER '^[A-Za-z0-9-]+$' "a header name"

# An idle kept-alive connection holds a shim thread: leave at least half of
# the shim's threads for new connections.
if ((JNX_EDGE_WORKERS * JNX_UPSTREAM_KEEPALIVE * 2 > JNX_WORKERS)); then
  fail "JNX_EDGE_WORKERS x JNX_UPSTREAM_KEEPALIVE ($JNX_EDGE_WORKERS x $JNX_UPSTREAM_KEEPALIVE) must be at most half the shim's JNX_WORKERS ($JNX_WORKERS)"
fi
per_second() {  # 10r/s -> 10, 30r/m -> 0.5 (as a fraction a/b: prints "a b")
  local n=${1%r/*} unit=${1#*r/}
  if [[ $unit == s ]]; then echo "$n 1"; else echo "$n 60"; fi
}
# Per-IP must stay above per-token (a server forwards many users' tokens).
read -r ip_n ip_d <<<"$(per_second "$JNX_RATE_AUTH_PER_IP")"
read -r tok_n tok_d <<<"$(per_second "$JNX_RATE_AUTH_PER_TOKEN")"
if ((ip_n * tok_d <= tok_n * ip_d)); then
  fail "JNX_RATE_AUTH_PER_IP ($JNX_RATE_AUTH_PER_IP) must be above JNX_RATE_AUTH_PER_TOKEN ($JNX_RATE_AUTH_PER_TOKEN)"
fi
# Retry-After on a 429: the time for the slowest of the auth zones to free
# one request, rounded up to whole seconds (at least 1).
retry_after=1
for r in "$JNX_RATE_AUTH_PER_IP" "$JNX_RATE_AUTH_PER_TOKEN" "$JNX_RATE_WEBHOOK_PER_IP"; do
  read -r n d <<<"$(per_second "$r")"
  s=$(((d + n - 1) / n))
  ((s > retry_after)) && retry_after=$s
done

exempt=""
for cidr in $JNX_RATE_EXEMPT; do
  [[ $cidr =~ $CIDR ]] || fail "JNX_RATE_EXEMPT: $cidr is not an address or CIDR"
  exempt+="        $cidr 1;"$'\n'
done
exempt=${exempt%$'\n'}
[[ -n $exempt ]] || exempt="        # (none: JNX_RATE_EXEMPT is empty)"
real_ip=""
for cidr in $JNX_REAL_IP_FROM; do
  [[ $cidr =~ $CIDR ]] || fail "JNX_REAL_IP_FROM: $cidr is not an address or CIDR"
  real_ip+="    set_real_ip_from $cidr;"$'\n'
done
if [[ -n $real_ip ]]; then
  real_ip+="    real_ip_header $JNX_REAL_IP_HEADER;"$'\n'"    real_ip_recursive on;"
else
  real_ip="    # (none: JNX_REAL_IP_FROM is empty; clients connect to this nginx directly)"
fi

s=$(<"$HERE/nginx.conf.template")
sub() { s=${s//"@@$1@@"/"$2"}; }
sub LISTEN "$JNX_EDGE_LISTEN"
sub SHIM_LISTEN "$JNX_SHIM_LISTEN"
sub USER "$JNX_EDGE_USER"
sub WORKERS "$JNX_EDGE_WORKERS"
sub WORKER_CONNECTIONS "$JNX_EDGE_WORKER_CONNECTIONS"
sub RLIMIT_NOFILE "$((JNX_EDGE_WORKER_CONNECTIONS * 2 + 64))"
sub PID_FILE "$JNX_EDGE_PID"
sub ACCESS_LOG "$JNX_EDGE_ACCESS_LOG"
sub ERROR_LOG_LEVEL "$JNX_EDGE_ERROR_LOG_LEVEL"
sub ERROR_LOG "$JNX_EDGE_ERROR_LOG"
sub TEMP_DIR "$JNX_EDGE_TEMP_DIR"
sub MAX_BODY_BYTES "$JNX_MAX_BODY_BYTES"
sub UPSTREAM_KEEPALIVE "$JNX_UPSTREAM_KEEPALIVE"
sub RATE_AUTH_PER_IP "$JNX_RATE_AUTH_PER_IP"
sub BURST_AUTH_PER_IP "$JNX_BURST_AUTH_PER_IP"
sub RATE_AUTH_PER_TOKEN "$JNX_RATE_AUTH_PER_TOKEN"
sub BURST_AUTH_PER_TOKEN "$JNX_BURST_AUTH_PER_TOKEN"
sub RATE_WEBHOOK_PER_IP "$JNX_RATE_WEBHOOK_PER_IP"
sub BURST_WEBHOOK_PER_IP "$JNX_BURST_WEBHOOK_PER_IP"
sub RATE_PROBE_PER_IP "$JNX_RATE_PROBE_PER_IP"
sub BURST_PROBE_PER_IP "$JNX_BURST_PROBE_PER_IP"
sub CONN_AUTH_PER_IP "$JNX_CONN_AUTH_PER_IP"
sub CONN_WEBHOOK_PER_IP "$JNX_CONN_WEBHOOK_PER_IP"
sub CONN_OTHER_PER_IP "$JNX_CONN_OTHER_PER_IP"
sub RETRY_AFTER_RATE_LIMITED "$retry_after"
sub RATE_EXEMPT "$exempt"
sub REAL_IP "$real_ip"
left=$(grep -o '@@[A-Z_]*@@' <<<"$s" | grep -vx '@@NAME@@' | sort -u | tr '\n' ' ' || true)
[[ -z $left ]] || fail "template value left unrendered: $left"

header="# Rendered by deploy/nginx/render.sh from nginx.conf.template: do not edit; re-render."
if [[ -n $out ]]; then
  tmp=$(mktemp "$out.XXXXXX")
  printf '%s\n%s\n' "$header" "$s" >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$out"
else
  printf '%s\n%s\n' "$header" "$s"
fi

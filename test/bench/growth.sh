#!/usr/bin/env bash
# make bench, section 7: does a request cost more when the tables are big?
# In a database of its own on the bench cluster (JNX_INSTANCE=bench, started
# by test/bench/run.sh): load 10^4 users, orgs, memberships, ledger rows and
# their audit rows, measure the p50 of ingest (pgbench, new user.created
# deliveries) and of GET /api/me (wrk through a jnx-shim of its own, one
# member's token); grow to 10^6 of each and measure again. Goal: each p50 at
# 10^6 within 20% of its p50 at 10^4.
#   env: GROWTH_SMALL (10000), GROWTH_LARGE (1000000), GROWTH_SECONDS (8)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export JNX_INSTANCE=${JNX_INSTANCE:-bench}
CLUSTER="bash $ROOT/test/env/cluster.sh"
eval "$($CLUSTER env)"
SMALL=${GROWTH_SMALL:-10000}
LARGE=${GROWTH_LARGE:-1000000}
SECS=${GROWTH_SECONDS:-8}
DB=jnx_growth
work=$(mktemp -d)
shim_pid=
cleanup() {
  [[ -n $shim_pid ]] && kill -TERM "$shim_pid" 2>/dev/null && wait "$shim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
q() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -c "CREATE EXTENSION jnx_auth"
# The bench database's secret and token configuration, so that its dev key
# signs tokens this database accepts.
secret=$(psql -X -tA -c "SELECT secret FROM jnx.webhook_secrets ORDER BY position LIMIT 1")
psql -X -tA -c "SELECT jwks::text FROM jnx.token_config" >"$work/jwks"
psql -X -tA -c "SELECT array_to_string(issuers, ' '), array_to_string(authorized_parties, ' ') FROM jnx.token_config" >"$work/policy"
IFS='|' read -r issuers parties <"$work/policy"
q -v secret="$secret" -v jwks="$(cat "$work/jwks")" -v iss="$issuers" -v azp="$parties" <<'SQL' >/dev/null
SELECT jnx.set_webhook_secrets(:'secret');
SELECT jnx.set_jwks(:'jwks'::jsonb);
SELECT jnx.set_token_policy(string_to_array(:'iss', ' '), coalesce(string_to_array(nullif(:'azp', ''), ' '), '{}'));
SQL

# Rows numbered from..to: user i is a member of org i, with one processed
# delivery each; the audit rows that applying them would have written. The
# audit trigger is off for the bulk insert and its rows are written in bulk.
load() {
  q -v from="$1" -v to="$2" <<'SQL'
BEGIN;
ALTER TABLE jnx.users DISABLE TRIGGER audit;
ALTER TABLE jnx.orgs DISABLE TRIGGER audit;
ALTER TABLE jnx.memberships DISABLE TRIGGER audit;
INSERT INTO jnx.orgs (clerk_org_id, name, slug, sync_state, clerk_created_at, clerk_updated_at)
SELECT 'org_g_' || i, 'Org ' || i, 'org-' || i, 'synced', now(), now()
  FROM generate_series(:from, :to) i;
INSERT INTO jnx.users (clerk_user_id, email, first_name, last_name, sync_state, clerk_created_at, clerk_updated_at)
SELECT 'user_g_' || i, 'g' || i || '@example.com', 'G', 'User ' || i, 'synced', now(), now()
  FROM generate_series(:from, :to) i;
INSERT INTO jnx.memberships (clerk_membership_id, user_id, org_id, role, clerk_created_at, clerk_updated_at)
SELECT 'orgmem_g_' || i, u.id, o.id, 'org:member', now(), now()
  FROM generate_series(:from, :to) i
  JOIN jnx.users u ON u.clerk_user_id = 'user_g_' || i
  JOIN jnx.orgs o ON o.clerk_org_id = 'org_g_' || i;
UPDATE jnx.users u SET org_id = o.id FROM jnx.orgs o
 WHERE o.clerk_org_id = 'org_g_' || substr(u.clerk_user_id, 8) AND u.clerk_user_id LIKE 'user_g_%'
   AND u.org_id IS NULL;
INSERT INTO jnx.webhook_events (svix_id, type, status, payload, svix_timestamp, processed_at)
SELECT 'msg_g_' || i, 'user.created', 'processed', convert_to('{"type":"user.created"}', 'UTF8'), now(), now()
  FROM generate_series(:from, :to) i;
INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, org_id, details)
SELECT 'clerk:webhook', t.kind || '.create', t.kind, t.prefix || i, NULL, '{"fields": ["email"]}'
  FROM generate_series(:from, :to) i,
       (VALUES ('user', 'user_g_'), ('org', 'org_g_'), ('membership', 'orgmem_g_')) AS t(kind, prefix);
ALTER TABLE jnx.users ENABLE TRIGGER audit;
ALTER TABLE jnx.orgs ENABLE TRIGGER audit;
ALTER TABLE jnx.memberships ENABLE TRIGGER audit;
COMMIT;
VACUUM ANALYZE jnx.users, jnx.orgs, jnx.memberships, jnx.webhook_events, jnx.audit_logs;
-- The load's WAL (gigabytes at 10^6) is flushed now, not during the
-- measurement that follows: both sizes start right after a checkpoint.
CHECKPOINT;
SQL
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
JNX_DATABASE_URL="host=$PGHOST port=$PGPORT dbname=$DB user=jnx_authenticator" JNX_LISTEN=127.0.0.1:$port \
  "$ROOT/shim/jnx-shim" >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$($CLUSTER dev-token user_g_1)

cat >"$work/ingest.sql" <<'SQL'
\set n random(1, 2000000000)
SELECT jnx.ingest_clerk_webhook(id, ts::text, jnx.webhook_sign(:secret, id, ts, b), b) FROM (SELECT 'msg_gr_' || :client_id || '_' || :n AS id, extract(epoch FROM now())::bigint AS ts, convert_to('{"type":"user.created","object":"event","timestamp":1764150000000,"data":{"id":"user_gr_' || :client_id || '_' || :n || '","object":"user","first_name":"Grow","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"gr' || :n || '@example.com"}],"public_metadata":{},"created_at":1764150000000,"updated_at":1764150000000}}', 'UTF8') AS b) k;
SQL

# p50 in ms of ingest (pgbench's per-transaction log) and of /api/me (wrk).
measure() {
  rm -f "$work"/pgb.*
  (cd "$work" && pgbench -n -M prepared -c 8 -j 2 -T "$SECS" -D secret="$secret" -d "$DB" \
    --log --log-prefix=pgb -f "$work/ingest.sql" >"$work/pgbench.out" 2>&1)
  grep -q 'number of failed transactions: 0 ' "$work/pgbench.out" || { tail -3 "$work/pgbench.out" >&2; return 1; }
  ingest_p50=$(cat "$work"/pgb.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] / 1000}')
  wrk -t 2 -c 16 -d "${SECS}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/me" >"$work/wrk.out"
  if grep -q 'Non-2xx' "$work/wrk.out"; then cat "$work/wrk.out" >&2; return 1; fi
  me_p50=$(awk '$1 == "50%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else {sub(/s$/, "", v); v *= 1000}; printf "%.2f", v}' "$work/wrk.out")
  curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/me" | grep -q '"clerk_org_id": *"org_g_1"'
}

load 1 "$SMALL"
measure
small_ingest=$ingest_p50 small_me=$me_p50
echo "  $(q -c "SELECT count(*) FROM jnx.users") users: ingest p50 ${small_ingest} ms, /api/me p50 ${small_me} ms"
load $((SMALL + 1)) "$LARGE"
measure
echo "  $(q -c "SELECT count(*) FROM jnx.users") users: ingest p50 ${ingest_p50} ms, /api/me p50 ${me_p50} ms"
status=0
for pair in "ingest $small_ingest $ingest_p50" "/api/me $small_me $me_p50"; do
  read -r name a b <<<"$pair"
  verdict=$(awk -v a="$a" -v b="$b" 'BEGIN { r = b / a; printf "%.3f %s", r, (r <= 1.2 ? "ok" : "OVER") }')
  echo "  $name p50 large/small: $verdict (goal <= 1.20)"
  [[ $verdict == *ok ]] || status=1
done
psql -X -q -d postgres -c "DROP DATABASE $DB (FORCE)" || true
exit $status

#!/usr/bin/env bash
# make bench, section 8: WAL written per new user, with time-ordered keys
# (jnx._uuid_v7(), the default since 0.4.2) against random ones
# (gen_random_uuid(), the default before), in a database of its own on the
# bench cluster (JNX_INSTANCE=bench, started by test/bench/run.sh).
# 200,000 users are loaded first, so that the primary key index is larger
# than what one round touches. Each round: CHECKPOINT, then new user.created
# deliveries through jnx.ingest_clerk_webhook (pgbench, 4 clients, a fixed
# count); the WAL between the LSNs before and after, per delivery. The two
# defaults alternate; the first page written after a checkpoint is logged
# whole, so a key on a random page costs a page image more often.
#   env: WAL_USERS (200000), WAL_DELIVERIES (4000), WAL_ROUNDS (3)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export JNX_INSTANCE=${JNX_INSTANCE:-bench}
CLUSTER="bash $ROOT/test/env/cluster.sh"
eval "$($CLUSTER env)"
USERS=${WAL_USERS:-200000}
DELIVERIES=${WAL_DELIVERIES:-4000}
ROUNDS=${WAL_ROUNDS:-3}
DB=jnx_walkeys
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -c "CREATE EXTENSION jnx_auth"
secret=$(psql -X -tA -c "SELECT secret FROM jnx.webhook_secrets ORDER BY position LIMIT 1")
q -v secret="$secret" <<<"SELECT jnx.set_webhook_secrets(:'secret');" >/dev/null
# Existing rows have random keys, as a database that began before 0.4.2 does.
q -v n="$USERS" <<'SQL'
INSERT INTO jnx.users (id, clerk_user_id, sync_state)
SELECT gen_random_uuid(), 'user_pre_' || g, 'synced' FROM generate_series(1, :n) AS g;
VACUUM ANALYZE jnx.users;
SQL
cat >"$work/ingest.sql" <<'SQL'
\set n random(1, 2000000000)
SELECT jnx.ingest_clerk_webhook(id, ts::text, jnx.webhook_sign(:secret, id, ts, b), b) FROM (SELECT 'msg_wal_' || :client_id || '_' || :n AS id, extract(epoch FROM now())::bigint AS ts, convert_to('{"type":"user.created","object":"event","timestamp":1764150000000,"data":{"id":"user_wal_' || :client_id || '_' || :n || '","object":"user","first_name":"Bench","last_name":"Mark","image_url":"https://img.example.com/b.png","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"b' || :n || '@example.com"}],"public_metadata":{},"created_at":1764150000000,"updated_at":1764150000000}}', 'UTF8') AS b) k;
SQL

round() {  # default expression -> WAL bytes per delivery
  q -c "ALTER TABLE jnx.users ALTER COLUMN id SET DEFAULT $1" -c "CHECKPOINT"
  local before after out
  before=$(q -c "SELECT pg_current_wal_lsn()")
  out=$(pgbench -n -M prepared -c 4 -j 2 -t $((DELIVERIES / 4)) -D secret="$secret" -d "$DB" -f "$work/ingest.sql" 2>&1)
  grep -q 'number of failed transactions: 0 ' <<<"$out" || { echo "$out" | tail -3 >&2; return 1; }
  after=$(q -c "SELECT pg_current_wal_lsn()")
  q -c "SELECT round(pg_wal_lsn_diff('$after', '$before') / $DELIVERIES)"
}
v7=() v4=()
for r in $(seq 1 "$ROUNDS"); do
  a=$(round "jnx._uuid_v7()")
  b=$(round "gen_random_uuid()")
  v7+=("$a") v4+=("$b")
  printf "  round %d: WAL per new user, version 7 keys %6d bytes   version 4 keys %6d bytes\n" "$r" "$a" "$b"
done
q -c "ALTER TABLE jnx.users ALTER COLUMN id SET DEFAULT jnx._uuid_v7()"
# Rows checked: every delivery made one user.
made=$(q -c "SELECT count(*) FROM jnx.users WHERE clerk_user_id LIKE 'user_wal_%'")
[[ $made == $((ROUNDS * 2 * DELIVERIES)) ]] || { echo "  $made users, expected $((ROUNDS * 2 * DELIVERIES))" >&2; exit 1; }
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
awk -v a="$(med "${v7[@]}")" -v b="$(med "${v4[@]}")" \
  'BEGIN { printf "  WAL per new user after a checkpoint: %d bytes with version 7 keys, %d with version 4; ratio %.3f\n", a, b, a / b }'
psql -X -q -d postgres -c "DROP DATABASE $DB"

#!/usr/bin/env bash
# A pg_cron scheduled run of jnx.apply_retention() erases a user whose deletion
# is past the grace period (default 30 days), and only that user; then
# jnx.erase_user leaves none of a person's values in a pg_dump of schema jnx.
#
# Runs on a throwaway PostgreSQL 15 cluster of its own (shared_preload_libraries
# = pg_cron, which the cluster of run-all.sh does not load): a private
# directory under /tmp, Unix socket only, stopped and removed on exit. Needs
# the installed jnx_auth (make install) and postgresql-15-cron; run as root or
# as postgres. Prints PASS/FAIL per check; exits non-zero on any failure.
set -euo pipefail

PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
if [[ ! -x $PGBIN/pg_ctl ]]; then PGBIN=/usr/lib/postgresql/15/bin; fi
DB=jnx_cron
# The socket lives in a private directory, so this port clashes with nothing.
PORT=${JNX_CRON_PORT:-5432}
started=$SECONDS
passed=0
failed=0

BASE=$(mktemp -d /tmp/jnx_cron.XXXXXX)
PGDATA_DIR=$BASE/data
SOCKET_DIR=$BASE/run
PGLOG=$BASE/postgresql.log

# From / : the caller's directory may be one that postgres cannot enter.
as_postgres() {
  if [[ $(id -un) == postgres ]]; then (cd / && "$@"); else (cd / && runuser -u postgres -- "$@"); fi
}

cleanup() {
  local rc=$?
  if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
    as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if ((rc != 0)) && [[ -s $PGLOG ]]; then
    echo "--- last lines of the server log" >&2
    tail -n 30 "$PGLOG" >&2
  fi
  rm -rf "$BASE"
  exit "$rc"
}
trap cleanup EXIT

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

q() {  # q [psql args]: tuples only, on the test database (:'var' is expanded on stdin, not in -c)
  PGHOST=$SOCKET_DIR PGPORT=$PORT PGUSER=postgres \
    psql -X -q -tA -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

# --- the cluster -----------------------------------------------------------------
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL 15 server in $PGBIN"
[[ -f $("$PGBIN/pg_config" --sharedir)/extension/pg_cron.control ]] ||
  die "pg_cron is not installed (Debian package postgresql-15-cron; make deps)"
chmod 755 "$BASE"
chown postgres:postgres "$BASE" 2>/dev/null || [[ $(id -un) == postgres ]] ||
  die "run as root or as postgres (PostgreSQL refuses to run as root)"
as_postgres mkdir -m 700 "$PGDATA_DIR" "$SOCKET_DIR"
as_postgres "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
# pg_cron runs each job over a libpq connection to cron.host: the socket
# directory here, since there is no TCP listener.
cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$SOCKET_DIR'
port = $PORT
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
cron.host = '$SOCKET_DIR'
CONF
as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start >/dev/null
q -d postgres -c "CREATE DATABASE $DB"
# The pg_cron launcher connects to cron.database_name when the server starts; a
# restart after the database exists spares it failing until it does.
as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 restart >/dev/null
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION jnx_auth CASCADE"
[[ $(q -c "SELECT to_regprocedure('jnx.apply_retention(timestamptz)') IS NOT NULL") == t ]] ||
  die "the installed jnx_auth ($(q -c "SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")) has no jnx.apply_retention(timestamptz): make install"
CRON_VERSION=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
JNX_VERSION=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")
# Intervals in seconds came with pg_cron 1.5; before, the finest is a minute,
# and a job scheduled now runs at the next minute boundary.
IFS=.- read -r cron_major cron_minor _ <<<"$CRON_VERSION"
if ((cron_major > 1 || (cron_major == 1 && cron_minor >= 5))); then
  SCHEDULE='2 seconds'
  WAIT=30
else
  SCHEDULE='* * * * *'
  WAIT=80
fi
echo "cron: PostgreSQL $(q -c 'SHOW server_version'), pg_cron $CRON_VERSION, jnx_auth $JNX_VERSION, schedule '$SCHEDULE'"

# --- data: signed deliveries through jnx.ingest_clerk_webhook ----------------------
RUN=$(openssl rand -hex 6)
SECRET="whsec_$(openssl rand -base64 32)"
GONE_ID=user_cron_gone_$RUN
GONE_EMAIL=gone-$RUN@example.com
GONE_NAME=Gonecron$RUN
KEEP_ID=user_cron_keep_$RUN
KEEP_EMAIL=keep-$RUN@example.com
RECENT_ID=user_cron_recent_$RUN
RECENT_EMAIL=recent-$RUN@example.com
now_ms=$(($(date +%s) * 1000))
day_ms=86400000

q -v secret="$SECRET" >/dev/null <<'SQL'
SELECT jnx.set_webhook_secrets(:'secret');
CREATE SCHEMA crontest;
-- A delivery as Svix sends it: signed with the secret at the current time.
CREATE FUNCTION crontest.deliver(p_secret text, p_msg_id text, p_event jsonb) RETURNS text
LANGUAGE sql AS $$
    SELECT jnx.ingest_clerk_webhook(p_msg_id, x.t::text, jnx.webhook_sign(p_secret, p_msg_id, x.t, x.b), x.b)->>'status'
      FROM (SELECT extract(epoch FROM now())::bigint AS t, convert_to(p_event::text, 'UTF8') AS b) x
$$;
CREATE FUNCTION crontest.user_created(p_id text, p_first_name text, p_email text, p_at_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', 'user.created', 'object', 'event', 'timestamp', p_at_ms,
        'data', jsonb_build_object(
            'id', p_id, 'object', 'user', 'first_name', p_first_name, 'last_name', 'Cronfield',
            'primary_email_address_id', 'idn_cron',
            'email_addresses', jsonb_build_array(
                jsonb_build_object('id', 'idn_cron', 'object', 'email_address', 'email_address', p_email)),
            'public_metadata', '{}'::jsonb, 'created_at', p_at_ms, 'updated_at', p_at_ms))
$$;
CREATE FUNCTION crontest.user_deleted(p_id text, p_at_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', 'user.deleted', 'object', 'event', 'timestamp', p_at_ms,
                              'data', jsonb_build_object('id', p_id, 'object', 'user', 'deleted', true))
$$;
SQL

deliver() {  # deliver MSG_ID EVENT_SQL -> status
  q -v secret="$SECRET" -v msg="$1" <<<"SELECT crontest.deliver(:'secret', :'msg', $2)"
}
# The user to erase: created 41 days ago, deleted 40 days ago (grace: 30 days).
check "user.created of the user to erase is processed" equals \
  "$(deliver "msg_gone_created_$RUN" "crontest.user_created('$GONE_ID', '$GONE_NAME', '$GONE_EMAIL', $((now_ms - 41 * day_ms)))")" processed
check "user.deleted of the user to erase (40 days ago) is processed" equals \
  "$(deliver "msg_gone_deleted_$RUN" "crontest.user_deleted('$GONE_ID', $((now_ms - 40 * day_ms)))")" processed
# Controls: an active user, and one deleted 5 days ago (within the grace period).
check "user.created of an active user is processed" equals \
  "$(deliver "msg_keep_created_$RUN" "crontest.user_created('$KEEP_ID', 'Keeper', '$KEEP_EMAIL', $((now_ms - 41 * day_ms)))")" processed
check "user.created of a recently deleted user is processed" equals \
  "$(deliver "msg_recent_created_$RUN" "crontest.user_created('$RECENT_ID', 'Recent', '$RECENT_EMAIL', $((now_ms - 41 * day_ms)))")" processed
check "user.deleted of the recently deleted user (5 days ago) is processed" equals \
  "$(deliver "msg_recent_deleted_$RUN" "crontest.user_deleted('$RECENT_ID', $((now_ms - 5 * day_ms)))")" processed

# The grace period counts from when a deletion arrived (jnx.erasure_queue.since):
# these two arrived 40 and 5 days ago, as Clerk stamped them.
q -v gone="$GONE_ID" -v recent="$RECENT_ID" >/dev/null <<'SQL'
UPDATE jnx.erasure_queue SET since = now() - interval '40 days' WHERE clerk_user_id = :'gone';
UPDATE jnx.erasure_queue SET since = now() - interval '5 days' WHERE clerk_user_id = :'recent';
SQL
check "the two deletions wait in the erasure queue" equals \
  "$(q -v gone="$GONE_ID" -v recent="$RECENT_ID" <<<"SELECT count(*) FROM jnx.erasure_queue WHERE clerk_user_id IN (:'gone', :'recent')")" 2

user_state() {  # user_state ID -> "deleted_days_ago|erased"
  q -v id="$1" <<<"SELECT coalesce(extract(day FROM now() - deleted_at)::int::text, 'active') || '|' ||
                          CASE WHEN erased_at IS NULL THEN 'not erased' ELSE 'erased' END
                     FROM jnx.users WHERE clerk_user_id = :'id'"
}
payloads_with() {  # payloads_with TEXT -> how many stored payloads contain TEXT
  q -v s="$1" <<<"SELECT count(*) FROM jnx.webhook_events
                   WHERE payload IS NOT NULL AND strpos(convert_from(payload, 'UTF8'), :'s') > 0"
}
ledger() {
  q -c "SELECT string_agg(svix_id || ' ' || type || ' ' || status, ', ' ORDER BY svix_id) FROM jnx.webhook_events"
}

check "before: the user to erase was deleted 40 days ago and is not erased" equals "$(user_state "$GONE_ID")" "40|not erased"
check "before: the stored user.created payload holds the email" equals \
  "$(q -v s="$GONE_EMAIL" -v msg="msg_gone_created_$RUN" <<<"SELECT count(*) FROM jnx.webhook_events
     WHERE svix_id = :'msg' AND strpos(convert_from(payload, 'UTF8'), :'s') > 0")" 1
check "before: the stored payloads hold the name" equals "$(payloads_with "$GONE_NAME")" 1
check "before: the recently deleted user is not erased" equals "$(user_state "$RECENT_ID")" "5|not erased"
ledger_before=$(ledger)
check "before: the ledger has the five deliveries" equals \
  "$(q -c "SELECT count(*) FROM jnx.webhook_events WHERE svix_id LIKE '%\_$RUN'")" 5

# --- the scheduled run ---------------------------------------------------------------
jobid=$(q -v schedule="$SCHEDULE" <<<"SELECT cron.schedule('jnx-retention', :'schedule', 'SELECT jnx.apply_retention()')")
[[ $jobid =~ ^[0-9]+$ ]] || die "cron.schedule returned '$jobid'"
echo "cron: job $jobid scheduled at $(date -u +%H:%M:%S) UTC; waiting up to ${WAIT}s for its first run"
deadline=$((SECONDS + WAIT))
run=
while ((SECONDS < deadline)); do
  run=$(q -c "SELECT status || '|' || coalesce(return_message, '') FROM cron.job_run_details
               WHERE jobid = $jobid AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")
  [[ -n $run ]] && break
  sleep 1
done
run=${run//$'\n'/ }
latest=$(q -c "SELECT coalesce((SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details
                                 WHERE jobid = $jobid ORDER BY runid DESC LIMIT 1), 'no run at all')")
latest=${latest//$'\n'/ }
check "pg_cron ran the job within ${WAIT}s (last seen: $latest)" test -n "$run"
check "the scheduled SELECT jnx.apply_retention() succeeded (${run#*|})" equals "${run%%|*}" succeeded
q -c "SELECT cron.unschedule($jobid)" >/dev/null

# --- after ------------------------------------------------------------------------
check "after: the user deleted 40 days ago is erased" equals "$(user_state "$GONE_ID")" "40|erased"
check "after: no stored payload holds the email" equals "$(payloads_with "$GONE_EMAIL")" 0
check "after: no stored payload holds the name" equals "$(payloads_with "$GONE_NAME")" 0
check "after: the ledger rows (svix_id, type, status) are all still there" equals "$(ledger)" "$ledger_before"
check "after: the active user is not erased" equals "$(user_state "$KEEP_ID")" "active|not erased"
check "after: the active user's payload still holds their email" equals "$(payloads_with "$KEEP_EMAIL")" 1
check "after: the user deleted 5 days ago (within the grace period) is not erased" equals \
  "$(user_state "$RECENT_ID")" "5|not erased"
check "after: the recently deleted user's payload is kept" equals "$(payloads_with "$RECENT_EMAIL")" 1

# --- erase_user, seen through pg_dump ------------------------------------------------
# A person with values found nowhere else, in every place Clerk puts them: their
# user events (with the client's IP and user agent), a membership, a session.
P_ID=user_dump_$RUN
P_EMAIL=dump-$RUN@example.org
P_FIRST=Dumpfirst$RUN
P_LAST=Dumplast$RUN
P_USERNAME=dumpuser_$RUN
P_IMAGE=https://img.example.com/dump-$RUN.png
P_META=dumpmeta-$RUN
P_IP=198.51.100.$((RANDOM % 200 + 20))
P_AGENT="DumpAgent/$RUN"
P_CITY=Dumpville$RUN
person_event() {  # person_event TYPE -> SQL of the event
  echo "jsonb_build_object('type', '$1', 'object', 'event', 'timestamp', $now_ms,
    'event_attributes', jsonb_build_object('http_request', jsonb_build_object('client_ip', '$P_IP', 'user_agent', '$P_AGENT')),
    'data', jsonb_build_object('id', '$P_ID', 'object', 'user', 'first_name', '$P_FIRST', 'last_name', '$P_LAST',
      'username', '$P_USERNAME', 'image_url', '$P_IMAGE', 'primary_email_address_id', 'idn_dump',
      'email_addresses', jsonb_build_array(jsonb_build_object('id', 'idn_dump', 'email_address', '$P_EMAIL')),
      'public_metadata', jsonb_build_object('tag', '$P_META'), 'created_at', $now_ms, 'updated_at', $now_ms))"
}
check "dump: the person's user.created is processed" equals "$(deliver "msg_dump_1_$RUN" "$(person_event user.created)")" processed
check "dump: their membership is processed" equals "$(deliver "msg_dump_2_$RUN" "jsonb_build_object('type',
  'organizationMembership.created', 'object', 'event', 'timestamp', $now_ms, 'data', jsonb_build_object(
  'id', 'orgmem_dump_$RUN', 'role', 'org:member', 'created_at', $now_ms, 'updated_at', $now_ms,
  'organization', jsonb_build_object('id', 'org_dump_$RUN', 'name', 'Dump Org'),
  'public_user_data', jsonb_build_object('user_id', '$P_ID', 'first_name', '$P_FIRST', 'last_name', '$P_LAST',
                                         'identifier', '$P_EMAIL', 'image_url', '$P_IMAGE')))")" processed
check "dump: their session.created is stored (ignored)" equals "$(deliver "msg_dump_3_$RUN" "jsonb_build_object('type',
  'session.created', 'object', 'event', 'timestamp', $now_ms, 'data', jsonb_build_object('id', 'sess_dump_$RUN',
  'user_id', '$P_ID', 'latest_activity', jsonb_build_object('ip_address', '$P_IP', 'city', '$P_CITY')))")" ignored
dump() {
  PGHOST=$SOCKET_DIR PGPORT=$PORT PGUSER=postgres "$PGBIN/pg_dump" --data-only --schema=jnx "$DB"
}
# bytea columns are dumped in hex: look for each value as text and as hex.
found_in() {  # found_in FILE VALUE -> prints yes/no
  local hex
  hex=$(printf '%s' "$2" | od -An -tx1 | tr -d ' \n')
  if grep -qF -- "$2" "$1" || grep -qiF -- "$hex" "$1"; then echo yes; else echo no; fi
}
dump >"$BASE/before.sql"
for v in "$P_EMAIL" "$P_FIRST" "$P_LAST" "$P_USERNAME" "$P_IMAGE" "$P_META" "$P_IP" "$P_CITY"; do
  check "dump before erasure: '$v' is there" equals "$(found_in "$BASE/before.sql" "$v")" yes
done
check "dump before erasure: the user agent was never stored" equals "$(found_in "$BASE/before.sql" "$P_AGENT")" no
check "erase_user answers what it erased" equals \
  "$(q -v id="$P_ID" <<<"SELECT r->>'users' || ' ' || (r->>'memberships') || ' ' || (r->>'webhook_events') FROM jnx.erase_user(:'id', 'pg_dump test') r")" "1 1 3"
dump >"$BASE/after.sql"
for v in "$P_EMAIL" "$P_FIRST" "$P_LAST" "$P_USERNAME" "$P_IMAGE" "$P_META" "$P_IP" "$P_AGENT" "$P_CITY"; do
  check "dump after erasure: '$v' is gone" equals "$(found_in "$BASE/after.sql" "$v")" no
done
check "after erasure: the three ledger rows remain, without payload" equals \
  "$(q -c "SELECT count(*) FILTER (WHERE payload IS NULL) || '/' || count(*) FROM jnx.webhook_events WHERE svix_id LIKE 'msg\_dump\_%\_$RUN'")" "3/3"
check "dump after erasure: the tombstone is there" equals \
  "$(q -v id="$P_ID" <<<"SELECT (deleted_at IS NOT NULL AND erased_at IS NOT NULL)::text FROM jnx.users WHERE clerk_user_id = :'id'")" true

echo "cron: $passed passed, $failed failed in $((SECONDS - started))s"
((failed == 0))

#!/usr/bin/env bash
# For every released version kept in extension/released: install it, load data
# through its own API, ALTER EXTENSION UPDATE, then check that the schema is
# exactly a fresh install's (test/upgrade/fingerprint.sql) and that the old
# data is intact and usable by the new functions. Needs PGHOST/PGPORT/PGUSER.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/extension/jnx_auth.control")
passed=0
failed=0
n=0

check() {  # check "description" command...
  n=$((n + 1))
  if "${@:2}"; then echo "ok $n - $1"; passed=$((passed + 1)); else echo "not ok $n - $1"; failed=$((failed + 1)); fi
}
q() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$@"; }
equals() { [[ "$1" == "$2" ]] || { echo "#   got:  $1" >&2; echo "#   want: $2" >&2; return 1; }; }

# Keys and tokens minted at test time (test/env/tokens.sh).
make -s -C "$ROOT" regress-tokens >/dev/null
TOKENS_DIR=$(dirname "${JNX_TOKENS_FILE:-$ROOT/build/regress-tokens/tokens.psql}")
[[ -s $TOKENS_DIR/jwks.json ]] || { echo "upgrade: no minted keys in $TOKENS_DIR (make regress-tokens)" >&2; exit 1; }
jq_jwks() { cat "$TOKENS_DIR/jwks.json"; }
ISSUER=$(sed -n "s/^\\\\set issuer '\\(.*\\)'$/\\1/p" "$TOKENS_DIR/tokens.psql")
PARTY=$(sed -n "s/^\\\\set party '\\(.*\\)'$/\\1/p" "$TOKENS_DIR/tokens.psql")
TOKEN=$(sed -n "s/^\\\\set tok_alice '\\(.*\\)'$/\\1/p" "$TOKENS_DIR/tokens.psql")
[[ -n $ISSUER && -n $PARTY && -n $TOKEN ]] || { echo "upgrade: cannot read $TOKENS_DIR/tokens.psql" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q postgres -c "DROP DATABASE IF EXISTS jnx_upgrade_fresh" -c "CREATE DATABASE jnx_upgrade_fresh"
q jnx_upgrade_fresh -c "CREATE EXTENSION jnx_auth"
# The fingerprint query itself must run and describe a real schema: an error
# (say, an operator that does not resolve) would leave two empty files, and
# comparing them would prove nothing.
fingerprint() {  # fingerprint DB FILE
  q "$1" -f "$ROOT/test/upgrade/fingerprint.sql" >"$2" || return 1
  local lines
  lines=$(wc -l <"$2")
  ((lines >= 100)) || { echo "#   fingerprint of $1 has only $lines lines" >&2; return 1; }
}
check "fresh install: the fingerprint query describes the schema" fingerprint jnx_upgrade_fresh "$work/fresh"

for released in "$ROOT"/extension/released/jnx_auth--*.sql; do
  version=$(basename "$released" .sql)
  version=${version#jnx_auth--}
  [[ $version == *--* ]] && continue  # a frozen upgrade script, not an install script
  db=jnx_upgrade_${version//./_}
  q postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  q "$db" -c "CREATE EXTENSION jnx_auth VERSION '$version'"
  # Data through the old version's own API: a signed user.created.
  q "$db" >/dev/null <<'SQL'
SELECT jnx.set_webhook_secrets('whsec_' || encode('upgrade test key, 32 bytes long!', 'base64'));
WITH d AS (SELECT convert_to('{"type":"user.created","object":"event","timestamp":1700000000000,"event_attributes":{"http_request":{"client_ip":"198.51.100.23","user_agent":"OldAgent/1.0"}},"data":{"id":"user_old","first_name":"Olde","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"olde@example.com"}],"updated_at":1700000000000}}', 'UTF8') AS body,
              extract(epoch FROM now())::bigint AS ts,
              (SELECT secret FROM jnx.webhook_secrets LIMIT 1) AS s)
SELECT jnx.ingest_clerk_webhook('msg_old_1', ts::text, jnx.webhook_sign(s, 'msg_old_1', ts, body), body) FROM d;
-- An event_attributes that is not an object: the 0.5.0 update must pass it by.
WITH d AS (SELECT convert_to('{"type":"session.created","object":"event","event_attributes":["http_request"],"data":{"id":"sess_old","user_id":"user_old"}}', 'UTF8') AS body,
              extract(epoch FROM now())::bigint AS ts,
              (SELECT secret FROM jnx.webhook_secrets LIMIT 1) AS s)
SELECT jnx.ingest_clerk_webhook('msg_old_2', ts::text, jnx.webhook_sign(s, 'msg_old_2', ts, body), body) FROM d;
SQL
  # Versions with session tokens: a key set and policy, which the new code must read.
  has_sessions=$(q "$db" -c "SELECT count(*) FROM pg_proc WHERE proname = 'set_jwks' AND pronamespace = 'jnx'::regnamespace")
  if [[ $has_sessions == 1 ]]; then
    q "$db" -v jwks="$(jq_jwks)" -v issuer="$ISSUER" -v party="$PARTY" >/dev/null <<'SQL'
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
SQL
  fi
  audit_before=$(q "$db" -c "SELECT count(*) FROM jnx.audit_logs")
  q "$db" -c "SET client_min_messages = warning" -c "ALTER EXTENSION jnx_auth UPDATE"
  check "$version -> $CURRENT: the fingerprint query describes the schema" \
    fingerprint "$db" "$work/upgraded"

  check "$version -> $CURRENT: extension version" \
    equals "$(q "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth'")" "$CURRENT"
  check "$version -> $CURRENT: schema equals a fresh install" diff -u "$work/fresh" "$work/upgraded"
  check "$version -> $CURRENT: user kept" \
    equals "$(q "$db" -c "SELECT email || ' ' || sync_state FROM jnx.users WHERE clerk_user_id = 'user_old'")" "olde@example.com synced"
  check "$version -> $CURRENT: audit trail kept" \
    equals "$(q "$db" -c "SELECT count(*) FROM jnx.audit_logs")" "$audit_before"
  check "$version -> $CURRENT: secrets kept" \
    equals "$(q "$db" -c "SELECT count(*) FROM jnx.webhook_secrets")" "1"
  check "$version -> $CURRENT: a duplicate of an old delivery is still a duplicate" \
    equals "$(q "$db" -c "SELECT status FROM jnx.webhook_events WHERE svix_id = 'msg_old_1'")" "processed"
  # The new version's events apply to the old rows.
  out=$(q "$db" <<'SQL'
WITH d AS (SELECT convert_to('{"type":"organizationMembership.created","object":"event","data":{"id":"orgmem_1","object":"organization_membership","role":"org:admin","created_at":1700000001000,"updated_at":1700000001000,"organization":{"id":"org_new","name":"New Org","slug":"new-org"},"public_user_data":{"user_id":"user_old","first_name":"Olde"}}}', 'UTF8') AS body,
              extract(epoch FROM now())::bigint AS ts,
              (SELECT secret FROM jnx.webhook_secrets LIMIT 1) AS s)
SELECT jnx.ingest_clerk_webhook('msg_new_1', ts::text, jnx.webhook_sign(s, 'msg_new_1', ts, body), body)->>'status' FROM d;
SELECT o.clerk_org_id FROM jnx.users u JOIN jnx.orgs o ON o.id = u.org_id WHERE u.clerk_user_id = 'user_old';
SQL
)
  check "$version -> $CURRENT: new events apply to migrated rows" equals "$(echo $out)" "processed org_new"
  # 0.5.0: payloads stored before lose the client's IP and user agent, learn
  # whom they are about, and can be erased.
  check "$version -> $CURRENT: an old payload is minimized and knows its user" \
    equals "$(q "$db" -c "SELECT clerk_user_id || ' ' || (position('198.51.100.23' IN convert_from(payload, 'UTF8')) > 0) || ' ' || (position('OldAgent' IN convert_from(payload, 'UTF8')) > 0) || ' ' || (convert_from(payload, 'UTF8')::jsonb->'data'->>'first_name') FROM jnx.webhook_events WHERE svix_id = 'msg_old_1'")" "user_old false false Olde"
  check "$version -> $CURRENT: migrated data can be erased" \
    equals "$(q "$db" -c "SELECT r->>'users' || ' ' || (r->>'memberships') || ' ' || (r->>'webhook_events') FROM jnx.erase_user('user_old', 'upgrade test') r")" "1 1 3"
  if [[ $has_sessions == 1 ]]; then
    check "$version -> $CURRENT: the stored key set and policy still verify a session token" \
      equals "$(echo "SELECT jnx.verify_session_token(:'tok')->>'sub'" | q "$db" -v tok="$TOKEN")" "user_alice"
  fi
  q postgres -c "DROP DATABASE $db"
done
q postgres -c "DROP DATABASE jnx_upgrade_fresh"
echo "upgrade: $passed passed, $failed failed"
((failed == 0))

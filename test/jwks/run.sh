#!/usr/bin/env bash
# `jnx-shim refresh-jwks` against real components: local HTTPS servers
# (test/jwks/https_server.py) with a throwaway CA and certificates made here by
# the openssl CLI, RSA keys made by build/jnx-mint, and a database of its own
# (jnx_jwks) in the running test cluster of test/env/cluster.sh. Checks:
# rotation, no write when the set is unchanged, refused certificates and host
# names, refused answers, servers too slow (the 30 s and 60 s bounds),
# configuration and database errors, that no failing run prints a password, a
# served body, a modulus or a query string, and that the serving shim can never
# set keys.
#
#   JNX_INSTANCE=test bash test/env/cluster.sh run && bash test/jwks/run.sh
#
# Needs shim/jnx-shim and build/jnx-mint (make all tools). Prints PASS/FAIL per
# check; exits non-zero on any failure; removes everything it made, also on
# failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export JNX_INSTANCE=${JNX_INSTANCE:-test}
eval "$(bash "$ROOT/test/env/cluster.sh" env)"
SHIM=$ROOT/shim/jnx-shim
MINT=$ROOT/build/jnx-mint
DB=jnx_jwks
started=$SECONDS
passed=0
failed=0
pids=()

WORK=$(mktemp -d /tmp/jnx_jwks.XXXXXX)
chmod 700 "$WORK"
SERVE=$WORK/serve  # what the HTTPS servers answer
mkdir "$SERVE" "$WORK/keys"

q() {  # q [psql args]: tuples only, on the suite's database, as the owner
  psql -X -q -tA -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

cleanup() {
  local rc=$?
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
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
contains() { [[ "$1" == *"$2"* ]] || { echo "    output: $1" >&2; echo "    lacks:  $2" >&2; return 1; }; }
lacks() { [[ "$1" != *"$2"* ]] || { echo "    output: $1" >&2; echo "    holds:  $2" >&2; return 1; }; }

[[ -x $SHIM && -x $MINT ]] || die "build shim/jnx-shim and build/jnx-mint first (make all tools)"
psql -X -q -d postgres -c "SELECT 1" >/dev/null 2>&1 ||
  die "the test cluster is not running: JNX_INSTANCE=$JNX_INSTANCE bash test/env/cluster.sh run"

# --- certificates: CA A (trusted through SSL_CERT_FILE), CA B (trusted by nobody) --
ca() {  # ca NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=jnx_auth test $1" -keyout "$WORK/$1.key" -out "$WORK/$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() {  # leaf NAME CA SUBJECT_CN SAN
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
    -keyout "$WORK/$1.key" -out "$WORK/$1.csr" 2>/dev/null &&
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$4" >"$WORK/$1.ext" &&
    openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/$2.pem" -CAkey "$WORK/$2.key" -CAcreateserial \
      -days 2 -extfile "$WORK/$1.ext" -out "$WORK/$1.pem" 2>/dev/null
}
ca ca-a && ca ca-b || die "openssl could not make the test CAs"
leaf good ca-a localhost DNS:localhost || die "openssl: good certificate"
leaf stranger ca-b localhost DNS:localhost || die "openssl: stranger certificate"
# CN names the host, the subjectAltName another: the name must not be accepted
# from the CN (RFC 6125), which cpp-httplib's own check alone would do.
leaf wrongname ca-a localhost DNS:other.jnx.test || die "openssl: wrong-name certificate"
CA_FILE=$WORK/ca-a.pem

serve() {  # serve CERT VAR: starts an HTTPS server with that certificate; VAR = its port
  local port_file=$WORK/$1.port
  python3 "$ROOT/test/jwks/https_server.py" "$WORK/$1.pem" "$WORK/$1.key" "$SERVE" "$port_file" \
    >>"$WORK/servers.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if [[ -s $port_file ]]; then
      printf -v "$2" '%s' "$(cat "$port_file")"
      return 0
    fi
    sleep 0.05
  done
  die "the HTTPS server with certificate $1 did not start: $(cat "$WORK/servers.log")"
}
serve good GOOD
serve stranger STRANGER
serve wrongname WRONGNAME
BASE_URL=https://localhost:$GOOD

# --- keys and key sets (build/jnx-mint, as test/env/tokens.sh) ----------------------
jwk1=$("$MINT" keygen "$WORK/keys" ins_rot_1) || die "jnx-mint keygen"
jwk2=$("$MINT" keygen "$WORK/keys" ins_rot_2) || die "jnx-mint keygen"
n_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["n"])' "$1"; }
N1=$(n_of "$jwk1")
N2=$(n_of "$jwk2")
SET_A="{\"keys\":[$jwk1]}"
SET_B="{\"keys\":[$jwk1,$jwk2]}"
printf '%s' "$SET_B" >"$SERVE/jwks.json"
# The same set with every object's members in another order and other whitespace.
python3 - "$SET_B" >"$SERVE/reordered.json" <<'PY'
import json, sys
def flip(v):
    if isinstance(v, dict):
        return {k: flip(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [flip(x) for x in v]
    return v
print(json.dumps(flip(json.loads(sys.argv[1])), indent=3))
PY
# Differs from SET_B: what every refused run would otherwise have set.
printf '%s' "{\"keys\":[$jwk2]}" >"$SERVE/next.json"
BODY_MARKER=SERVED-BODY-MARKER-7f3a  # in every body https_server.py answers with an error
printf 'not json, %s, %s' "$BODY_MARKER" "$N2" >"$SERVE/notjson.txt"
printf '[%s]' "$jwk2" >"$SERVE/array.json"
printf '{"keyz":[%s],"m":"%s"}' "$jwk2" "$BODY_MARKER" >"$SERVE/nokeys.json"
printf '{"keys":[],"m":"%s"}' "$BODY_MARKER" >"$SERVE/emptykeys.json"
printf '{"keys":["%s"]}' "$N2" >"$SERVE/stringkeys.json"
printf '{"keys":[%s],"keys":[%s]}' "$jwk2" "$jwk1" >"$SERVE/twice.json"
# Sets the database refuses (JX110): a key with exponent 1, and no usable key.
printf '{"keys":[%s]}' "$(printf '%s' "$jwk2" | sed 's/"e":"[^"]*"/"e":"AQ"/')" >"$SERVE/weak.json"
printf '{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}' >"$SERVE/unusable.json"

# --- the database: jnx_jwks, with key set A and a token policy ------------------------
ISSUER=https://clerk.jwks.jnx.test
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
  -c "CREATE DATABASE $DB" >/dev/null ||
  die "cannot create database $DB"
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION jnx_auth" >/dev/null || die "CREATE EXTENSION jnx_auth"
q -v jwks="$SET_A" -v iss="$ISSUER" >/dev/null <<'SQL' || die "initial configuration"
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'iss'], '{}');
SQL
now=$(date +%s)
TOKEN2=$("$MINT" token "$WORK/keys" ins_rot_2 '{"alg":"RS256","kid":"ins_rot_2","typ":"JWT"}' \
  "{\"sub\":\"user_rot\",\"iss\":\"$ISSUER\",\"iat\":$now,\"nbf\":$((now - 5)),\"exp\":$((now + 600))}")

ADMIN_PW=AdminPw-$(openssl rand -hex 8)
QUERY_MARKER=QueryMarker$(openssl rand -hex 4)
# Trust authentication on the test socket ignores the password; it is here to
# prove that no output ever shows it.
ADMIN="host=$PGHOST port=$PGPORT dbname=$DB user=postgres password=$ADMIN_PW"

state() {  # config.jwks events | updated_at | the stored set's hash
  q -c "SELECT (SELECT count(*) FROM jnx.system_events WHERE kind = 'config.jwks') || '|' ||
               (SELECT updated_at || '|' || md5(jwks::text) FROM jnx.token_config)"
}
token2_verifies() {
  q -v tok="$TOKEN2" <<<"SELECT jnx.verify_session_token(:'tok')->>'sub'" 2>/dev/null
}

OUT=
RC=
refresh() {  # refresh URL [VAR=value...]: runs refresh-jwks; sets OUT (stdout+stderr) and RC
  local url=$1
  shift
  OUT=$(env -u SSL_CERT_DIR SSL_CERT_FILE="$CA_FILE" JNX_JWKS_URL="$url" JNX_ADMIN_DATABASE_URL="$ADMIN" \
    "$@" "$SHIM" refresh-jwks 2>&1)
  RC=$?
}
# One JSON line with the reason, and nothing that is not the reason's.
clean_output() {
  local s
  for s in "$ADMIN_PW" "$BODY_MARKER" "$N1" "$N2" "${N1:0:40}" "${N2:0:40}" "$QUERY_MARKER"; do
    if [[ $1 == *"$s"* ]]; then
      echo "    output holds a forbidden string (${s:0:16}...): $1" >&2
      return 1
    fi
  done
  python3 -c 'import json,sys; l=sys.argv[1].split("\n"); assert len(l)==1 and json.loads(l[0])["level"]=="error", l' "$1" ||
    { echo "    not one JSON error line: $1" >&2; return 1; }
}
expect_failure() {  # expect_failure NAME EXIT REASON URL [VAR=value...]
  local name=$1 code=$2 reason=$3 url=$4 before
  shift 4
  before=$(state)
  refresh "$url" "$@"
  check "$name: exit $code" equals "$RC" "$code"
  check "$name: the output says why ($reason)" contains "$OUT" "$reason"
  check "$name: one JSON line, no password, body, modulus or query string" clean_output "$OUT"
  check "$name: nothing written" equals "$(state)" "$before"
}

# Servers that keep sending, slowly enough that no single read times out: the
# 30 s budget of the answer and the 60 s limit of the run must end them. They run
# alongside the checks below (they never reach the database) and are read at the end.
slow_runs=()
slow_start=$SECONDS
for slow in trickle-body trickle-headers; do
  env -u SSL_CERT_DIR SSL_CERT_FILE="$CA_FILE" JNX_JWKS_URL="$BASE_URL/$slow?k=$QUERY_MARKER" \
    JNX_ADMIN_DATABASE_URL="$ADMIN" "$SHIM" refresh-jwks >"$WORK/$slow.out" 2>&1 &
  pids+=($!)
  slow_runs+=("$slow:$!")
done

# --- 1. rotation ------------------------------------------------------------------------
check "before: a token signed by the new key is refused" equals "$(token2_verifies)" ""
before=$(state)
events_before=$(q -c "SELECT count(*) FROM jnx.system_events WHERE kind = 'config.jwks'")
refresh "$BASE_URL/jwks.json"
check "rotation: exit 0" equals "$RC" 0
check "rotation: logs updated with both kids" contains "$OUT" "updated, 2 key(s) from $BASE_URL/jwks.json (kid ins_rot_1, ins_rot_2)"
check "rotation: no modulus in the log" lacks "$OUT" "${N2:0:40}"
check "rotation: the stored set is the served one" equals \
  "$(q -v jwks="$SET_B" <<<"SELECT jwks = :'jwks'::jsonb FROM jnx.token_config")" t
check "rotation: exactly one new config.jwks event" equals \
  "$(q -c "SELECT count(*) FROM jnx.system_events WHERE kind = 'config.jwks'")" $((events_before + 1))
check "rotation: the event names both kids" equals \
  "$(q -c "SELECT details->'kids' FROM jnx.system_events WHERE kind = 'config.jwks' ORDER BY id DESC LIMIT 1")" \
  '["ins_rot_1", "ins_rot_2"]'
check "rotation: updated_at moved" lacks "$(state)" "$(cut -d'|' -f2 <<<"$before")"
check "rotation: a token signed by the new key now verifies" equals "$(token2_verifies)" user_rot

# --- 2. unchanged -------------------------------------------------------------------------
check "unchanged: the reordered file differs byte for byte" lacks "$(cat "$SERVE/reordered.json")" "$SET_B"
for doc in jwks.json reordered.json; do
  before=$(state)
  refresh "$BASE_URL/$doc"
  check "unchanged ($doc): exit 0" equals "$RC" 0
  check "unchanged ($doc): logs unchanged" contains "$OUT" "unchanged, 2 key(s)"
  check "unchanged ($doc): no write (events, updated_at, set)" equals "$(state)" "$before"
done

# --- 3. certificates and host names ---------------------------------------------------------
expect_failure "CA nobody trusts" 3 "certificate was refused: unable to get local issuer certificate" \
  "https://localhost:$STRANGER/next.json?k=$QUERY_MARKER"
expect_failure "certificate for another name (CN = the host)" 3 "certificate was refused: hostname mismatch" \
  "https://localhost:$WRONGNAME/next.json?k=$QUERY_MARKER"
expect_failure "host given as an address the certificate does not list" 3 "certificate was refused: IP address mismatch" \
  "https://127.0.0.1:$GOOD/next.json?k=$QUERY_MARKER"
expect_failure "the system CA store alone (no SSL_CERT_FILE)" 3 "certificate was refused" \
  "$BASE_URL/next.json?k=$QUERY_MARKER" SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
expect_failure "TLS to a port that is not listening" 3 "cannot connect" "https://localhost:1/next.json"

# --- 4. answers that are not a key set ------------------------------------------------------
expect_failure "not JSON" 4 "not valid JSON" "$BASE_URL/notjson.txt?k=$QUERY_MARKER"
expect_failure "a JSON array" 4 "not a JSON object" "$BASE_URL/array.json"
expect_failure "no keys member" 4 'no non-empty \"keys\" array' "$BASE_URL/nokeys.json"
expect_failure "empty keys" 4 'no non-empty \"keys\" array' "$BASE_URL/emptykeys.json"
expect_failure "keys that are not objects" 4 "keys[0] is not a JSON object" "$BASE_URL/stringkeys.json"
expect_failure "keys given twice" 4 "not valid JSON" "$BASE_URL/twice.json"
expect_failure "HTTP 500" 3 "the server answered HTTP 500" "$BASE_URL/status/500?k=$QUERY_MARKER"
expect_failure "HTTP 404" 3 "the server answered HTTP 404" "$BASE_URL/missing.json"
expect_failure "a redirect, even to a good set" 3 "HTTP 302 (redirects are not followed" "$BASE_URL/redirect/next.json"
expect_failure "over 1 MiB with Content-Length" 3 "larger than 1048576 bytes" "$BASE_URL/big-length"
expect_failure "over 1 MiB without Content-Length" 3 "larger than 1048576 bytes" "$BASE_URL/big-stream"
expect_failure "a key the database refuses (exponent 1)" 4 "(SQLSTATE JX110)" "$BASE_URL/weak.json"
expect_failure "no key the database can use" 4 "no key in the set can verify session tokens" "$BASE_URL/unusable.json"
t0=$SECONDS
expect_failure "a server that never answers" 3 "reading the answer failed or timed out" "$BASE_URL/hang"
check "a server that never answers: given up within 15 s" test $((SECONDS - t0)) -lt 15

# --- 5. configuration and database ----------------------------------------------------------
expect_failure "http:// refused" 2 "JNX_JWKS_URL must be an https:// URL: plain http is refused" \
  "http://localhost:$GOOD/next.json?k=$QUERY_MARKER"
expect_failure "another scheme" 2 "JNX_JWKS_URL must be an https:// URL" "ftp://localhost/next.json"
expect_failure "credentials in the URL" 2 "JNX_JWKS_URL must not hold credentials" \
  "https://u:$ADMIN_PW@localhost:$GOOD/next.json"
expect_failure "JNX_JWKS_URL empty" 2 "JNX_JWKS_URL is not set" ""
expect_failure "JNX_ADMIN_DATABASE_URL empty" 2 "JNX_ADMIN_DATABASE_URL is not set" \
  "$BASE_URL/next.json" JNX_ADMIN_DATABASE_URL=
expect_failure "JNX_ADMIN_DATABASE_URL not a conninfo (with the password in it)" 2 \
  "JNX_ADMIN_DATABASE_URL is not a valid libpq conninfo or URI" "$BASE_URL/next.json" \
  "JNX_ADMIN_DATABASE_URL=host=$PGHOST password=$ADMIN_PW no_such_option=1"
before=$(state)
OUT=$(env -u JNX_JWKS_URL -u JNX_ADMIN_DATABASE_URL "$SHIM" refresh-jwks 2>&1)
RC=$?
check "both variables unset: exit 2" equals "$RC" 2
check "both variables unset: names JNX_JWKS_URL" contains "$OUT" "JNX_JWKS_URL is not set"
OUT=$(env -u JNX_DATABASE_URL "$SHIM" refresh-jwk 2>&1)
RC=$?
check "a mistyped command: exit 2, and no server started" equals "$RC" 2
check "a mistyped command: says so" contains "$OUT" "unknown command"
expect_failure "a database that does not exist" 5 'database \"no_such_db\" does not exist' \
  "$BASE_URL/next.json" "JNX_ADMIN_DATABASE_URL=$ADMIN dbname=no_such_db"
closed_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_failure "a database address that refuses" 5 "cannot connect to the database: Connection refused" \
  "$BASE_URL/next.json" "JNX_ADMIN_DATABASE_URL=postgresql://postgres:$ADMIN_PW@127.0.0.1:$closed_port/$DB"
check "a database address that refuses: the address is not logged" lacks "$OUT" "127.0.0.1"

# --- 7. the serving shim's role can never set keys ------------------------------------------
AUTHENTICATOR="host=$PGHOST port=$PGPORT dbname=$DB user=jnx_authenticator"
denied=$(psql -X -q -tA -d "$AUTHENTICATOR" -v jwks="$SET_A" 2>&1 <<<"SELECT jnx.set_jwks(:'jwks')")
check "jnx_authenticator: permission denied on jnx.set_jwks" contains "$denied" "permission denied for function set_jwks"
expect_failure "refresh-jwks with the serving role's conninfo" 5 "permission denied" \
  "$BASE_URL/next.json" "JNX_ADMIN_DATABASE_URL=$AUTHENTICATOR"
others=$(grep -l JNX_ADMIN_DATABASE_URL "$ROOT"/shim/*.cpp "$ROOT"/shim/*.h | xargs -n1 basename | sort | tr '\n' ' ')
check "only refresh_jwks.* reads JNX_ADMIN_DATABASE_URL" equals "$others" "refresh_jwks.cpp refresh_jwks.h "

# A serving shim given the owner's conninfo and a key set that differs: it
# serves with JNX_DATABASE_URL alone and never connects with the other.
shim_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
before=$(state)
env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE JNX_DATABASE_URL="$AUTHENTICATOR" JNX_LISTEN=127.0.0.1:$shim_port \
  JNX_ADMIN_DATABASE_URL="$ADMIN application_name=jnx_admin_marker" JNX_JWKS_URL="$BASE_URL/next.json" \
  SSL_CERT_FILE="$CA_FILE" "$SHIM" >"$WORK/serving.log" 2>&1 &
serving=$!
pids+=($serving)
ready=
for _ in $(seq 1 100); do
  ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$shim_port/readyz" 2>/dev/null)
  [[ $ready == 200 ]] && break
  sleep 0.1
done
check "serving shim with the owner's conninfo set: ready" equals "$ready" 200
sleep 1
check "serving shim: its connections are jnx_authenticator's, none with the owner's conninfo" equals \
  "$(q -c "SELECT count(*) FILTER (WHERE usename = 'jnx_authenticator') > 0, count(*) FILTER (WHERE application_name = 'jnx_admin_marker')
             FROM pg_stat_activity WHERE datname = '$DB'")" "t|0"
check "serving shim: the key set is untouched" equals "$(state)" "$before"
check "serving shim: logs nothing about keys" lacks "$(cat "$WORK/serving.log")" "jwks"
kill -TERM "$serving" 2>/dev/null
wait "$serving" 2>/dev/null

# --- the slow servers started at the beginning ----------------------------------------------
for run in "${slow_runs[@]}"; do
  wait "${run#*:}"
  RC=$?
  elapsed=$((SECONDS - slow_start))
  OUT=$(cat "$WORK/${run%%:*}.out")
  case ${run%%:*} in
    trickle-body)
      check "a body that trickles: exit 3" equals "$RC" 3
      check "a body that trickles: stopped at the 30 s budget" contains "$OUT" "the answer took longer than 30 s"
      check "a body that trickles: clean output" clean_output "$OUT"
      check "a body that trickles: within 45 s" test "$elapsed" -lt 45
      ;;
    trickle-headers)
      check "headers that trickle: exit 3" equals "$RC" 3
      check "headers that trickle: stopped by the 60 s limit of the run" contains "$OUT" \
        "fetching the key set took longer than 60 s; stopped"
      check "headers that trickle: clean output" clean_output "$OUT"
      check "headers that trickle: within 70 s" test "$elapsed" -lt 70
      ;;
  esac
done

echo "jwks: $passed passed, $failed failed in $((SECONDS - started))s"
((failed == 0))

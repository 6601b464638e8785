#!/usr/bin/env bash
# Generates, at test time, two RSA keys and a set of Clerk-shaped session
# tokens, into DIR: DIR/jwks.json (only the first key: the second one is a
# stranger) and DIR/tokens.psql, \set lines that pg_regress and pgTAP files
# read with \getenv + \i. Tokens are valid for an hour from now.
#   usage: tokens.sh DIR   (needs build/jnx-mint)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$1
MINT=$ROOT/build/jnx-mint
mkdir -p "$DIR"
chmod 700 "$DIR"
jwk=$("$MINT" keygen "$DIR" ins_test_1)
stranger_jwk=$("$MINT" keygen "$DIR" ins_stranger)
printf '{"keys":[%s]}\n' "$jwk" >"$DIR/jwks.json"
ec_jwk=$("$MINT" keygen "$DIR" ins_ec P-256)
# The same RSA key with e = 1: its "signature" would be the padded digest.
weak_jwk=$(printf '%s' "$jwk" | sed 's/"e":"[^"]*"/"e":"AQ"/; s/"kid":"ins_test_1"/"kid":"ins_weak"/')

now=$(date +%s)
iss=https://clerk.jnx.test
azp=https://app.jnx.test
base="\"iss\":\"$iss\",\"azp\":\"$azp\",\"iat\":$((now - 5)),\"nbf\":$((now - 10)),\"exp\":$((now + 3600)),\"sid\":\"sess_test\""
header='{"alg":"RS256","kid":"ins_test_1","typ":"JWT"}'
mint() { "$MINT" token "$DIR" "${3:-ins_test_1}" "${2:-$header}" "$1" "${4:-RS256}"; }

out=$DIR/tokens.psql
{
  echo "\\set jwks '$(cat "$DIR/jwks.json")'"
  # Both keys: for tests that remove the stranger's key again.
  echo "\\set jwks_with_stranger '{\"keys\":[$jwk,$stranger_jwk]}'"
  echo "\\set jwks_stranger_only '{\"keys\":[$stranger_jwk]}'"
  # RSA and EC P-256 keys next to keys nothing can use (RFC 7517 section 5: ignored).
  echo "\\set jwks_mixed '{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"},{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},$jwk,$ec_jwk]}'"
  echo "\\set jwks_weak '{\"keys\":[$jwk,$weak_jwk]}'"
  echo "\\set issuer '$iss'"
  echo "\\set party '$azp'"
  # Identities. alice: member of org_x (claims v2); bob: member of org_y (v1);
  # carol: admin of org_x (v2, rol without prefix); dave: platform admin, no org;
  # erin: never synced, active org org_new.
  echo "\\set tok_alice '$(mint "{\"sub\":\"user_alice\",$base,\"v\":2,\"o\":{\"id\":\"org_x\",\"slg\":\"x\",\"rol\":\"member\",\"per\":\"read\"}}")'"
  echo "\\set tok_bob '$(mint "{\"sub\":\"user_bob\",$base,\"org_id\":\"org_y\",\"org_role\":\"org:member\",\"org_slug\":\"y\",\"org_permissions\":[]}")'"
  echo "\\set tok_carol '$(mint "{\"sub\":\"user_carol\",$base,\"v\":2,\"o\":{\"id\":\"org_x\",\"slg\":\"x\",\"rol\":\"admin\",\"per\":\"read,manage\"}}")'"
  echo "\\set tok_dave '$(mint "{\"sub\":\"user_dave\",$base,\"v\":2}")'"
  echo "\\set tok_erin '$(mint "{\"sub\":\"user_erin\",$base,\"email\":\"erin@example.com\",\"v\":2,\"o\":{\"id\":\"org_new\",\"slg\":\"new\",\"rol\":\"admin\"}}")'"
  # One token per way to be wrong.
  echo "\\set tok_expired '$(mint "{\"sub\":\"user_alice\",\"iss\":\"$iss\",\"azp\":\"$azp\",\"exp\":$((now - 100))}")'"
  echo "\\set tok_future '$(mint "{\"sub\":\"user_alice\",\"iss\":\"$iss\",\"azp\":\"$azp\",\"nbf\":$((now + 600)),\"exp\":$((now + 3600))}")'"
  echo "\\set tok_wrong_iss '$(mint "{\"sub\":\"user_alice\",\"iss\":\"https://evil.test\",\"azp\":\"$azp\",\"exp\":$((now + 3600))}")'"
  echo "\\set tok_wrong_azp '$(mint "{\"sub\":\"user_alice\",\"iss\":\"$iss\",\"azp\":\"https://evil.test\",\"exp\":$((now + 3600))}")'"
  echo "\\set tok_no_azp '$(mint "{\"sub\":\"user_alice\",\"iss\":\"$iss\",\"exp\":$((now + 3600))}")'"
  echo "\\set tok_stranger '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_stranger"}' ins_stranger)'"
  echo "\\set tok_forged_kid '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_test_1"}' ins_stranger)'"
  echo "\\set tok_hs256 '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"HS256","kid":"ins_test_1"}')'"
  echo "\\set tok_none '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"none","kid":"ins_test_1"}')'"
  echo "\\set tok_string_exp '$(mint "{\"sub\":\"user_alice\",\"iss\":\"$iss\",\"azp\":\"$azp\",\"exp\":\"$((now + 3600))\"}")'"
  echo "\\set tok_no_sub '$(mint "{\"iss\":\"$iss\",\"azp\":\"$azp\",\"exp\":$((now + 3600))}")'"
  # Supabase-style EC P-256 key, and tokens of another kind (Clerk's session verifier refuses them).
  echo "\\set tok_es256 '$(mint "{\"sub\":\"user_alice\",$base,\"v\":2}" '{"alg":"ES256","kid":"ins_ec","typ":"JWT"}' ins_ec ES256)'"
  echo "\\set tok_es256_as_rs256 '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_ec"}' ins_ec ES256)'"
  echo "\\set tok_at_jwt '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_test_1","typ":"at+jwt"}')'"
  echo "\\set tok_template '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_test_1","typ":"JWT","cat":"cl_B7d4PD222AAA"}')'"
  echo "\\set tok_session_cat '$(mint "{\"sub\":\"user_alice\",$base}" '{"alg":"RS256","kid":"ins_test_1","typ":"JWT","cat":"cl_B7d4PD111AAA"}')'"
  echo "\\set tok_machine '$(mint "{\"sub\":\"mch_2xyz\",$base}")'"
  alice=$(mint "{\"sub\":\"user_alice\",$base}")
  dave_claims=$(printf '%s' "{\"sub\":\"user_dave\",$base}" | base64 -w0 | tr '+/' '-_' | tr -d '=')
  echo "\\set tok_tampered '${alice%%.*}.${dave_claims}.${alice##*.}'"
} >"$out"
echo "$out"

-- Session tokens and identity. Keys and tokens are generated at test time by
-- test/env/tokens.sh into the file named by JNX_TOKENS_FILE (make installcheck
-- does it); nothing below prints a token.
\getenv tokens_file JNX_TOKENS_FILE
\set ECHO none
\i :tokens_file
\set ECHO all
\set VERBOSITY default

-- Until keys and issuers are configured, nothing verifies.
SELECT regress.outcome(format('SELECT jnx.verify_session_token(%L)', :'tok_alice')) AS not_configured;

-- Configuration is validated; bad input changes nothing.
SELECT regress.outcome($$SELECT jnx.set_jwks('{"keys": []}')$$) AS empty_jwks;
SELECT regress.outcome($$SELECT jnx.set_jwks('{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}')$$) AS hmac_key;
SELECT regress.outcome($$SELECT jnx.set_token_policy('{}', '{}')$$) AS no_issuer;
SELECT regress.outcome($$SELECT jnx.set_token_policy('{https://x.test}', '{}', 301)$$) AS leeway_too_big;
SELECT count(*) AS token_config_rows FROM jnx.token_config;
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
SELECT kind, details ? 'kids' OR details ? 'issuers' AS described FROM jnx.system_events
 WHERE kind LIKE 'config.%' AND kind <> 'config.webhook_secrets' ORDER BY id;

-- Both claim versions come out normalized.
SELECT c->>'sub' AS sub, c->>'org_id' AS org_id, c->>'org_role' AS org_role, c->>'org_slug' AS org_slug,
       c->'org_permissions' AS org_permissions
  FROM (VALUES ('v2 member', jnx.verify_session_token(:'tok_alice')),
               ('v1 member', jnx.verify_session_token(:'tok_bob')),
               ('v2 admin', jnx.verify_session_token(:'tok_carol'))) AS v(version, c);

-- Every way a token can be wrong has its own SQLSTATE; messages never echo the token.
SELECT name, regress.outcome(format('SELECT jnx.verify_session_token(%L)', tok)) AS outcome
  FROM (VALUES ('expired', :'tok_expired'), ('not yet valid', :'tok_future'),
               ('wrong issuer', :'tok_wrong_iss'), ('wrong party', :'tok_wrong_azp'),
               ('missing party', :'tok_no_azp'), ('unknown key', :'tok_stranger'),
               ('kid of our key, signed by another', :'tok_forged_kid'),
               ('HS256', :'tok_hs256'), ('alg none', :'tok_none'),
               ('tampered payload', :'tok_tampered'), ('string exp', :'tok_string_exp'),
               ('no sub', :'tok_no_sub'), ('two parts', 'eyJhbGciOiJSUzI1NiJ9.e30'),
               ('garbage', 'not a token'), ('empty', '')) AS v(name, tok);
SELECT regress.outcome('SELECT jnx.verify_session_token(NULL)') AS null_token;

-- The identity belongs to one transaction.
SELECT jnx.user_id() IS NULL AS before;
BEGIN;
SELECT jnx.authenticate(:'tok_alice')->>'sub' AS authenticated_as;
SELECT jnx.user_id(), jnx.org_id(), jnx.org_role(),
       current_setting('request.jwt.claims')::jsonb->>'sub' AS supabase_claims_sub;
COMMIT;
SELECT jnx.user_id() IS NULL AS cleared_at_commit, jnx.claims() IS NULL AS no_claims,
       coalesce(current_setting('request.jwt.claims', true), '') = '' AS setting_cleared;
BEGIN;
SELECT jnx.authenticate(:'tok_alice') IS NOT NULL AS authenticated;
SELECT 1 / 0;
ROLLBACK;
SELECT jnx.user_id() IS NULL AS cleared_after_error;
BEGIN;
SAVEPOINT s;
SELECT jnx.authenticate(:'tok_bob') IS NOT NULL AS authenticated_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT jnx.user_id() IS NULL AS cleared_with_its_savepoint;
COMMIT;
-- A bad token leaves no identity behind.
BEGIN;
SELECT regress.outcome(format('SELECT jnx.authenticate(%L)', :'tok_expired')) AS expired;
SELECT jnx.user_id() IS NULL AS still_anonymous;
COMMIT;

-- Subtransactions follow the rules of SET LOCAL: one that commits hands the
-- identity to its parent; one that rolls back restores the parent's.
SELECT set_config('regress.tok_alice', :'tok_alice', false) IS NOT NULL AS token_kept,
       set_config('regress.tok_bob', :'tok_bob', false) IS NOT NULL AS other_token_kept;
BEGIN;
DO $$
BEGIN
    BEGIN
        PERFORM jnx.authenticate(current_setting('regress.tok_alice'));
    EXCEPTION WHEN OTHERS THEN
        RAISE;
    END;
    BEGIN
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;  -- an unrelated block that fails and is caught
    END;
END
$$;
SELECT jnx.user_id() AS after_unrelated_block_failed, jnx.org_id();
COMMIT;
SELECT jnx.user_id() IS NULL AS cleared_at_commit;
BEGIN;
SAVEPOINT a;
SELECT jnx.authenticate(:'tok_alice') IS NOT NULL AS authenticated_in_savepoint;
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT b;
SELECT jnx.user_id() AS kept_after_release_and_other_rollback;
SAVEPOINT c;
SELECT jnx.authenticate(:'tok_bob') IS NOT NULL AS bob_in_savepoint;
SELECT jnx.user_id() AS inside, jnx.org_id() AS inside_org;
ROLLBACK TO SAVEPOINT c;
SELECT jnx.user_id() AS restored_after_rollback, jnx.org_id() AS restored_org,
       current_setting('request.jwt.claims')::jsonb->>'sub' AS supabase_claims_sub;
SAVEPOINT d;
SAVEPOINT e;
SELECT jnx.authenticate(:'tok_bob') IS NOT NULL AS bob_two_levels_down;
RELEASE SAVEPOINT e;
RELEASE SAVEPOINT d;
SELECT jnx.user_id() AS replaced_by_released_savepoints;
ROLLBACK;
SELECT jnx.user_id() IS NULL AS cleared_at_rollback;
-- An identity replaced in the same (sub)transaction is simply replaced.
BEGIN;
SELECT jnx.authenticate(:'tok_alice') IS NOT NULL AS alice, jnx.authenticate(:'tok_bob') IS NOT NULL AS bob;
SELECT jnx.user_id() AS last_one_wins;
COMMIT;
SELECT set_config('regress.tok_alice', '', false) = '' AS token_dropped,
       set_config('regress.tok_bob', '', false) = '' AS other_token_dropped;

-- Forgery: as authenticated, the Supabase setting and our internals grant nothing.
GRANT USAGE ON SCHEMA regress TO authenticated;
GRANT EXECUTE ON FUNCTION regress.outcome(text) TO authenticated;
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "user_dave", "role": "authenticated"}', true) IS NOT NULL AS claims_set;
SELECT jnx.user_id() IS NULL AS no_identity_from_setting, jnx.is_admin() AS is_admin;
SELECT count(*) AS users_visible FROM jnx.users;
SELECT regress.outcome(format('SELECT jnx.authenticate(%L)', :'tok_dave')) AS call_authenticate;
SELECT regress.outcome($$SELECT jnx.upsert_user('user_dave', '{"public_metadata": {"role": "admin"}}')$$) AS call_upsert;
SELECT regress.outcome($$SELECT jnx._provisional_user('user_x', '{}')$$) AS call_internal;
SELECT regress.outcome($$UPDATE jnx.users SET role = 'admin'$$) AS update_users;
SELECT regress.outcome('SELECT jnx.me()') AS me_without_identity;
ROLLBACK;

-- Synced users and orgs for the rest: alice (member) and carol (admin) in
-- org_x, bob in org_y, dave a platform admin.
SELECT regress.deliver('msg_s_' || n, e)->>'status' AS status FROM (VALUES
    (1, regress.org_event('organization.created', 'org_x', 'Org X', 1700000000000)),
    (2, regress.org_event('organization.created', 'org_y', 'Org Y', 1700000000000)),
    (3, regress.user_event('user.created', 'user_alice', 'Alice', 'alice@example.com', 1700000000000)),
    (4, regress.user_event('user.created', 'user_bob', 'Bob', 'bob@example.com', 1700000000000)),
    (5, regress.user_event('user.created', 'user_carol', 'Carol', 'carol@example.com', 1700000000000)),
    (6, jsonb_set(regress.user_event('user.created', 'user_dave', 'Dave', 'dave@example.com', 1700000000000),
                  '{data,public_metadata}', '{"role": "admin"}')),
    (7, regress.membership_event('organizationMembership.created', 'orgmem_ax', 'org_x', 'user_alice', 'org:member', 1700000000000)),
    (8, regress.membership_event('organizationMembership.created', 'orgmem_cx', 'org_x', 'user_carol', 'org:admin', 1700000000000)),
    (9, regress.membership_event('organizationMembership.created', 'orgmem_by', 'org_y', 'user_bob', 'org:member', 1700000000000))
  ) AS v(n, e) ORDER BY n;

-- jnx.me(): the profile of a synced user ...
BEGIN;
SELECT jnx.authenticate(:'tok_alice') IS NOT NULL AS authenticated;
SET LOCAL ROLE authenticated;
SELECT p->>'clerk_user_id' AS me, p->>'email' AS email, p->>'sync_state' AS sync_state,
       p->'org'->>'clerk_org_id' AS active_org, jsonb_array_length(p->'memberships') AS memberships
  FROM jnx.me() AS p;
COMMIT;
-- ... and at once for one the webhook has not reached: a provisional row from the token.
BEGIN;
SELECT jnx.authenticate(:'tok_erin') IS NOT NULL AS authenticated;
SET LOCAL ROLE authenticated;
SELECT p->>'clerk_user_id' AS me, p->>'email' AS email, p->>'sync_state' AS sync_state,
       p->'org'->>'clerk_org_id' AS active_org
  FROM jnx.me() AS p;
COMMIT;
SELECT actor, action, target_id FROM jnx.audit_logs WHERE target_id IN ('user_erin', 'org_new') ORDER BY id;
-- The webhook then completes the same row.
SELECT regress.deliver('msg_erin', regress.user_event('user.created', 'user_erin', 'Erin', 'erin@example.com', 1700000000000))->>'status' AS webhook;
SELECT count(*) AS rows, min(sync_state) AS sync_state, min(first_name) AS first_name
  FROM jnx.users WHERE clerk_user_id = 'user_erin';

-- Members of an org: org admins for their active org, platform admins for any.
BEGIN;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS carol;
SET LOCAL ROLE authenticated;
SELECT jsonb_path_query_array(jnx.admin_list_users(), '$.users[*].clerk_user_id') AS org_x_members;
SELECT regress.outcome($$SELECT jnx.admin_list_users('org_y')$$) AS other_org;
COMMIT;
BEGIN;
SELECT jnx.authenticate(:'tok_alice') IS NOT NULL AS alice;
SET LOCAL ROLE authenticated;
SELECT regress.outcome('SELECT jnx.admin_list_users()') AS member_lists;
COMMIT;
BEGIN;
SELECT jnx.authenticate(:'tok_dave') IS NOT NULL AS dave;
SET LOCAL ROLE authenticated;
SELECT jnx.is_admin() AS platform_admin,
       jsonb_path_query_array(jnx.admin_list_users('org_y'), '$.users[*].clerk_user_id') AS org_y_members;
SELECT count(*) AS users_visible_to_platform_admin FROM jnx.users;
COMMIT;

-- A session token outlives Clerk's state by up to a minute. Once the webhook
-- says the admin's membership ended, or the user is deleted, the token's org
-- role grants nothing more (a membership not delivered yet counts for it).
BEGIN;
SELECT regress.deliver('msg_carol_left', regress.membership_event('organizationMembership.deleted', 'orgmem_cx',
                       'org_x', 'user_carol', 'org:admin', 1700000005000))->>'status' AS membership_ended;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS carol;
SET LOCAL ROLE authenticated;
SELECT regress.outcome('SELECT jnx.admin_list_users()') AS list_after_membership_ended;
SELECT (SELECT count(*) FROM jnx.users) AS users_visible, (SELECT count(*) FROM jnx.orgs) AS orgs_visible,
       (SELECT count(*) FROM jnx.audit_logs) AS audit_rows_visible;
ROLLBACK;
BEGIN;
SELECT regress.deliver('msg_carol_deleted', regress.deleted_event('user.deleted', 'user_carol', 1700000005000))->>'status'
       AS user_deleted;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS carol;
SET LOCAL ROLE authenticated;
SELECT regress.outcome('SELECT jnx.admin_list_users()') AS list_after_user_deleted;
SELECT regress.outcome('SELECT jnx.me()') AS me_after_user_deleted;
SELECT (SELECT count(*) FROM jnx.users WHERE deleted_at IS NULL) AS live_users_visible,
       (SELECT count(*) FROM jnx.orgs) AS orgs_visible, (SELECT count(*) FROM jnx.audit_logs) AS audit_rows_visible;
ROLLBACK;
-- Still an admin while the membership holds.
BEGIN;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS carol;
SET LOCAL ROLE authenticated;
SELECT jsonb_array_length(jnx.admin_list_users()->'users') AS members_listed;
COMMIT;
-- Pages: limit and cursor. Carol's org has two members: a page of one, then
-- the next page from its cursor, then no cursor. A cursor is opaque and
-- checked: anything but one we gave is JX351; the limit is 1..1000 (JX350).
BEGIN;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS carol;
SET LOCAL ROLE authenticated;
SELECT jnx.admin_list_users(NULL, 1) AS first_page \gset
SELECT :'first_page'::jsonb->'users'->0->>'clerk_user_id' AS first_member,
       :'first_page'::jsonb->>'next_cursor' ~ '^c1[A-Za-z0-9_-]+$' AS opaque_cursor;
SELECT jsonb_path_query_array(jnx.admin_list_users(NULL, 1, :'first_page'::jsonb->>'next_cursor'),
                              '$.users[*].clerk_user_id') AS second_page,
       jnx.admin_list_users(NULL, 1, :'first_page'::jsonb->>'next_cursor')->'next_cursor' AS after_second;
SELECT jnx.admin_list_users(NULL, 2)->'next_cursor' AS exact_fit_has_no_next;
SELECT regress.outcome('SELECT jnx.admin_list_users(NULL, 0)') AS limit_0,
       regress.outcome('SELECT jnx.admin_list_users(NULL, 1001)') AS limit_1001,
       regress.outcome('SELECT jnx.admin_list_users(NULL, NULL)') AS limit_null;
SELECT regress.outcome(format('SELECT jnx.admin_list_users(NULL, 10, %L)', c)) AS bad_cursor
  FROM unnest(ARRAY['', 'c1', 'c2dXNlcl9h', 'c1/w', 'c1_w', 'c1A', 'c1' || repeat('A', 4096)]) c;
-- A long id (600 bytes) still makes a cursor that decodes to it.
SELECT jnx._page_cursor_decode(jnx._page_cursor_encode(repeat('x', 600))) = repeat('x', 600) AS long_id_round_trip;
-- A cursor past the end is an empty last page, not an error.
SELECT jnx.admin_list_users(NULL, 10, jnx._page_cursor_encode('zzzz')) AS past_the_end;
COMMIT;

REVOKE ALL ON FUNCTION regress.outcome(text) FROM authenticated;
REVOKE ALL ON SCHEMA regress FROM authenticated;

-- Key sets: keys nothing can use are ignored (RFC 7517 section 5); EC P-256
-- keys verify ES256 (Supabase's signing keys); keys that make forgery
-- trivial refuse the whole set.
SELECT regress.outcome(format('SELECT jnx.set_jwks(%L)', :'jwks_weak')) AS rsa_exponent_one;
SELECT regress.outcome($$SELECT jnx.set_jwks('{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"}]}')$$) AS nothing_usable;
SELECT jnx.set_jwks(:'jwks_mixed');
SELECT details->'kids' AS kids_recorded FROM jnx.system_events WHERE kind = 'config.jwks' ORDER BY id DESC LIMIT 1;
SELECT name, regress.outcome(format('SELECT jnx.verify_session_token(%L)', tok)) AS outcome
  FROM (VALUES ('RS256 next to ignored keys', :'tok_alice'), ('ES256 with an EC P-256 key', :'tok_es256'),
               ('RS256 header on the EC key', :'tok_es256_as_rs256'),
               ('session category', :'tok_session_cat')) AS v(name, tok);
SELECT jnx.verify_session_token(:'tok_es256')->>'sub' AS es256_sub;

-- Tokens of another kind: an OAuth access token, a JWT-template token, a
-- machine's token. Signed by our key, with our issuer, and still refused.
SELECT name, regress.outcome(format('SELECT jnx.verify_session_token(%L)', tok)) AS outcome
  FROM (VALUES ('typ at+jwt', :'tok_at_jwt'), ('cat of a JWT template', :'tok_template'),
               ('sub of a machine', :'tok_machine')) AS v(name, tok);
BEGIN;
SELECT regress.outcome(format('SELECT jnx.authenticate(%L)', :'tok_at_jwt')) AS authenticate_access_token;
SELECT jnx.user_id() IS NULL AS still_anonymous;
COMMIT;
SELECT jnx.set_jwks(:'jwks');

-- The verified-token cache (per backend): a token verified once is answered
-- from it, but never where a full verification would refuse it.
SELECT jnx.verify_session_token(:'tok_alice')->>'sub' AS verified;
SELECT jnx.verify_session_token(:'tok_alice')->>'sub' AS verified_again;
-- A hit answers the claims the full verification gave (the cache keeps their
-- jsonb, made at the miss): a fresh cache, a miss, two hits, and the claims
-- of the identity the last one set.
SELECT jnx.set_jwks(:'jwks');
CREATE TEMP TABLE answers AS SELECT 1 AS call, jnx.verify_session_token(:'tok_carol') AS claims;
INSERT INTO answers SELECT 2, jnx.verify_session_token(:'tok_carol');
BEGIN;
INSERT INTO answers SELECT 3, jnx.authenticate(:'tok_carol');
INSERT INTO answers SELECT 4, jnx.claims();
COMMIT;
SELECT count(*) AS answers, count(DISTINCT claims::text) AS distinct_answers,
       min(claims->>'sub') = max(claims->>'sub') AND min(claims->>'org_role') = 'org:admin' AS carol
  FROM answers;
DROP TABLE answers;
-- The clock: past exp plus the leeway, cached or not.
SELECT regress.outcome(format('SELECT jnx.verify_session_token(%L, now() + interval ''2 hours'')',
                              :'tok_alice')) AS two_hours_later;
SELECT regress.outcome(format('SELECT jnx.verify_session_token(%L, now() - interval ''1 hour'')',
                              :'tok_alice')) AS an_hour_before_iat;
-- The policy: an issuer no longer accepted.
SELECT jnx.set_token_policy(ARRAY['https://other.clerk.test'], ARRAY[:'party']);
SELECT regress.outcome(format('SELECT jnx.verify_session_token(%L)', :'tok_alice')) AS issuer_dropped;
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party'], 0);
SELECT jnx.verify_session_token(:'tok_alice')->>'sub' AS issuer_back;
-- The keys: a set without the token's key.
SELECT jnx.set_jwks(:'jwks_stranger_only');
SELECT regress.outcome(format('SELECT jnx.verify_session_token(%L)', :'tok_alice')) AS key_removed;
BEGIN;
SELECT regress.outcome(format('SELECT jnx.authenticate(%L)', :'tok_alice')) AS authenticate_key_removed;
SELECT jnx.user_id() IS NULL AS still_anonymous;
COMMIT;
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
SELECT jnx.verify_session_token(:'tok_alice')->>'sub' AS key_back;

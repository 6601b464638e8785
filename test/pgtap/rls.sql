-- pgTAP: the row-level security matrix. Every table x every actor x
-- select/insert/update/delete, each expected to be allowed (with the exact
-- number of rows visible) or denied. Tokens are minted at test time
-- (JNX_TOKENS_FILE, from test/env/tokens.sh). Runs in a rolled-back transaction.
\getenv tokens_file JNX_TOKENS_FILE
\i :tokens_file
BEGIN;
SELECT plan(194);

SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);

-- Two orgs; alice (member) and carol (org admin) in org_x, bob in org_y, dave a
-- platform admin without an org.
SELECT jnx.upsert_organization('org_x', '{"name": "X"}');
SELECT jnx.upsert_organization('org_y', '{"name": "Y"}');
SELECT jnx.upsert_user(u, jsonb_build_object('first_name', u))
  FROM unnest(ARRAY['user_alice', 'user_bob', 'user_carol']) u;
SELECT jnx.upsert_user('user_dave', '{"public_metadata": {"role": "admin"}}');
SELECT jnx.upsert_membership(m, jsonb_build_object('role', r, 'organization', jsonb_build_object('id', o),
                                                   'public_user_data', jsonb_build_object('user_id', u)))
  FROM (VALUES ('orgmem_ax', 'org_x', 'user_alice', 'org:member'),
               ('orgmem_cx', 'org_x', 'user_carol', 'org:admin'),
               ('orgmem_by', 'org_y', 'user_bob', 'org:member')) AS v(m, o, u, r);
SELECT count(*) AS audit_all FROM jnx.audit_logs \gset
SELECT count(*) AS audit_org_x FROM jnx.audit_logs
 WHERE org_id = (SELECT id FROM jnx.orgs WHERE clerk_org_id = 'org_x') \gset
SELECT isnt(:audit_org_x::int, 0, 'org_x has audit rows to see');
SELECT isnt(:audit_all::int, :audit_org_x::int, 'other orgs have audit rows too');

-- Runs one operation as a role (after authenticating with a token, when given)
-- and reports 'deny' or 'allow:<rows seen or touched>'.
CREATE FUNCTION pg_temp.probe(actor_role text, token text, tbl text, op text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    col text := CASE tbl WHEN 'users' THEN 'email' WHEN 'orgs' THEN 'name' WHEN 'memberships' THEN 'role'
                         WHEN 'audit_logs' THEN 'actor' WHEN 'webhook_events' THEN 'type'
                         WHEN 'system_events' THEN 'kind' WHEN 'webhook_secrets' THEN 'secret'
                         ELSE 'issuers' END;
    n bigint;
    outcome text;
BEGIN
    IF token IS NOT NULL THEN
        PERFORM jnx.authenticate(token);
    END IF;
    PERFORM set_config('role', actor_role, true);
    BEGIN
        IF op = 'select' THEN
            EXECUTE format('SELECT count(*) FROM jnx.%I', tbl) INTO n;
        ELSIF op = 'insert' THEN
            EXECUTE format('INSERT INTO jnx.%I DEFAULT VALUES', tbl);
            GET DIAGNOSTICS n = ROW_COUNT;
        ELSIF op = 'update' THEN
            EXECUTE format('UPDATE jnx.%I SET %I = %I', tbl, col, col);
            GET DIAGNOSTICS n = ROW_COUNT;
        ELSE
            EXECUTE format('DELETE FROM jnx.%I', tbl);
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        outcome := 'allow:' || n;
    EXCEPTION WHEN insufficient_privilege THEN
        outcome := 'deny';
    END;
    PERFORM set_config('role', 'none', true);
    RETURN outcome;
END
$$;

CREATE TEMP TABLE actors (actor text, actor_role text, token text);
INSERT INTO actors VALUES
    ('anon', 'anon', NULL),
    ('user A (org_x member)', 'authenticated', :'tok_alice'),
    ('user B (other org)', 'authenticated', :'tok_bob'),
    ('org admin (org_x)', 'authenticated', :'tok_carol'),
    ('platform admin', 'authenticated', :'tok_dave'),
    ('service_role', 'service_role', NULL);

-- Rows each actor may see; absent = no read at all.
CREATE TEMP TABLE visible (actor text, tbl text, n bigint);
INSERT INTO visible VALUES
    ('user A (org_x member)', 'users', 2), ('user A (org_x member)', 'orgs', 1),
    ('user A (org_x member)', 'memberships', 2), ('user A (org_x member)', 'audit_logs', 0),
    ('user B (other org)', 'users', 1), ('user B (other org)', 'orgs', 1),
    ('user B (other org)', 'memberships', 1), ('user B (other org)', 'audit_logs', 0),
    ('org admin (org_x)', 'users', 2), ('org admin (org_x)', 'orgs', 1),
    ('org admin (org_x)', 'memberships', 2), ('org admin (org_x)', 'audit_logs', :audit_org_x),
    ('platform admin', 'users', 4), ('platform admin', 'orgs', 2),
    ('platform admin', 'memberships', 3), ('platform admin', 'audit_logs', :audit_all),
    ('service_role', 'users', 4), ('service_role', 'orgs', 2),
    ('service_role', 'memberships', 3), ('service_role', 'audit_logs', :audit_all);

SELECT is(pg_temp.probe(a.actor_role, a.token, t.tbl, o.op),
          CASE WHEN o.op = 'select' AND v.n IS NOT NULL THEN 'allow:' || v.n ELSE 'deny' END,
          format('%s: %s %s', a.actor, o.op, t.tbl))
  FROM actors a
 CROSS JOIN unnest(ARRAY['users', 'orgs', 'memberships', 'audit_logs', 'webhook_events',
                         'system_events', 'webhook_secrets', 'token_config']) WITH ORDINALITY AS t(tbl, ti)
 CROSS JOIN unnest(ARRAY['select', 'insert', 'update', 'delete']) WITH ORDINALITY AS o(op, oi)
  LEFT JOIN visible v ON v.actor = a.actor AND v.tbl = t.tbl
 ORDER BY a.actor, t.ti, o.oi;

SELECT * FROM finish();
ROLLBACK;

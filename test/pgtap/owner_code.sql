-- pgTAP: no code that runs with the owner's rights resolves a name through
-- a search_path the caller controls.
--
-- A login role with CREATE on public plants, in public, a copy of every
-- pg_catalog function, aggregate and operator that SQL can redefine (plus
-- the more specific overload the review used, public.array_to_string(text[],
-- text)); each copy records who ran it and
-- tries to steal the webhook secrets and to make its planter superuser. The
-- callers (jnx_authenticator, authenticated, the planter, and the owner)
-- also plant pg_temp domains over the base types and pg_temp views named
-- like jnx's tables, then call every public entry point with
-- search_path = public, pg_catalog (public first: every planted copy wins
-- wherever the caller's path is used) and with the default path.
--
-- A control proves the trap works: an owner function without a pinned
-- search_path runs the planted code as the owner.
--
-- Statements that run under the hostile path use no type name, cast or
-- operator of their own, so that anything recorded comes from jnx's code.
\getenv tokens_file JNX_TOKENS_FILE
\set ECHO none
\i :tokens_file
\set QUIET 1
SELECT plan(21);

-- The trap ------------------------------------------------------------------
CREATE SCHEMA tripwire;
CREATE TABLE tripwire.hits (planted text, ran_as text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE tripwire.loot (secret text);
GRANT USAGE ON SCHEMA tripwire TO PUBLIC;
GRANT INSERT ON tripwire.hits, tripwire.loot TO PUBLIC;
CREATE FUNCTION tripwire.fire(what text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO tripwire.hits (planted, ran_as) VALUES (what, current_user);
    BEGIN
        INSERT INTO tripwire.loot SELECT secret FROM jnx.webhook_secrets;
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        EXECUTE 'ALTER ROLE jnx_planter SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END
$$;
GRANT EXECUTE ON FUNCTION tripwire.fire(text) TO PUBLIC;

CREATE ROLE jnx_planter LOGIN;
GRANT CREATE ON SCHEMA public TO jnx_planter;

-- What the callers need: configuration, data, signed deliveries.
SELECT 'whsec_' || encode('owner code test key, 32 bytes!!!', 'base64') AS secret \gset
SELECT jnx.set_webhook_secrets(:'secret');
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
SELECT jnx.upsert_organization('org_x', '{"name": "X"}');
SELECT jnx.upsert_user(u, jsonb_build_object('first_name', u, 'email_addresses', '[]'::jsonb))
  FROM unnest(ARRAY['user_alice', 'user_carol']) u;
SELECT jnx.upsert_membership(m, jsonb_build_object('role', r, 'organization', jsonb_build_object('id', 'org_x'),
                                                   'public_user_data', jsonb_build_object('user_id', u)))
  FROM (VALUES ('orgmem_ax', 'user_alice', 'org:member'), ('orgmem_cx', 'user_carol', 'org:admin')) AS v(m, u, r);

CREATE SCHEMA ownercheck;
GRANT USAGE ON SCHEMA ownercheck TO PUBLIC;
CREATE TABLE ownercheck.deliveries (n int, id text, ts text, sig text, body bytea);
INSERT INTO ownercheck.deliveries
SELECT n, 'msg_owner_' || n, ts::text,
       jnx.webhook_sign('whsec_' || encode('owner code test key, 32 bytes!!!', 'base64'), 'msg_owner_' || n, ts, b), b
  FROM (SELECT extract(epoch FROM now())::bigint AS ts) t,
       LATERAL (VALUES
         (1, convert_to('{"type":"user.created","object":"event","timestamp":1700000000000,"data":{"id":"user_owner1","object":"user","first_name":"Olga","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"olga@example.com"}],"public_metadata":{},"created_at":1700000000000,"updated_at":1700000000000}}', 'UTF8')),
         (2, convert_to('{"type":"organization.created","object":"event","timestamp":1700000000000,"data":{"id":"org_owner1","object":"organization","name":"O","slug":"o","public_metadata":{},"created_at":1700000000000,"updated_at":1700000000000}}', 'UTF8')),
         (3, convert_to('{"type":"organizationMembership.created","object":"event","timestamp":1700000000000,"data":{"id":"orgmem_owner1","role":"org:admin","created_at":1700000000000,"updated_at":1700000000000,"organization":{"id":"org_owner1"},"public_user_data":{"user_id":"user_owner2"}}}', 'UTF8')),
         (4, convert_to('{"type":"user.deleted","object":"event","timestamp":1700000001000,"data":{"id":"user_owner2","deleted":true}}', 'UTF8')),
         (5, convert_to('{"type":"user.updated","object":"event","data":{"first_name":"no id"}}', 'UTF8')),
         (6, convert_to('not json', 'UTF8')),
         (7, convert_to('{"type":"organizationMembership.deleted","object":"event","timestamp":1700000002000,"data":{"id":"orgmem_owner1","role":"org:admin","organization":{"id":"org_owner1"},"public_user_data":{"user_id":"user_owner2"}}}', 'UTF8'))
       ) AS d(n, b);
CREATE TABLE ownercheck.first_delivery AS SELECT * FROM ownercheck.deliveries WHERE n = 1;
GRANT SELECT ON ownercheck.deliveries, ownercheck.first_delivery TO PUBLIC;
-- Results of the calls, by round (set by ownercheck.round(), whose path is pinned).
CREATE TABLE ownercheck.results (round text DEFAULT current_setting('ownercheck.round'),
                                 caller text, what text, result jsonb);
CREATE TABLE ownercheck.visible (round text DEFAULT current_setting('ownercheck.round'), clerk_user_id text);
GRANT INSERT ON ownercheck.results, ownercheck.visible TO PUBLIC;
CREATE FUNCTION ownercheck.round(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('ownercheck.round', name, false);
    -- Each round delivers the same messages afresh.
    DELETE FROM jnx.webhook_events WHERE svix_id LIKE 'msg_owner_%';
END
$$;
GRANT EXECUTE ON FUNCTION ownercheck.round(text) TO PUBLIC;

-- Tokens, passed to the calls through psql variables only.
SELECT array_agg(rolname ORDER BY rolname) AS supers_before FROM pg_roles WHERE rolsuper \gset
SELECT md5(string_agg(format('%s %s %s', c.oid::regclass, c.relowner::regrole, c.relacl), ',' ORDER BY c.oid)
           || (SELECT string_agg(format('%s %s %s', p.oid::regprocedure, p.proowner::regrole, p.proacl), ',' ORDER BY p.oid)
                 FROM pg_proc p WHERE p.pronamespace = 'jnx'::regnamespace)) AS owners_before
  FROM pg_class c WHERE c.relnamespace = 'jnx'::regnamespace \gset

-- Planting in public -------------------------------------------------------
SET ROLE jnx_planter;
CREATE TEMP TABLE planted (kind text, name text);
DO $plant$
DECLARE
    f record;
    call_args text;
    body text;
BEGIN
    -- Functions and aggregates: the same name and argument types, in public.
    FOR f IN SELECT p.oid, p.proname, p.prokind, p.provariadic <> 0 AS variadic, p.pronargs, p.proretset,
                    pg_get_function_arguments(p.oid) AS args,
                    pg_get_function_identity_arguments(p.oid) AS ident,
                    pg_get_function_result(p.oid) AS result
               FROM pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace
                AND p.prokind IN ('f', 'a') AND p.pronargs > 0
                AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) t
                                 WHERE t IN ('internal'::regtype, 'cstring'::regtype, '"any"'::regtype))
                AND p.prorettype NOT IN ('internal'::regtype, 'cstring'::regtype, 'trigger'::regtype,
                                         'event_trigger'::regtype, 'language_handler'::regtype,
                                         'fdw_handler'::regtype, 'index_am_handler'::regtype,
                                         'table_am_handler'::regtype, 'tsm_handler'::regtype)
    LOOP
        BEGIN
            IF f.prokind = 'f' THEN
                call_args := (SELECT string_agg(CASE WHEN f.variadic AND i = f.pronargs THEN 'VARIADIC ' ELSE '' END
                                                || '$' || i, ', ')
                                FROM generate_series(1, f.pronargs) i);
                body := CASE WHEN f.proretset
                             THEN format('SELECT * FROM pg_catalog.%I(%s)', f.proname, call_args)
                             ELSE format('SELECT pg_catalog.%I(%s)', f.proname, call_args) END;
                EXECUTE format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE sql AS %L',
                               f.proname, f.args, f.result,
                               format('SELECT tripwire.fire(%L); %s', f.proname || '(' || f.ident || ')', body));
            ELSE
                EXECUTE format('CREATE FUNCTION public.%I(text, %s) RETURNS text LANGUAGE sql AS %L',
                               'trip_sfunc_' || f.oid, f.ident,
                               format('SELECT tripwire.fire(%L)::text', 'aggregate ' || f.proname || '(' || f.ident || ')'));
                EXECUTE format('CREATE FUNCTION public.%I(text, %s) RETURNS %s LANGUAGE sql AS %L',
                               'trip_final_' || f.oid, f.ident, f.result, 'SELECT NULL');
                EXECUTE format('CREATE AGGREGATE public.%I(%s) (SFUNC = public.%I, STYPE = text, '
                               'FINALFUNC = public.%I, FINALFUNC_EXTRA, INITCOND = %L)',
                               f.proname, f.ident, 'trip_sfunc_' || f.oid, 'trip_final_' || f.oid, '');
            END IF;
            INSERT INTO planted VALUES (CASE f.prokind WHEN 'f' THEN 'function' ELSE 'aggregate' END,
                                        f.proname || '(' || f.ident || ')');
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- a signature SQL cannot redefine (pseudo-types): not plantable by anyone
        END;
    END LOOP;
    -- Operators: the same symbol and operand types, in public.
    FOR f IN SELECT o.oid, o.oprname, o.oprleft, o.oprright, o.oprresult
               FROM pg_operator o
              WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprright <> 0
                AND o.oprleft NOT IN ('internal'::regtype, 'cstring'::regtype, '"any"'::regtype)
                AND o.oprright NOT IN ('internal'::regtype, 'cstring'::regtype, '"any"'::regtype)
    LOOP
        BEGIN
            IF f.oprleft = 0 THEN
                EXECUTE format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE sql AS %L',
                               'trip_op_' || f.oid, f.oprright::regtype, f.oprresult::regtype,
                               format('SELECT tripwire.fire(%L); SELECT OPERATOR(pg_catalog.%s) $1',
                                      'operator ' || f.oprname || ' ' || f.oprright::regtype, f.oprname));
                EXECUTE format('CREATE OPERATOR public.%s (RIGHTARG = %s, FUNCTION = public.%I)',
                               f.oprname, f.oprright::regtype, 'trip_op_' || f.oid);
            ELSE
                EXECUTE format('CREATE FUNCTION public.%I(%s, %s) RETURNS %s LANGUAGE sql AS %L',
                               'trip_op_' || f.oid, f.oprleft::regtype, f.oprright::regtype, f.oprresult::regtype,
                               format('SELECT tripwire.fire(%L); SELECT $1 OPERATOR(pg_catalog.%s) $2',
                                      'operator ' || f.oprleft::regtype || ' ' || f.oprname || ' ' || f.oprright::regtype,
                                      f.oprname));
                EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%I)',
                               f.oprname, f.oprleft::regtype, f.oprright::regtype, 'trip_op_' || f.oid);
            END IF;
            INSERT INTO planted VALUES ('operator', f.oprname || ' ' || f.oprleft::regtype || ' ' || f.oprright::regtype);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    -- The overload the review used: more specific than pg_catalog's
    -- array_to_string(anyarray, text), so it wins even with pg_catalog first.
    EXECUTE $f$CREATE FUNCTION public.array_to_string(text[], text) RETURNS text LANGUAGE sql AS
        'SELECT tripwire.fire(''array_to_string(text[], text)''); SELECT pg_catalog.array_to_string($1::pg_catalog.anyarray, $2)'$f$;
    INSERT INTO planted VALUES ('function', 'array_to_string(text[], text) (more specific)');
END
$plant$;
SELECT count(*) FILTER (WHERE kind = 'function') AS planted_functions,
       count(*) FILTER (WHERE kind = 'aggregate') AS planted_aggregates,
       count(*) FILTER (WHERE kind = 'operator') AS planted_operators
  FROM planted \gset
RESET ROLE;

-- pg_temp: domains over the base types (a domain's CHECK runs on every
-- coercion to it) and views named like jnx's tables. Planted once: every role
-- of this session shares its temporary schema.
SET ROLE jnx_authenticator;
DO $temp$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'jsonb', 'json', 'bytea', 'int4', 'int8', 'int2', 'bool', 'numeric',
                             'timestamptz', 'timestamp', 'uuid', 'name', 'varchar', 'oid', 'regclass',
                             'regproc', 'regtype', 'float8', 'interval', 'date'] LOOP
        EXECUTE format('CREATE DOMAIN pg_temp.%I AS pg_catalog.%I CHECK (tripwire.fire(%L))',
                       t, t, 'pg_temp.' || t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['users', 'orgs', 'memberships', 'audit_logs', 'webhook_events', 'system_events',
                             'webhook_secrets', 'token_config'] LOOP
        EXECUTE format('CREATE VIEW pg_temp.%I AS SELECT tripwire.fire(%L) AS planted', t, 'pg_temp.' || t);
    END LOOP;
END
$temp$;
RESET ROLE;

-- The control: an owner function that does not pin its search_path runs the
-- planted code as the owner. If this records nothing, the trap is broken.
CREATE FUNCTION ownercheck.unpinned() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    RETURN array_to_string(ARRAY['a', 'b'], ',') || ('x'::text);
END
$$;
GRANT EXECUTE ON FUNCTION ownercheck.unpinned() TO PUBLIC;
SET search_path = public, pg_catalog;
SET ROLE jnx_authenticator;
SELECT ownercheck.unpinned() IS NOT NULL AS control_ran;
RESET ROLE;
RESET search_path;
SELECT count(*) AS control_hits, count(*) FILTER (WHERE ran_as = current_user) AS control_owner_hits
  FROM tripwire.hits \gset
SELECT count(*) AS control_loot FROM tripwire.loot \gset
SELECT rolsuper AS control_escalated FROM pg_roles WHERE rolname = 'jnx_planter' \gset
-- Undo what the control's planted code did as the owner.
ALTER ROLE jnx_planter NOSUPERUSER;
DELETE FROM tripwire.hits;
DELETE FROM tripwire.loot;
DROP FUNCTION ownercheck.unpinned();

-- The calls ----------------------------------------------------------------
-- Each caller, under the hostile path and then the default one. Errors are
-- expected where a role may not call a function (they still go through
-- name resolution); what counts is what the trap records.
\set ON_ERROR_STOP 0
\set caller_calls 'INSERT INTO ownercheck.results (caller, what, result) SELECT current_user, ''ingest'', jnx.ingest_clerk_webhook(id, ts, sig, body) FROM ownercheck.deliveries ORDER BY n; BEGIN; SELECT jnx.authenticate(' :'tok_alice' ') IS NULL AS no; SET LOCAL ROLE authenticated; INSERT INTO ownercheck.results (caller, what, result) VALUES (''authenticated'', ''me'', jnx.me()); INSERT INTO ownercheck.results (caller, what, result) VALUES (''authenticated'', ''claims'', jnx.claims()); SELECT jnx.user_id() IS NULL, jnx.org_id() IS NULL, jnx.org_role() IS NULL, jnx.is_admin(); INSERT INTO ownercheck.visible (clerk_user_id) SELECT clerk_user_id FROM jnx.users; COMMIT; BEGIN; SELECT jnx.authenticate(' :'tok_carol' ') IS NULL AS no; SET LOCAL ROLE authenticated; INSERT INTO ownercheck.results (caller, what, result) VALUES (''authenticated'', ''admin_list_users'', jnx.admin_list_users()); COMMIT;'

\set planted_calls 'SELECT jnx.webhook_sign(''whsec_QUJD'', ''msg_1'', 1, ''body''); SELECT jnx.verify_webhook(id, ts, sig, body) FROM ownercheck.first_delivery; SELECT jnx.verify_webhook(id, ts, sig, body, ''whsec_QUJD'') FROM ownercheck.first_delivery; SELECT jnx.ingest_clerk_webhook(id, ts, sig, body) FROM ownercheck.first_delivery; SELECT jnx.verify_session_token(' :'tok_alice' '); SELECT jnx.authenticate(' :'tok_alice' '); SELECT jnx.me(); SELECT jnx.admin_list_users(); SELECT jnx.get_user_by_clerk_id(''user_alice''); SELECT jnx.upsert_user(''user_x'', ''{}''); SELECT jnx.upsert_organization(''org_y'', ''{}''); SELECT jnx.upsert_membership(''orgmem_y'', ''{}''); SELECT jnx.replay_webhook(''msg_owner_5''); SELECT jnx.set_webhook_secrets(''whsec_QUJD''); SELECT jnx.set_jwks(''{}''); SELECT jnx.set_token_policy(''{}'', ''{}''); SELECT jnx.is_admin(); SELECT jnx.claims(); SELECT jnx.user_id(); SELECT jnx.org_id(); SELECT jnx.org_role(); SELECT count(*) FROM jnx.users; SELECT count(*) FROM jnx.webhook_secrets; SELECT jnx.stats(); SELECT jnx.admin_list_users(NULL, 10, ''c1dXNlcl9h'');'

SET search_path = public, pg_catalog;
SELECT ownercheck.round('hostile');
SET ROLE jnx_authenticator;
:caller_calls
:planted_calls
RESET ROLE;
SET ROLE authenticated;
:planted_calls
RESET ROLE;
SET ROLE jnx_planter;
:planted_calls
RESET ROLE;
-- The owner too: owner-only functions run as their caller, with a pinned path.
SELECT ownercheck.round('owner');
INSERT INTO ownercheck.results (caller, what, result) SELECT current_user, 'ingest', jnx.ingest_clerk_webhook(id, ts, sig, body) FROM ownercheck.deliveries ORDER BY n;
INSERT INTO ownercheck.results (caller, what, result) VALUES ('owner', 'replay', jnx.replay_webhook('msg_owner_5'));
INSERT INTO ownercheck.results (caller, what, result) VALUES ('owner', 'get_user_by_clerk_id', jnx.get_user_by_clerk_id('user_alice'));
INSERT INTO ownercheck.results (caller, what, result) VALUES ('owner', 'verify_session_token', jnx.verify_session_token(:'tok_alice'));
SELECT jnx.set_webhook_secrets(:'secret') IS NULL AS set;
SELECT jnx.set_jwks(:'jwks') IS NULL AS set;
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']) IS NULL AS set;
SELECT jnx.upsert_user('user_owner3', '{"first_name": "T"}') IS NULL AS upserted;
-- The default path (pg_catalog first, then public): the more specific overload.
RESET search_path;
SELECT ownercheck.round('default');
SET ROLE jnx_authenticator;
:caller_calls
RESET ROLE;
\set ON_ERROR_STOP 1

-- Verdict ------------------------------------------------------------------
RESET ROLE;
RESET search_path;
-- The planted pg_temp objects go (not DISCARD TEMP: pgTAP keeps its plan in temp tables).
SET ROLE jnx_authenticator;
DO $drop$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'v' LOOP
        EXECUTE format('DROP VIEW pg_temp.%I', o.relname);
    END LOOP;
    FOR o IN SELECT t.typname FROM pg_type t WHERE t.typnamespace = pg_my_temp_schema() AND t.typtype = 'd' LOOP
        EXECUTE format('DROP DOMAIN pg_temp.%I', o.typname);
    END LOOP;
END
$drop$;
RESET ROLE;
SELECT count(*) AS hits, coalesce(string_agg(DISTINCT planted || ' as ' || ran_as, '; '), '') AS hit_list
  FROM tripwire.hits \gset
SELECT count(*) AS loot FROM tripwire.loot \gset
SELECT array_agg(rolname ORDER BY rolname) AS supers_after FROM pg_roles WHERE rolsuper \gset
SELECT md5(string_agg(format('%s %s %s', c.oid::regclass, c.relowner::regrole, c.relacl), ',' ORDER BY c.oid)
           || (SELECT string_agg(format('%s %s %s', p.oid::regprocedure, p.proowner::regrole, p.proacl), ',' ORDER BY p.oid)
                 FROM pg_proc p WHERE p.pronamespace = 'jnx'::regnamespace)) AS owners_after
  FROM pg_class c WHERE c.relnamespace = 'jnx'::regnamespace \gset
CREATE TEMP TABLE planted_list AS SELECT * FROM planted;
-- Remove the planted objects before pgTAP (which lives in public) runs again.
DROP OWNED BY jnx_planter;
REVOKE CREATE ON SCHEMA public FROM jnx_planter;
DROP ROLE jnx_planter;

SELECT cmp_ok(:planted_functions, '>=', 2000, 'public copies of pg_catalog''s functions were planted');
SELECT cmp_ok(:planted_aggregates, '>=', 10, 'and of its aggregates');
SELECT is((SELECT count(*) FROM planted_list
            WHERE name IN ('array_agg(anynonarray)', 'jsonb_agg(anyelement)', 'array_to_string(anyarray, text)',
                           'array_to_string(text[], text) (more specific)', 'jsonb_typeof(jsonb)',
                           'convert_from(bytea, name)', 'to_timestamp(double precision)', 'set_config(text, text, boolean)',
                           'current_setting(text, boolean)', 'jsonb_array_elements(from_json jsonb, OUT value jsonb)', 'to_jsonb(anyelement)',
                           'jsonb_each(from_json jsonb, OUT key text, OUT value jsonb)', 'cardinality(anyarray)', 'unnest(anyarray)', '= text text',
                           '->> jsonb text', '|| text text', '<> text text', '? jsonb text')),
          19::bigint, 'including those jnx''s own functions call');
SELECT cmp_ok(:planted_operators, '>=', 600, 'and of its operators');
SELECT cmp_ok(:control_owner_hits, '>', 0, 'control: an owner function without a pinned path runs planted code as the owner');
SELECT ok(:control_loot > 0 AND :'control_escalated'::boolean, 'control: which then steals the secrets and makes its planter superuser');
SELECT is(:hits::bigint, 0::bigint, 'nothing planted ran during the calls: ' || :'hit_list');
SELECT is(:loot::bigint, 0::bigint, 'no secret was copied out');
SELECT is(:'supers_after'::text, :'supers_before'::text, 'nobody became superuser');
SELECT is(:'owners_after'::text, :'owners_before'::text, 'no owner or privilege of a jnx object changed');
-- And the entry points did their work under the hostile path.
SELECT is((SELECT jsonb_agg(result->>'status' ORDER BY ctid) FROM ownercheck.results
            WHERE round = 'hostile' AND what = 'ingest'),
          '["processed", "processed", "processed", "processed", "dead_letter", "dead_letter", "processed"]'::jsonb,
          'ingest verified and applied every delivery under the hostile path');
SELECT is((SELECT jsonb_agg(result->>'status' ORDER BY ctid) FROM ownercheck.results
            WHERE round = 'owner' AND what = 'ingest'),
          (SELECT jsonb_agg(result->>'status' ORDER BY ctid) FROM ownercheck.results
            WHERE round = 'default' AND what = 'ingest'),
          'the owner and the default path ingest the same deliveries alike');
SELECT is((SELECT result->>'status' FROM ownercheck.results WHERE what = 'replay'), 'dead_letter',
          'replay ran (the payload is still invalid)');
SELECT is((SELECT count(*) FROM ownercheck.results WHERE what = 'me' AND result->>'clerk_user_id' = 'user_alice'),
          2::bigint, 'me() answered under both paths');
SELECT is((SELECT array_agg(clerk_user_id ORDER BY round, clerk_user_id) FROM ownercheck.visible),
          ARRAY['user_alice', 'user_carol', 'user_alice', 'user_carol'], 'row-level security held');
SELECT is((SELECT count(*) FROM ownercheck.results WHERE what = 'admin_list_users'
            AND jsonb_array_length(result->'users') = 2), 2::bigint, 'admin_list_users answered under both paths');
SELECT is((SELECT result->>'sub' FROM ownercheck.results WHERE what = 'verify_session_token'), 'user_alice',
          'the owner verified a token');
SELECT is((SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_x'), 0::bigint,
          'no caller but the owner could upsert');

-- And statically: every SECURITY DEFINER function and every trigger
-- function in SQL or PL/pgSQL pins its path, with pg_temp last.
SELECT is((SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'jnx'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
              AND (p.prosecdef OR p.prorettype = 'trigger'::regtype)
              AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
          '', 'every definer and trigger function pins search_path = pg_catalog, pg_temp');

-- Functions without a pinned path, on purpose (a SET clause costs a
-- configuration save and restore per call, and keeps a SQL helper from being
-- inlined): two inlined helpers whose bodies name everything with its schema,
-- and four internal functions that only pinned functions call, executable
-- by the owner alone. Any other one fails here until it is looked at.
SELECT is((SELECT coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text), '')
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'jnx'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
              AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
          'jnx._apply_event(text,bytea), jnx._json_object_or_empty(jsonb), '
          'jnx._ms_to_timestamptz(jsonb), jnx._profile(text), jnx._require_object(text,jsonb,text), '
          'jnx._upsert_user(text,jsonb)',
          'only the known helpers run without a pinned search_path');
SELECT is((SELECT coalesce(string_agg(p.oid::regprocedure::text || ' to ' || a.grantee::regrole::text, ', '), '')
             FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.oid IN ('jnx._apply_event(text,bytea)'::regprocedure,
                            'jnx._require_object(text,jsonb,text)'::regprocedure,
                            'jnx._upsert_user(text,jsonb)'::regprocedure,
                            'jnx._profile(text)'::regprocedure)
              AND a.grantee <> p.proowner),
          '', 'the internal ones are executable by the owner only');

SELECT * FROM finish();

-- Clean up for the other pgTAP files of this database.
DROP SCHEMA ownercheck CASCADE;
DROP SCHEMA tripwire CASCADE;
DELETE FROM jnx.memberships;
DELETE FROM jnx.users;
DELETE FROM jnx.orgs;
DELETE FROM jnx.webhook_events;
DELETE FROM jnx.token_config;
DELETE FROM jnx.webhook_secrets;

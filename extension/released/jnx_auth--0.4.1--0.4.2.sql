-- jnx_auth 0.4.1 -> 0.4.2: speed (issue 8). The build appends
-- extension/schema/20_*.sql onwards (CREATE OR REPLACE functions, triggers,
-- roles, policies) after the changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.4.2'" to load this file. \quit

-- Time-ordered uuid keys for new rows (see 10_tables.sql). Existing keys
-- stay as they are; changing a default rewrites nothing and takes a moment.
CREATE FUNCTION jnx._uuid_v7() RETURNS uuid
AS 'MODULE_PATHNAME', 'jnx_uuid_v7'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._uuid_v7() FROM PUBLIC;
ALTER TABLE jnx.orgs ALTER COLUMN id SET DEFAULT jnx._uuid_v7();
ALTER TABLE jnx.users ALTER COLUMN id SET DEFAULT jnx._uuid_v7();
ALTER TABLE jnx.memberships ALTER COLUMN id SET DEFAULT jnx._uuid_v7();
-- Configuration functions and the cache-invalidation trigger. This file and
-- every later one are shared by the install script and the upgrade scripts:
-- only CREATE OR REPLACE and idempotent statements.

CREATE OR REPLACE FUNCTION jnx._config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'jnx_config_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._config_changed() FROM PUBLIC;

CREATE OR REPLACE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.webhook_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

CREATE OR REPLACE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.token_config
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

CREATE OR REPLACE FUNCTION jnx._check_jwks(jwks jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'jnx_check_jwks' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._check_jwks(jsonb) FROM PUBLIC;

-- The JSON Web Key Set that session tokens are verified against (pass the old
-- and new keys together during a rotation). Owner only.
CREATE OR REPLACE FUNCTION jnx.set_jwks(jwks jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jwks IS NULL THEN
        RAISE EXCEPTION 'JWKS is invalid' USING ERRCODE = 'JX110', DETAIL = 'The key set is NULL.';
    END IF;
    PERFORM jnx._check_jwks(jwks);
    INSERT INTO jnx.token_config AS c (singleton, jwks) VALUES (true, jwks)
    ON CONFLICT (singleton) DO UPDATE SET jwks = EXCLUDED.jwks, updated_at = now();
    INSERT INTO jnx.system_events (kind, severity, details)
    VALUES ('config.jwks', 'info',
            jsonb_build_object('kids', (SELECT jsonb_agg(k->>'kid') FROM jsonb_array_elements(jwks->'keys') k)));
END
$$;
COMMENT ON FUNCTION jnx.set_jwks(jsonb) IS 'Sets the JWKS for session tokens (old and new keys during rotation). Owner only.';
REVOKE ALL ON FUNCTION jnx.set_jwks(jsonb) FROM PUBLIC;

-- Accepted issuers (required: a token whose iss is not listed is refused),
-- authorized parties (when non-empty, azp must be one of them) and the clock
-- leeway for exp/nbf/iat. Owner only.
CREATE OR REPLACE FUNCTION jnx.set_token_policy(issuers text[], authorized_parties text[],
                                                leeway_seconds int DEFAULT 5) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF issuers IS NULL OR cardinality(issuers) = 0 OR cardinality(issuers) > 16
       OR EXISTS (SELECT 1 FROM unnest(issuers) i WHERE i IS NULL OR i = '' OR i ~ '[\n\r]') THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'Give 1 to 16 non-empty issuers, one line each.';
    END IF;
    IF authorized_parties IS NULL OR cardinality(authorized_parties) > 64
       OR EXISTS (SELECT 1 FROM unnest(authorized_parties) p WHERE p IS NULL OR p = '' OR p ~ '[\n\r]') THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'Give at most 64 non-empty authorized parties (an empty array: azp is not checked).';
    END IF;
    IF leeway_seconds IS NULL OR leeway_seconds NOT BETWEEN 0 AND 300 THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'The leeway is 0 to 300 seconds.';
    END IF;
    INSERT INTO jnx.token_config AS c (singleton, issuers, authorized_parties, leeway_seconds)
    VALUES (true, issuers, authorized_parties, leeway_seconds)
    ON CONFLICT (singleton) DO UPDATE SET issuers = EXCLUDED.issuers,
        authorized_parties = EXCLUDED.authorized_parties,
        leeway_seconds = EXCLUDED.leeway_seconds, updated_at = now();
    INSERT INTO jnx.system_events (kind, severity, details)
    VALUES ('config.token_policy', 'info',
            jsonb_build_object('issuers', to_jsonb(issuers), 'authorized_parties', to_jsonb(authorized_parties),
                               'leeway_seconds', leeway_seconds));
END
$$;
COMMENT ON FUNCTION jnx.set_token_policy(text[], text[], int) IS
    'Sets accepted issuers, authorized parties and leeway for session tokens. Owner only.';
REVOKE ALL ON FUNCTION jnx.set_token_policy(text[], text[], int) FROM PUBLIC;
-- Webhook signatures (Svix / Standard Webhooks, HMAC-SHA256), in C++.

CREATE OR REPLACE FUNCTION jnx.webhook_sign(secret text, msg_id text, msg_timestamp bigint, body bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'jnx_webhook_sign'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION jnx.webhook_sign(text, text, bigint, bytea) IS
    'The "v1,<base64>" Svix signature of a message, for tools and tests.';

CREATE OR REPLACE FUNCTION jnx.verify_webhook(
    msg_id text, msg_timestamp text, signature_header text, body bytea,
    secret text DEFAULT NULL, now timestamptz DEFAULT now())
RETURNS void
AS 'MODULE_PATHNAME', 'jnx_verify_webhook'
LANGUAGE C STABLE PARALLEL UNSAFE;  -- see verify_session_token (35_session.sql)
COMMENT ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) IS
    'Raises JX001-JX005 unless the delivery is validly signed; secret NULL = the configured secrets.';
-- With secret NULL it checks against the configured secrets: not for everyone.
REVOKE ALL ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._check_webhook_secret(secret text) RETURNS void
AS 'MODULE_PATHNAME', 'jnx_check_webhook_secret'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._check_webhook_secret(text) FROM PUBLIC;

-- The secrets are the arguments of the statement that calls this function:
-- if it fails (a malformed secret, a lock timeout, a cancel), PostgreSQL
-- would copy that statement into the server log (log_min_error_statement).
-- The SET clause is still in force when the error is logged, so nothing is.
CREATE OR REPLACE FUNCTION jnx.set_webhook_secrets(VARIADIC secrets text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic AS $$
DECLARE
    n int := coalesce(cardinality(secrets), 0);
BEGIN
    IF n = 0 OR n > 16 THEN
        RAISE EXCEPTION 'webhook secret is invalid'
            USING ERRCODE = 'JX005', DETAIL = 'Give between 1 and 16 secrets.';
    END IF;
    FOR i IN 1 .. n LOOP
        IF secrets[i] IS NULL THEN
            RAISE EXCEPTION 'webhook secret is invalid'
                USING ERRCODE = 'JX005', DETAIL = format('Secret %s is NULL.', i);
        END IF;
        PERFORM jnx._check_webhook_secret(secrets[i]);
    END LOOP;
    DELETE FROM jnx.webhook_secrets;
    INSERT INTO jnx.webhook_secrets (position, secret)
        SELECT ord, s FROM unnest(secrets) WITH ORDINALITY AS t(s, ord);
    INSERT INTO jnx.system_events (kind, severity, details)
        VALUES ('config.webhook_secrets', 'info', jsonb_build_object('count', n));
END
$$;
COMMENT ON FUNCTION jnx.set_webhook_secrets(text[]) IS
    'Replaces the accepted webhook secrets (pass old and new during rotation). Owner only.';
REVOKE ALL ON FUNCTION jnx.set_webhook_secrets(text[]) FROM PUBLIC;
-- Session tokens and the identity of a transaction. The identity is held in
-- backend memory by the C functions below: set only by jnx.authenticate with
-- a verified token, cleared at the end of the transaction. Our policies read
-- these functions, never request.jwt.claims (which any session can set).
-- PARALLEL RESTRICTED: parallel workers do not share that memory.
-- verify_session_token (like verify_webhook) is PARALLEL UNSAFE: a reload of
-- the configuration must read it with a fresh snapshot, which a parallel
-- query may not take (JX901).

CREATE OR REPLACE FUNCTION jnx.verify_session_token(token text, now timestamptz DEFAULT now())
RETURNS jsonb AS 'MODULE_PATHNAME', 'jnx_verify_session_token'
LANGUAGE C STABLE PARALLEL UNSAFE;
COMMENT ON FUNCTION jnx.verify_session_token(text, timestamptz) IS
    'The normalized claims of a valid Clerk session token; raises JX101-JX109 otherwise.';
REVOKE ALL ON FUNCTION jnx.verify_session_token(text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.authenticate(token text) RETURNS jsonb
AS 'MODULE_PATHNAME', 'jnx_authenticate' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION jnx.authenticate(text) IS
    'Verifies a session token and makes it the identity of this transaction.';
REVOKE ALL ON FUNCTION jnx.authenticate(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.claims() RETURNS jsonb
AS 'MODULE_PATHNAME', 'jnx_claims' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION jnx.user_id() RETURNS text
AS 'MODULE_PATHNAME', 'jnx_user_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION jnx.org_id() RETURNS text
AS 'MODULE_PATHNAME', 'jnx_org_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE OR REPLACE FUNCTION jnx.org_role() RETURNS text
AS 'MODULE_PATHNAME', 'jnx_org_role' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION jnx.claims() IS 'The claims of this transaction''s identity; NULL when not authenticated.';
COMMENT ON FUNCTION jnx.user_id() IS 'The Clerk user id (sub) of this transaction; NULL when not authenticated.';
COMMENT ON FUNCTION jnx.org_id() IS 'The active Clerk organization id of this transaction; NULL when none.';
COMMENT ON FUNCTION jnx.org_role() IS 'The role in the active organization (org:admin, org:member, ...); NULL when none.';
REVOKE ALL ON FUNCTION jnx.claims(), jnx.user_id(), jnx.org_id(), jnx.org_role() FROM PUBLIC;

-- Platform admin: users.role = 'admin' (from Clerk public_metadata.role).
-- (These are PL/pgSQL rather than SQL: PostgreSQL 15 parses and plans a SQL
-- function it cannot inline, as a definer function never is, on every call;
-- PL/pgSQL keeps its plans for the session.)
CREATE OR REPLACE FUNCTION jnx.is_admin() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce((SELECT u.role = 'admin' FROM jnx.users u
                      WHERE u.clerk_user_id = jnx.user_id() AND u.deleted_at IS NULL), false);
END
$$;
COMMENT ON FUNCTION jnx.is_admin() IS 'True when this transaction''s user is a platform admin.';
REVOKE ALL ON FUNCTION jnx.is_admin() FROM PUBLIC;

-- Whether the token's active organization still counts for this caller. A
-- session token lives up to a minute after Clerk's state changed: once the
-- webhook has told us that the user is deleted, that the org is deleted, or
-- that every membership of the user in that org has ended, the token's org
-- and role grant nothing more. A membership the webhook has not delivered
-- yet does not count against the token (never wait on the webhook).
CREATE OR REPLACE FUNCTION jnx._active_org_live() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx.org_id() IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM jnx.users u
                        WHERE u.clerk_user_id = jnx.user_id() AND u.deleted_at IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM jnx.orgs o
                        WHERE o.clerk_org_id = jnx.org_id() AND o.deleted_at IS NOT NULL)
       AND NOT EXISTS (
           SELECT 1 FROM jnx.memberships m
             JOIN jnx.users u ON u.id = m.user_id JOIN jnx.orgs o ON o.id = m.org_id
            WHERE u.clerk_user_id = jnx.user_id() AND o.clerk_org_id = jnx.org_id()
           HAVING count(*) > 0 AND count(*) FILTER (WHERE m.deleted_at IS NULL) = 0);
END
$$;
REVOKE ALL ON FUNCTION jnx._active_org_live() FROM PUBLIC;

-- Org admin of the active organization, in either claim version, while that
-- organization still counts (see above).
CREATE OR REPLACE FUNCTION jnx._is_org_admin() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce(jnx.org_role() IN ('org:admin', 'admin'), false) AND jnx._active_org_live();
END
$$;
REVOKE ALL ON FUNCTION jnx._is_org_admin() FROM PUBLIC;

-- The orgs this transaction's user belongs to (live memberships of a live
-- user) and the active org of the token while it counts. SECURITY DEFINER so
-- that policies can use it without policies recursing into each other.
CREATE OR REPLACE FUNCTION jnx._my_org_ids() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT m.org_id FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
     WHERE u.clerk_user_id = jnx.user_id() AND m.deleted_at IS NULL AND u.deleted_at IS NULL
    UNION
    SELECT o.id FROM jnx.orgs o
     WHERE o.clerk_org_id = jnx.org_id() AND o.deleted_at IS NULL AND jnx._active_org_live();
END
$$;
REVOKE ALL ON FUNCTION jnx._my_org_ids() FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._require_identity() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jnx.user_id() IS NULL THEN
        RAISE EXCEPTION 'not authenticated' USING ERRCODE = 'JX201',
            HINT = 'Call jnx.authenticate(token) first, in the same transaction.';
    END IF;
    RETURN jnx.user_id();
END
$$;
REVOKE ALL ON FUNCTION jnx._require_identity() FROM PUBLIC;

-- The caller's profile. A verified user with no row yet (the webhook has not
-- arrived) gets a provisional one at once, through the same INSERT ... ON
-- CONFLICT on clerk_user_id that the webhook uses: never a duplicate.
CREATE OR REPLACE FUNCTION jnx.me() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- _require_identity() only to raise: it pins search_path, which costs a
    -- configuration save and restore per call.
    uid CONSTANT text := coalesce(jnx.user_id(), jnx._require_identity());
    c jsonb;
    profile jsonb;
    active uuid;
BEGIN
    profile := jnx._profile(uid);
    IF profile IS NOT NULL THEN
        RETURN profile;
    END IF;
    c := jnx.claims();
    IF EXISTS (SELECT 1 FROM jnx.users WHERE clerk_user_id = uid AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'not authorized' USING ERRCODE = 'JX202', DETAIL = 'The user has been deleted.';
    END IF;
    PERFORM set_config('jnx.audit_actor', uid, true);
    PERFORM set_config('jnx.request_id', coalesce(c->>'sid', ''), true);
    IF jnx.org_id() IS NOT NULL THEN
        PERFORM jnx._provisional_org(jnx.org_id(), jsonb_build_object('slug', c->>'org_slug'));
        SELECT id INTO active FROM jnx.orgs WHERE clerk_org_id = jnx.org_id() AND deleted_at IS NULL;
    END IF;
    INSERT INTO jnx.users (clerk_user_id, email, first_name, last_name, image_url, org_id, sync_state)
    VALUES (uid, c->>'email', c->>'first_name', c->>'last_name', c->>'image_url', active, 'provisional')
    ON CONFLICT (clerk_user_id) DO NOTHING;
    profile := jnx._profile(uid);
    IF profile IS NULL THEN
        -- The INSERT met a row it cannot see as live: a user.deleted that
        -- committed while this call ran (a tombstone). Never an empty answer.
        RAISE EXCEPTION 'not authorized' USING ERRCODE = 'JX202', DETAIL = 'The user has been deleted.';
    END IF;
    RETURN profile;
END
$$;
COMMENT ON FUNCTION jnx.me() IS
    'The authenticated caller''s profile, created provisionally from the token when the user is not synced yet.';
REVOKE ALL ON FUNCTION jnx.me() FROM PUBLIC;

-- Members of an organization: the caller's active org for its org admins, any
-- org (p_org) for platform admins. Runs as the caller: row-level security
-- applies on top of these checks.
CREATE OR REPLACE FUNCTION jnx.admin_list_users(p_org text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid CONSTANT text := coalesce(jnx.user_id(), jnx._require_identity());
    target CONSTANT text := coalesce(p_org, jnx.org_id());
BEGIN
    IF EXISTS (SELECT 1 FROM jnx.users u WHERE u.clerk_user_id = uid AND u.deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'not authorized' USING ERRCODE = 'JX202', DETAIL = 'The user has been deleted.';
    END IF;
    IF NOT jnx.is_admin()
       AND (target IS NULL OR target IS DISTINCT FROM jnx.org_id() OR NOT jnx._is_org_admin()) THEN
        RAISE EXCEPTION 'not authorized' USING ERRCODE = 'JX202',
            DETAIL = 'Listing members needs the org:admin role in the active organization, or a platform admin.';
    END IF;
    IF target IS NULL THEN
        RAISE EXCEPTION 'not authorized' USING ERRCODE = 'JX202', DETAIL = 'No organization was chosen.';
    END IF;
    RETURN coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'clerk_user_id', u.clerk_user_id, 'email', u.email, 'first_name', u.first_name,
                   'last_name', u.last_name, 'image_url', u.image_url, 'org_role', m.role,
                   'sync_state', u.sync_state) ORDER BY u.clerk_user_id)
          FROM jnx.memberships m
          JOIN jnx.users u ON u.id = m.user_id
          JOIN jnx.orgs o ON o.id = m.org_id
         WHERE o.clerk_org_id = target AND m.deleted_at IS NULL AND u.deleted_at IS NULL
           AND o.deleted_at IS NULL), '[]'::jsonb);
END
$$;
COMMENT ON FUNCTION jnx.admin_list_users(text) IS
    'Members of the active org (org admins) or of any org (platform admins); raises JX201/JX202.';
REVOKE ALL ON FUNCTION jnx.admin_list_users(text) FROM PUBLIC;
-- The audit trail: one row per changed row of users, orgs and memberships,
-- written by triggers in the same transaction, whatever path made the change.

CREATE OR REPLACE FUNCTION jnx._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'jnx.audit_logs is append-only'
        USING ERRCODE = 'JX301', DETAIL = format('%s is not allowed on the audit log.', TG_OP);
END
$$;
REVOKE ALL ON FUNCTION jnx._audit_append_only() FROM PUBLIC;
CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON jnx.audit_logs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_append_only();
CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON jnx.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._audit_append_only();

-- Arguments: target type (user, org, membership), the column holding the
-- target's Clerk id, the column holding the org id (a uuid). The actor and
-- request id come from transaction-local settings set by the entry points (a
-- change made without them is attributed to "system"). details.fields lists
-- the names of changed columns in byte order, never their values; an UPDATE
-- that changes nothing but updated_at is not audited. In C
-- (extension/pg/audit_fns.cpp): diffing the two row versions as jsonb in
-- PL/pgSQL cost a fifth of every webhook. It resolves no name through the
-- caller's search_path (one prepared, fully qualified INSERT).
CREATE OR REPLACE FUNCTION jnx._audit_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'jnx_audit_change' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._audit_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.users
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('user', 'clerk_user_id', 'org_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.orgs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('org', 'clerk_org_id', 'id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.memberships
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('membership', 'clerk_membership_id', 'org_id');
-- Applying Clerk objects. Rules (docs/ARCHITECTURE.md explains why):
--  * every writer of a row goes through INSERT ... ON CONFLICT on its Clerk id;
--  * an update older (Clerk updated_at) than the stored row changes nothing;
--  * a deleted user or org is a tombstone: fields cleared, never updated again;
--  * a membership is always kept; its deleted_at is the earliest of its own
--    deletion and its user's and org's, and newer field data still applies;
--  * a membership that arrives first creates provisional user and org rows;
--  * locks are taken in one order: org, then user, then membership.

-- Small helpers are plain SQL expressions that the planner inlines into the
-- statement that calls them, planned once per session with it. Inlining
-- needs a function without a SET clause, so they name everything with its
-- schema (pg_catalog.=, not =): whatever search_path they are planned under,
-- nothing else can be found. The checks stay apart from the casts (nested
-- CASE), so that a constant argument is never cast before it is checked.

-- Clerk sends every *_at as Unix milliseconds. Anything else (missing, not a
-- number, out of range) is NULL rather than an error; a fraction is rounded
-- to the millisecond (1e-400 would not fit a double otherwise).
CREATE OR REPLACE FUNCTION jnx._ms_to_timestamptz(ms jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(ms) OPERATOR(pg_catalog.=) 'number' THEN
        CASE WHEN ms::pg_catalog.numeric OPERATOR(pg_catalog.>=) 0
                  AND ms::pg_catalog.numeric OPERATOR(pg_catalog.<=) 253402300799999
             THEN pg_catalog.to_timestamp(
                      (pg_catalog.round(ms::pg_catalog.numeric) OPERATOR(pg_catalog./) 1000)
                      ::pg_catalog.float8)
        END
    END
$$;

CREATE OR REPLACE FUNCTION jnx._json_object_or_empty(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(value) OPERATOR(pg_catalog.=) 'object' THEN value
                ELSE '{}'::pg_catalog.jsonb END
$$;

-- Internal, and called only by functions that pin search_path: it runs under
-- theirs. (A SET clause costs a configuration save and restore on every
-- call; test/pgtap/owner_code.sql checks that every function without one is
-- internal, a C function or an inlined helper, and executable by the owner
-- only.)
CREATE OR REPLACE FUNCTION jnx._require_object(clerk_id text, data jsonb, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF clerk_id IS NULL OR clerk_id = '' THEN
        RAISE EXCEPTION '% id is required', what USING ERRCODE = 'JX310';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
        RAISE EXCEPTION '% data must be a JSON object', what USING ERRCODE = 'JX310';
    END IF;
    IF data ? 'id' AND data->>'id' IS DISTINCT FROM clerk_id THEN
        RAISE EXCEPTION '% data belongs to another %', what, what
            USING ERRCODE = 'JX310', DETAIL = format('data.id differs from the %s id.', what);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION jnx._require_object(text, jsonb, text) FROM PUBLIC;

-- The user's active organization, as far as webhooks know it: the org of the
-- oldest live membership (by Clerk's created_at, then id), so that the result
-- does not depend on the order in which events arrived. NULL without one.
-- (PL/pgSQL rather than SQL, here and below: PostgreSQL 15 parses and plans a
-- SQL function that it cannot inline on every call, PL/pgSQL once per session.)
CREATE OR REPLACE FUNCTION jnx._refresh_active_org(p_user_id uuid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE jnx.users u
       SET org_id = oldest.org_id, updated_at = now()
      FROM (SELECT (SELECT m.org_id
                      FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
                     WHERE m.user_id = p_user_id AND m.deleted_at IS NULL AND o.deleted_at IS NULL
                     ORDER BY m.clerk_created_at NULLS LAST, m.clerk_membership_id
                     LIMIT 1) AS org_id) AS oldest
     WHERE u.id = p_user_id AND u.deleted_at IS NULL AND u.org_id IS DISTINCT FROM oldest.org_id;
END
$$;
REVOKE ALL ON FUNCTION jnx._refresh_active_org(uuid) FROM PUBLIC;

-- Users ----------------------------------------------------------------------

-- The upsert of a user object already checked (an object whose id, if any,
-- is p_id). Internal, called by upsert_user and, for webhooks, by
-- _apply_event (which has checked the object), both pinning search_path.
CREATE OR REPLACE FUNCTION jnx._upsert_user(p_id text, p_data jsonb) RETURNS jnx.users
LANGUAGE plpgsql AS $$
DECLARE
    v_metadata CONSTANT jsonb := jnx._json_object_or_empty(p_data->'public_metadata');
    result jnx.users;
BEGIN

    INSERT INTO jnx.users AS u
        (clerk_user_id, email, first_name, last_name, username, image_url, role,
         public_metadata, sync_state, clerk_created_at, clerk_updated_at)
    VALUES
        (p_id,
         -- The primary address: the first object in email_addresses whose
         -- id is primary_email_address_id (strict: no array, no address).
         jsonb_path_query_first(
             p_data, 'strict $.email_addresses[*] ? (@.type() == "object" && @.id == $id).email_address',
             jsonb_build_object('id', p_data->>'primary_email_address_id'), true) #>> '{}',
         p_data->>'first_name', p_data->>'last_name',
         p_data->>'username', p_data->>'image_url',
         CASE WHEN v_metadata->>'role' = 'admin' THEN 'admin' ELSE 'member' END,
         v_metadata, 'synced',
         jnx._ms_to_timestamptz(p_data->'created_at'),
         jnx._ms_to_timestamptz(p_data->'updated_at'))
    ON CONFLICT (clerk_user_id) DO UPDATE SET
        email = EXCLUDED.email,
        first_name = EXCLUDED.first_name,
        last_name = EXCLUDED.last_name,
        username = EXCLUDED.username,
        image_url = EXCLUDED.image_url,
        role = EXCLUDED.role,
        public_metadata = EXCLUDED.public_metadata,
        sync_state = 'synced',
        clerk_created_at = coalesce(EXCLUDED.clerk_created_at, u.clerk_created_at),
        clerk_updated_at = coalesce(EXCLUDED.clerk_updated_at, u.clerk_updated_at),
        updated_at = now()
    WHERE u.deleted_at IS NULL
      AND (u.clerk_updated_at IS NULL OR EXCLUDED.clerk_updated_at IS NULL
           OR u.clerk_updated_at <= EXCLUDED.clerk_updated_at)
    RETURNING * INTO result;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION jnx._upsert_user(text, jsonb) FROM PUBLIC;

-- Inserts or updates a user from Clerk's user object (the webhook's "data").
-- Returns the row, or NULL when nothing was applied (stored row newer or deleted).
CREATE OR REPLACE FUNCTION jnx.upsert_user(clerk_user_id text, data jsonb) RETURNS jnx.users
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM jnx._require_object($1, $2, 'user');
    RETURN jnx._upsert_user($1, $2);
END
$$;
COMMENT ON FUNCTION jnx.upsert_user(text, jsonb) IS
    'Inserts or updates a user from Clerk''s user object; NULL when the stored row is newer or deleted.';
REVOKE ALL ON FUNCTION jnx.upsert_user(text, jsonb) FROM PUBLIC;

-- A user with no row yet, from what a membership says of them.
CREATE OR REPLACE FUNCTION jnx._provisional_user(p_clerk_user_id text, public_user_data jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO jnx.users (clerk_user_id, first_name, last_name, image_url, sync_state)
    VALUES (p_clerk_user_id, public_user_data->>'first_name', public_user_data->>'last_name',
            public_user_data->>'image_url', 'provisional')
    ON CONFLICT (clerk_user_id) DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION jnx._provisional_user(text, jsonb) FROM PUBLIC;

-- user.deleted: a tombstone. Personal fields are cleared, memberships end, and
-- nothing older resurrects the row. deleted_at is Clerk's event time, so every
-- order of events leaves the same row. NULL when already deleted.
CREATE OR REPLACE FUNCTION jnx._delete_user(p_clerk_user_id text, deleted timestamptz)
RETURNS jnx.users LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result jnx.users;
BEGIN
    IF p_clerk_user_id IS NULL OR p_clerk_user_id = '' THEN
        RAISE EXCEPTION 'user id is required' USING ERRCODE = 'JX310';
    END IF;
    INSERT INTO jnx.users AS u (clerk_user_id, sync_state, deleted_at)
    VALUES (p_clerk_user_id, 'synced', deleted)
    ON CONFLICT (clerk_user_id) DO UPDATE SET
        email = NULL, first_name = NULL, last_name = NULL, username = NULL, image_url = NULL,
        role = 'member', org_id = NULL, public_metadata = '{}', sync_state = 'synced',
        clerk_created_at = NULL, clerk_updated_at = NULL,
        deleted_at = EXCLUDED.deleted_at, updated_at = now()
    WHERE u.deleted_at IS NULL
    RETURNING * INTO result;
    IF result.id IS NOT NULL THEN
        UPDATE jnx.memberships SET deleted_at = least(deleted_at, deleted), updated_at = now()
         WHERE user_id = result.id AND deleted_at IS DISTINCT FROM least(deleted_at, deleted);
    END IF;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION jnx._delete_user(text, timestamptz) FROM PUBLIC;

-- Organizations --------------------------------------------------------------

CREATE OR REPLACE FUNCTION jnx.upsert_organization(clerk_org_id text, data jsonb) RETURNS jnx.orgs
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    p_id CONSTANT text := $1;
    p_data CONSTANT jsonb := $2;
    result jnx.orgs;
BEGIN
    PERFORM jnx._require_object(p_id, p_data, 'organization');
    INSERT INTO jnx.orgs AS o
        (clerk_org_id, name, slug, image_url, created_by, public_metadata, sync_state,
         clerk_created_at, clerk_updated_at)
    VALUES
        (p_id, p_data->>'name', p_data->>'slug', p_data->>'image_url', p_data->>'created_by',
         jnx._json_object_or_empty(p_data->'public_metadata'), 'synced',
         jnx._ms_to_timestamptz(p_data->'created_at'),
         jnx._ms_to_timestamptz(p_data->'updated_at'))
    ON CONFLICT (clerk_org_id) DO UPDATE SET
        name = EXCLUDED.name,
        slug = EXCLUDED.slug,
        image_url = EXCLUDED.image_url,
        created_by = coalesce(EXCLUDED.created_by, o.created_by),
        public_metadata = EXCLUDED.public_metadata,
        sync_state = 'synced',
        clerk_created_at = coalesce(EXCLUDED.clerk_created_at, o.clerk_created_at),
        clerk_updated_at = coalesce(EXCLUDED.clerk_updated_at, o.clerk_updated_at),
        updated_at = now()
    WHERE o.deleted_at IS NULL
      AND (o.clerk_updated_at IS NULL OR EXCLUDED.clerk_updated_at IS NULL
           OR o.clerk_updated_at <= EXCLUDED.clerk_updated_at)
    RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION jnx.upsert_organization(text, jsonb) IS
    'Inserts or updates an organization from Clerk''s organization object; NULL when the stored row is newer or deleted.';
REVOKE ALL ON FUNCTION jnx.upsert_organization(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._provisional_org(p_clerk_org_id text, organization jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO jnx.orgs (clerk_org_id, name, slug, image_url, sync_state)
    VALUES (p_clerk_org_id, organization->>'name', organization->>'slug',
            organization->>'image_url', 'provisional')
    ON CONFLICT (clerk_org_id) DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION jnx._provisional_org(text, jsonb) FROM PUBLIC;

-- organization.deleted: a tombstone; its memberships end; its members stay and
-- their active org moves to another live membership, or to NULL.
CREATE OR REPLACE FUNCTION jnx._delete_organization(p_clerk_org_id text, deleted timestamptz)
RETURNS jnx.orgs LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result jnx.orgs;
    members uuid[];
    member uuid;
BEGIN
    IF p_clerk_org_id IS NULL OR p_clerk_org_id = '' THEN
        RAISE EXCEPTION 'organization id is required' USING ERRCODE = 'JX310';
    END IF;
    INSERT INTO jnx.orgs AS o (clerk_org_id, sync_state, deleted_at)
    VALUES (p_clerk_org_id, 'synced', deleted)
    ON CONFLICT (clerk_org_id) DO UPDATE SET
        name = NULL, slug = NULL, image_url = NULL, created_by = NULL, public_metadata = '{}',
        sync_state = 'synced', clerk_created_at = NULL, clerk_updated_at = NULL,
        deleted_at = EXCLUDED.deleted_at, updated_at = now()
    WHERE o.deleted_at IS NULL
    RETURNING * INTO result;
    IF result.id IS NULL THEN
        RETURN result;
    END IF;
    -- Its members (and anyone whose active org it was), locked before their
    -- memberships in id order: the lock order of every path.
    SELECT array_agg(id ORDER BY id) INTO members FROM (
        SELECT u.id FROM jnx.users u
         WHERE u.id IN (SELECT m.user_id FROM jnx.memberships m WHERE m.org_id = result.id)
            OR u.org_id = result.id
         ORDER BY u.id FOR NO KEY UPDATE) AS locked;
    UPDATE jnx.memberships SET deleted_at = least(deleted_at, deleted), updated_at = now()
     WHERE org_id = result.id AND deleted_at IS DISTINCT FROM least(deleted_at, deleted);
    FOREACH member IN ARRAY coalesce(members, '{}') LOOP
        PERFORM jnx._refresh_active_org(member);
    END LOOP;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION jnx._delete_organization(text, timestamptz) FROM PUBLIC;

-- Memberships ----------------------------------------------------------------

-- The user and org of a membership object, created provisionally when they
-- have not arrived yet, and locked (org shared, user for update) so that a
-- concurrent deletion of either waits for us or is seen by us.
CREATE OR REPLACE FUNCTION jnx._membership_parties(data jsonb, OUT user_row jnx.users,
                                                   OUT org_row jnx.orgs)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_org text := data->'organization'->>'id';
    v_user text := data->'public_user_data'->>'user_id';
BEGIN
    IF jsonb_typeof(data->'organization'->'id') IS DISTINCT FROM 'string' OR v_org = '' THEN
        RAISE EXCEPTION 'membership data has no organization.id' USING ERRCODE = 'JX310';
    END IF;
    IF jsonb_typeof(data->'public_user_data'->'user_id') IS DISTINCT FROM 'string' OR v_user = '' THEN
        RAISE EXCEPTION 'membership data has no public_user_data.user_id' USING ERRCODE = 'JX310';
    END IF;
    PERFORM jnx._provisional_org(v_org, data->'organization');
    SELECT * INTO org_row FROM jnx.orgs WHERE clerk_org_id = v_org FOR SHARE;
    PERFORM jnx._provisional_user(v_user, data->'public_user_data');
    SELECT * INTO user_row FROM jnx.users WHERE clerk_user_id = v_user FOR NO KEY UPDATE;
END
$$;
REVOKE ALL ON FUNCTION jnx._membership_parties(jsonb) FROM PUBLIC;

-- Inserts or updates a membership from Clerk's membership object (newer data
-- wins, also on a membership that has ended). A membership of a deleted user
-- or org is stored ended, so that every order of events leaves the same rows.
-- NULL when nothing was applied (the stored row is newer).
CREATE OR REPLACE FUNCTION jnx.upsert_membership(clerk_membership_id text, data jsonb)
RETURNS jnx.memberships
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN jnx._write_membership($1, $2, NULL);
END
$$;
COMMENT ON FUNCTION jnx.upsert_membership(text, jsonb) IS
    'Inserts or updates a membership from Clerk''s membership object, creating provisional user and org rows when needed.';
REVOKE ALL ON FUNCTION jnx.upsert_membership(text, jsonb) FROM PUBLIC;

-- The one writer of memberships. ended: when this event itself ends the
-- membership (organizationMembership.deleted), else NULL.
CREATE OR REPLACE FUNCTION jnx._write_membership(p_id text, p_data jsonb, ended timestamptz)
RETURNS jnx.memberships
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parties record;
    v_ended timestamptz;
    result jnx.memberships;
BEGIN
    PERFORM jnx._require_object(p_id, p_data, 'membership');
    IF ended IS NULL AND (jsonb_typeof(p_data->'role') IS DISTINCT FROM 'string'
                          OR p_data->>'role' = '') THEN
        RAISE EXCEPTION 'membership data has no role' USING ERRCODE = 'JX310';
    END IF;
    SELECT * INTO parties FROM jnx._membership_parties(p_data);
    v_ended := least(ended, (parties.user_row).deleted_at, (parties.org_row).deleted_at);

    INSERT INTO jnx.memberships AS m
        (clerk_membership_id, user_id, org_id, role, permissions, public_metadata,
         clerk_created_at, clerk_updated_at, deleted_at)
    VALUES
        (p_id, (parties.user_row).id, (parties.org_row).id, coalesce(p_data->>'role', ''),
         CASE WHEN jsonb_typeof(p_data->'permissions') = 'array'
              THEN ARRAY(SELECT jsonb_array_elements_text(p_data->'permissions'))
              ELSE '{}'::text[] END,
         jnx._json_object_or_empty(p_data->'public_metadata'),
         jnx._ms_to_timestamptz(p_data->'created_at'),
         jnx._ms_to_timestamptz(p_data->'updated_at'), v_ended)
    ON CONFLICT (clerk_membership_id) DO UPDATE SET
        -- Fields follow the newest data (stored newer: kept); the end only
        -- ever moves earlier.
        role = CASE WHEN (m.clerk_updated_at > EXCLUDED.clerk_updated_at) IS TRUE THEN m.role ELSE EXCLUDED.role END,
        permissions = CASE WHEN (m.clerk_updated_at > EXCLUDED.clerk_updated_at) IS TRUE THEN m.permissions ELSE EXCLUDED.permissions END,
        public_metadata = CASE WHEN (m.clerk_updated_at > EXCLUDED.clerk_updated_at) IS TRUE THEN m.public_metadata
                               ELSE EXCLUDED.public_metadata END,
        clerk_created_at = coalesce(m.clerk_created_at, EXCLUDED.clerk_created_at),
        clerk_updated_at = greatest(m.clerk_updated_at, EXCLUDED.clerk_updated_at),
        deleted_at = least(m.deleted_at, EXCLUDED.deleted_at),
        updated_at = now()
    WHERE NOT (m.clerk_updated_at > EXCLUDED.clerk_updated_at) IS TRUE
       OR m.deleted_at IS DISTINCT FROM least(m.deleted_at, EXCLUDED.deleted_at)
    RETURNING * INTO result;
    IF result.id IS NOT NULL THEN
        PERFORM jnx._refresh_active_org((parties.user_row).id);
    END IF;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION jnx._write_membership(text, jsonb, timestamptz) FROM PUBLIC;

-- organizationMembership.deleted (which carries the whole membership): ends
-- it, inserting it ended if it never arrived.
CREATE OR REPLACE FUNCTION jnx._delete_membership(p_clerk_membership_id text, data jsonb,
                                                  deleted timestamptz)
RETURNS jnx.memberships LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx._write_membership(p_clerk_membership_id, data, deleted);
END
$$;
REVOKE ALL ON FUNCTION jnx._delete_membership(text, jsonb, timestamptz) FROM PUBLIC;

-- Reading --------------------------------------------------------------------

-- A user with the active org and live memberships, in one query. NULL when the
-- user is unknown or deleted. Internal (owner only), under its callers'
-- pinned path: get_user_by_clerk_id and me().
CREATE OR REPLACE FUNCTION jnx._profile(p_clerk_user_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'id', u.id, 'clerk_user_id', u.clerk_user_id, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'username', u.username,
        'image_url', u.image_url, 'role', u.role, 'public_metadata', u.public_metadata,
        'sync_state', u.sync_state, 'created_at', u.created_at, 'updated_at', u.updated_at,
        'org', (SELECT jsonb_build_object('id', o.id, 'clerk_org_id', o.clerk_org_id,
                                          'name', o.name, 'slug', o.slug, 'image_url', o.image_url)
                  FROM jnx.orgs o WHERE o.id = u.org_id AND o.deleted_at IS NULL),
        'memberships', coalesce(
            (SELECT jsonb_agg(jsonb_build_object(
                        'clerk_membership_id', m.clerk_membership_id, 'role', m.role,
                        'permissions', to_jsonb(m.permissions),
                        'org', jsonb_build_object('id', o.id, 'clerk_org_id', o.clerk_org_id,
                                                  'name', o.name, 'slug', o.slug))
                        ORDER BY m.clerk_created_at NULLS LAST, m.clerk_membership_id)
               FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
              WHERE m.user_id = u.id AND m.deleted_at IS NULL AND o.deleted_at IS NULL),
            '[]'::jsonb))
      FROM jnx.users u
     WHERE u.clerk_user_id = p_clerk_user_id AND u.deleted_at IS NULL);
END
$$;
REVOKE ALL ON FUNCTION jnx._profile(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.get_user_by_clerk_id(clerk_user_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx._profile($1);
END
$$;
COMMENT ON FUNCTION jnx.get_user_by_clerk_id(text) IS
    'The user with active org and memberships, as jsonb; NULL when unknown or deleted.';
REVOKE ALL ON FUNCTION jnx.get_user_by_clerk_id(text) FROM PUBLIC;
-- Verifying and applying deliveries: jnx.ingest_clerk_webhook, jnx.replay_webhook.

-- Applies one verified payload in the caller's transaction. Data that can
-- never be applied (class 22, class 23, class 54 such as a document nested
-- deeper than the stack allows, JX310) is caught here and reported as
-- outcome 'dead_letter'; anything else (serialization failure, deadlock,
-- shutdown) propagates, so the whole delivery rolls back and can be retried.
-- Internal: called only by ingest_clerk_webhook and replay_webhook, which pin
-- search_path; it runs under theirs.
CREATE OR REPLACE FUNCTION jnx._apply_event(
    msg_id text, body bytea,
    OUT outcome text, OUT event_type text, OUT failure text, OUT failure_state text)
LANGUAGE plpgsql AS $$
DECLARE
    event jsonb;
    data jsonb;
    object_id text;
    happened timestamptz;
    applied boolean;
    message text;
BEGIN
    PERFORM set_config('jnx.audit_actor', 'clerk:webhook', true);
    PERFORM set_config('jnx.request_id', msg_id, true);
    BEGIN
        event := convert_from(body, 'UTF8')::jsonb;
        IF jsonb_typeof(event) <> 'object'
           OR jsonb_typeof(event->'type') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'payload is not a Clerk event' USING ERRCODE = 'JX310';
        END IF;
        event_type := event->>'type';
        data := event->'data';
        -- When Clerk says the event happened (ms); deletions are stamped with it.
        happened := coalesce(jnx._ms_to_timestamptz(event->'timestamp'), now());

        IF event_type IN ('user.created', 'user.updated', 'user.deleted',
                          'organization.created', 'organization.updated', 'organization.deleted',
                          'organizationMembership.created', 'organizationMembership.updated',
                          'organizationMembership.deleted') THEN
            IF jsonb_typeof(data->'id') IS DISTINCT FROM 'string' OR data->>'id' = '' THEN
                RAISE EXCEPTION 'event data has no id' USING ERRCODE = 'JX310';
            END IF;
            object_id := data->>'id';  -- so data is an object and its id is object_id
        END IF;

        applied := CASE event_type
            WHEN 'user.created' THEN (jnx._upsert_user(object_id, data)).id IS NOT NULL
            WHEN 'user.updated' THEN (jnx._upsert_user(object_id, data)).id IS NOT NULL
            WHEN 'user.deleted' THEN (jnx._delete_user(object_id, happened)).id IS NOT NULL
            WHEN 'organization.created' THEN (jnx.upsert_organization(object_id, data)).id IS NOT NULL
            WHEN 'organization.updated' THEN (jnx.upsert_organization(object_id, data)).id IS NOT NULL
            WHEN 'organization.deleted' THEN (jnx._delete_organization(object_id, happened)).id IS NOT NULL
            WHEN 'organizationMembership.created' THEN (jnx.upsert_membership(object_id, data)).id IS NOT NULL
            WHEN 'organizationMembership.updated' THEN (jnx.upsert_membership(object_id, data)).id IS NOT NULL
            WHEN 'organizationMembership.deleted' THEN (jnx._delete_membership(object_id, data, happened)).id IS NOT NULL
        END;
        outcome := CASE WHEN applied IS NULL THEN 'ignored'
                        WHEN applied THEN 'processed' ELSE 'stale' END;
    EXCEPTION
        WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded
             OR SQLSTATE 'JX310' THEN
            GET STACKED DIAGNOSTICS failure_state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
            outcome := 'dead_letter';
            failure := failure_state || ': ' || message;
    END;
END
$$;
REVOKE ALL ON FUNCTION jnx._apply_event(text, bytea) FROM PUBLIC;

-- Verifies and applies one Clerk delivery in the caller's transaction.
-- Returns {"status": processed|duplicate|stale|ignored|dead_letter, "type": ...}.
--
-- The ledger row is written once, after the event was applied, with its
-- outcome: writing it first and updating it afterwards copied the stored
-- payload into a second row version on every delivery. Copies of one
-- delivery are kept apart by a transaction-level advisory lock on the svix-id
-- (class 0x6A6E7801, key hashtext(svix_id); two ids with one hash only wait
-- for each other): a concurrent copy waits for the first to commit, then
-- finds its row and answers duplicate (or applies it, if the first rolled
-- back).
CREATE OR REPLACE FUNCTION jnx.ingest_clerk_webhook(
    svix_id text, svix_timestamp text, svix_signature text, body bytea)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    msg_id CONSTANT text := $1;
    existing_type text;
    r record;
BEGIN
    -- Raises JX001..JX004 unless the signature is valid: nothing is written.
    PERFORM jnx.verify_webhook(msg_id, $2, $3, $4);

    PERFORM pg_advisory_xact_lock(1785624577, hashtext(msg_id));
    SELECT type INTO existing_type FROM jnx.webhook_events WHERE svix_id = msg_id;
    IF FOUND THEN
        RETURN jsonb_build_object('status', 'duplicate', 'type', existing_type);
    END IF;

    r := jnx._apply_event(msg_id, $4);
    INSERT INTO jnx.webhook_events
        (svix_id, type, status, error, payload, svix_timestamp, processed_at)
    VALUES (msg_id, r.event_type, r.outcome, r.failure, $4, to_timestamp($2::bigint), now())
    ON CONFLICT (svix_id) DO NOTHING;
    IF NOT FOUND THEN
        -- Only a snapshot older than a copy's commit (REPEATABLE READ or
        -- SERIALIZABLE caller) gets here: undo it all, the retry answers
        -- duplicate.
        RAISE EXCEPTION 'this delivery was applied concurrently'
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF r.outcome = 'dead_letter' THEN
        INSERT INTO jnx.system_events (kind, severity, details)
            VALUES ('webhook.dead_letter', 'error',
                    jsonb_build_object('svix_id', msg_id, 'type', r.event_type,
                                       'sqlstate', r.failure_state));
    END IF;
    RETURN jsonb_build_object('status', r.outcome, 'type', r.event_type);
END
$$;
COMMENT ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) IS
    'Verifies a Clerk (Svix) delivery and applies it in this transaction, exactly once per svix-id.';
REVOKE ALL ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) FROM PUBLIC;

-- Re-applies a dead letter from its stored payload (verified when it was
-- received), after the cause was fixed. Returns the new outcome.
CREATE OR REPLACE FUNCTION jnx.replay_webhook(svix_id text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    msg_id CONSTANT text := $1;
    ev jnx.webhook_events;
    r record;
BEGIN
    SELECT * INTO ev FROM jnx.webhook_events WHERE svix_id = msg_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no webhook delivery with this svix-id' USING ERRCODE = 'JX320';
    END IF;
    IF ev.status <> 'dead_letter' THEN
        RAISE EXCEPTION 'only dead letters can be replayed'
            USING ERRCODE = 'JX321', DETAIL = format('The delivery is %s.', ev.status);
    END IF;
    r := jnx._apply_event(msg_id, ev.payload);
    UPDATE jnx.webhook_events
       SET type = r.event_type, status = r.outcome, error = r.failure,
           attempts = attempts + 1, processed_at = now()
     WHERE svix_id = msg_id;
    INSERT INTO jnx.system_events (kind, severity, details)
        VALUES ('webhook.replayed', CASE WHEN r.outcome = 'dead_letter' THEN 'error' ELSE 'info' END,
                jsonb_build_object('svix_id', msg_id, 'type', r.event_type, 'status', r.outcome,
                                   'attempts', ev.attempts + 1, 'by', current_user));
    RETURN jsonb_build_object('status', r.outcome, 'type', r.event_type,
                              'attempts', ev.attempts + 1);
END
$$;
COMMENT ON FUNCTION jnx.replay_webhook(text) IS
    'Re-applies a dead-lettered delivery from its stored payload; owner only.';
REVOKE ALL ON FUNCTION jnx.replay_webhook(text) FROM PUBLIC;
-- Roles, privileges and row-level security. Idempotent: runs on install and
-- on every upgrade.
--
--   anon               nothing
--   authenticated      reads what its identity may see (policies below)
--   service_role       reads the synced tables (a trusted backend); writes nothing
--   jnx_authenticator  the shim's login role: only ingest and authenticate, and
--                      SET ROLE to anon/authenticated (NOINHERIT: it holds no
--                      privilege of theirs unless it switches)
-- Roles are created when missing (they are cluster-wide, Supabase has them) and
-- are not dropped with the extension.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jnx_authenticator') THEN
        CREATE ROLE jnx_authenticator LOGIN NOINHERIT;
    END IF;
END
$$;
GRANT anon, authenticated TO jnx_authenticator;
-- The shim binds tokens and webhook bodies (emails, names) as parameters.
-- PostgreSQL logs bound parameter values next to a statement logged for its
-- duration or by log_statement, and on error when asked to: never for this role.
ALTER ROLE jnx_authenticator SET log_parameter_max_length = 0;
ALTER ROLE jnx_authenticator SET log_parameter_max_length_on_error = 0;

-- Functions. Everything was revoked from PUBLIC where it was created.
GRANT EXECUTE ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) TO jnx_authenticator;
GRANT EXECUTE ON FUNCTION jnx.authenticate(text) TO jnx_authenticator;
GRANT EXECUTE ON FUNCTION jnx.claims(), jnx.user_id(), jnx.org_id(), jnx.org_role(), jnx.is_admin(),
    jnx._is_org_admin(), jnx._active_org_live(), jnx._my_org_ids(), jnx._require_identity(), jnx.me(),
    jnx.admin_list_users(text) TO authenticated;
GRANT EXECUTE ON FUNCTION jnx.get_user_by_clerk_id(text) TO service_role;

-- Tables: reads only, and only the synced data. Configuration, secrets,
-- deliveries and system events stay with the owner.
GRANT SELECT ON jnx.users, jnx.orgs, jnx.memberships, jnx.audit_logs TO authenticated, service_role;

-- Row-level security, enabled and forced everywhere: the owner's own access
-- goes through an explicit policy, created for whoever installs.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'orgs', 'memberships', 'audit_logs', 'webhook_events',
                             'system_events', 'webhook_secrets', 'token_config'] LOOP
        EXECUTE format('ALTER TABLE jnx.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE jnx.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS owner_all ON jnx.%I', t);
        EXECUTE format('CREATE POLICY owner_all ON jnx.%I TO %I USING (true) WITH CHECK (true)',
                       t, (SELECT rolname FROM pg_roles WHERE oid = (
                              SELECT relowner FROM pg_class WHERE oid = format('jnx.%I', t)::regclass)));
    END LOOP;
    FOREACH t IN ARRAY ARRAY['users', 'orgs', 'memberships', 'audit_logs'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS service_role_read ON jnx.%I', t);
        EXECUTE format('CREATE POLICY service_role_read ON jnx.%I FOR SELECT TO service_role USING (true)', t);
    END LOOP;
END
$$;

-- Each function call is wrapped in (SELECT ...): an InitPlan, evaluated once
-- per statement instead of once per row.

-- A user sees their own row, the members of their orgs, and everything when a
-- platform admin.
DROP POLICY IF EXISTS member_read ON jnx.users;
CREATE POLICY member_read ON jnx.users FOR SELECT TO authenticated USING (
    clerk_user_id = (SELECT jnx.user_id())
    OR (SELECT jnx.is_admin())
    OR (deleted_at IS NULL AND id IN (SELECT m.user_id FROM jnx.memberships m
                                       WHERE m.deleted_at IS NULL
                                         AND m.org_id IN (SELECT jnx._my_org_ids()))));

-- Their orgs (memberships, and the token's active org).
DROP POLICY IF EXISTS member_read ON jnx.orgs;
CREATE POLICY member_read ON jnx.orgs FOR SELECT TO authenticated USING (
    id IN (SELECT jnx._my_org_ids()) OR (SELECT jnx.is_admin()));

-- The memberships of their orgs.
DROP POLICY IF EXISTS member_read ON jnx.memberships;
CREATE POLICY member_read ON jnx.memberships FOR SELECT TO authenticated USING (
    org_id IN (SELECT jnx._my_org_ids()) OR (SELECT jnx.is_admin()));

-- Org admins read their active org's audit log; platform admins read all.
DROP POLICY IF EXISTS admin_read ON jnx.audit_logs;
CREATE POLICY admin_read ON jnx.audit_logs FOR SELECT TO authenticated USING (
    (SELECT jnx.is_admin())
    OR ((SELECT jnx._is_org_admin())
        AND org_id = (SELECT o.id FROM jnx.orgs o WHERE o.clerk_org_id = jnx.org_id())));
-- Privileges. Every table and function above revoked PUBLIC access where it
-- was created; the schema itself is usable by all, so that pure functions
-- (jnx.webhook_sign) work for anyone and each object's own grant decides.
GRANT USAGE ON SCHEMA jnx TO PUBLIC;

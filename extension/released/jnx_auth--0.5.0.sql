-- jnx_auth install script, assembled from extension/schema/*.sql at build time.
\echo Use "CREATE EXTENSION jnx_auth" to load this file. \quit
-- Tables, indexes and table privileges: install only. An upgrade script makes
-- the same changes by ALTER, so columns are only ever appended and every
-- constraint and index is named (test/upgrade checks both give one schema).

-- The closed vocabularies of a few columns, as domains rather than table
-- CHECK constraints: PostgreSQL 15 rebuilds and plans a table's CHECK
-- expressions for every INSERT or UPDATE statement (about 6 us each, a tenth
-- of a webhook's cost for three of them), while a domain's constraint is
-- prepared once per backend. The rule is the same; a client sees text.
CREATE DOMAIN jnx.sync_state AS text
    CONSTRAINT sync_state_check CHECK (VALUE IN ('provisional', 'synced'));
CREATE DOMAIN jnx.user_role AS text
    CONSTRAINT user_role_check CHECK (VALUE IN ('member', 'admin'));
CREATE DOMAIN jnx.webhook_status AS text
    CONSTRAINT webhook_status_check
    CHECK (VALUE IN ('processing', 'processed', 'stale', 'ignored', 'dead_letter'));

-- Accepted Svix signing secrets. Readable and writable by the extension owner
-- only (no grants; row-level security forced, see 70_security.sql). Backends cache the
-- decoded keys; the config_changed trigger drops that cache on every change.
CREATE TABLE jnx.webhook_secrets (
    position   int PRIMARY KEY CHECK (position BETWEEN 1 AND 16),
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.webhook_secrets IS
    'Accepted Svix signing secrets (several during rotation). Owner only; set with jnx.set_webhook_secrets().';
REVOKE ALL ON jnx.webhook_secrets FROM PUBLIC;

-- Session-token verification settings: one row, owner only, cached per
-- backend like the webhook secrets.
CREATE TABLE jnx.token_config (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    jwks               jsonb,
    issuers            text[] NOT NULL DEFAULT '{}',
    authorized_parties text[] NOT NULL DEFAULT '{}',
    leeway_seconds     int NOT NULL DEFAULT 5 CHECK (leeway_seconds BETWEEN 0 AND 300),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.token_config IS
    'Session-token verification: JWKS, issuers, authorized parties, leeway. Owner only.';
REVOKE ALL ON jnx.token_config FROM PUBLIC;

-- Configuration changes, dead letters, replays: what an operator looks at.
CREATE TABLE jnx.system_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    severity   text NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'error')),
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX system_events_created_at_idx ON jnx.system_events (created_at);
REVOKE ALL ON jnx.system_events FROM PUBLIC;

-- The default of the uuid primary keys below: time-ordered (RFC 9562,
-- version 7), so that new keys go to the right edge of their index instead
-- of a random page (extension/core/uuid.h). Owner only: every write to these
-- tables runs with the owner's rights.
CREATE FUNCTION jnx._uuid_v7() RETURNS uuid
AS 'MODULE_PATHNAME', 'jnx_uuid_v7'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._uuid_v7() FROM PUBLIC;

-- Clerk organizations. A row may be provisional (created from a membership
-- that arrived first); deletion is a tombstone (deleted_at, fields cleared).
CREATE TABLE jnx.orgs (
    id               uuid PRIMARY KEY DEFAULT jnx._uuid_v7(),
    clerk_org_id     text NOT NULL UNIQUE,
    name             text,
    slug             text,
    image_url        text,
    created_by       text,  -- a Clerk user id
    public_metadata  jsonb NOT NULL DEFAULT '{}',
    sync_state       jnx.sync_state NOT NULL DEFAULT 'provisional',
    clerk_created_at timestamptz,
    clerk_updated_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
COMMENT ON TABLE jnx.orgs IS 'Clerk organizations, one row per clerk_org_id.';
REVOKE ALL ON jnx.orgs FROM PUBLIC;

CREATE TABLE jnx.users (
    id               uuid PRIMARY KEY DEFAULT jnx._uuid_v7(),
    clerk_user_id    text NOT NULL UNIQUE,
    email            text,
    first_name       text,
    last_name        text,
    username         text,
    image_url        text,
    role             jnx.user_role NOT NULL DEFAULT 'member',
    -- The active organization: deleting an org never deletes its users.
    org_id           uuid CONSTRAINT users_org_id_fkey REFERENCES jnx.orgs (id) ON DELETE SET NULL,
    public_metadata  jsonb NOT NULL DEFAULT '{}',
    sync_state       jnx.sync_state NOT NULL DEFAULT 'provisional',
    clerk_created_at timestamptz,
    clerk_updated_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    -- Set by jnx.erase_user (or retention after the grace period): every
    -- personal value of the person is gone; the row stays as a tombstone.
    erased_at        timestamptz
);
CREATE INDEX users_org_id_idx ON jnx.users (org_id);
COMMENT ON TABLE jnx.users IS 'Clerk users, one row per clerk_user_id.';
REVOKE ALL ON jnx.users FROM PUBLIC;

CREATE TABLE jnx.memberships (
    id                  uuid PRIMARY KEY DEFAULT jnx._uuid_v7(),
    clerk_membership_id text NOT NULL UNIQUE,
    user_id             uuid NOT NULL
                        CONSTRAINT memberships_user_id_fkey REFERENCES jnx.users (id) ON DELETE CASCADE,
    org_id              uuid NOT NULL
                        CONSTRAINT memberships_org_id_fkey REFERENCES jnx.orgs (id) ON DELETE CASCADE,
    role                text NOT NULL,  -- as Clerk sends it: org:admin, org:member, admin, basic_member, org:<custom>
    permissions         text[] NOT NULL DEFAULT '{}',
    public_metadata     jsonb NOT NULL DEFAULT '{}',
    clerk_created_at    timestamptz,
    clerk_updated_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX memberships_user_id_idx ON jnx.memberships (user_id);
CREATE INDEX memberships_org_id_idx ON jnx.memberships (org_id);
COMMENT ON TABLE jnx.memberships IS 'Clerk organization memberships, one row per clerk_membership_id.';
REVOKE ALL ON jnx.memberships FROM PUBLIC;

-- One row per Svix message id: the idempotency key, and the event kept for
-- replay and export (without event_attributes.http_request: the client's IP
-- address and user agent are never stored). payload is NULL once retention
-- or an erasure dropped it; the row itself stays (idempotency, dead letters).
CREATE TABLE jnx.webhook_events (
    svix_id        text PRIMARY KEY,
    type           text,
    status         jnx.webhook_status NOT NULL,
    attempts       int NOT NULL DEFAULT 1,
    error          text,
    -- lz4: a Clerk event (2-3 KB of JSON) fits in the row compressed, at a
    -- fraction of the default pglz's cost.
    payload        bytea COMPRESSION lz4,
    svix_timestamp timestamptz,
    received_at    timestamptz NOT NULL DEFAULT now(),
    processed_at   timestamptz,
    -- The Clerk user the event is about (user.*: data.id; memberships:
    -- public_user_data.user_id; others: data.user_id), for export and erasure.
    clerk_user_id  text
);
CREATE INDEX webhook_events_received_at_idx ON jnx.webhook_events (received_at);
CREATE INDEX webhook_events_dead_letter_idx ON jnx.webhook_events (received_at)
    WHERE status = 'dead_letter';
-- The deliveries about one person (export, erasure). Not partial: PostgreSQL
-- prepares a partial index's predicate again for every INSERT statement, and
-- three of them cost ingest 8% of its throughput.
CREATE INDEX webhook_events_subject_idx ON jnx.webhook_events (clerk_user_id, received_at);
REVOKE ALL ON jnx.webhook_events FROM PUBLIC;

-- Append-only (see the append_only triggers). details names the fields that
-- changed, never their values.
CREATE TABLE jnx.audit_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text,
    org_id      uuid,
    request_id  text,
    details     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- BRIN: the log is append-only, so created_at follows the physical order; a
-- range index costs next to nothing per insert, where a btree cost every
-- audited change a descent.
CREATE INDEX audit_logs_created_at_idx ON jnx.audit_logs USING brin (created_at)
    WITH (autosummarize = on);
CREATE INDEX audit_logs_org_id_idx ON jnx.audit_logs (org_id, created_at);
CREATE INDEX audit_logs_target_idx ON jnx.audit_logs (target_type, target_id);
REVOKE ALL ON jnx.audit_logs FROM PUBLIC;

-- Users deleted in Clerk whose hard erasure is still to come: written when a
-- user.deleted makes the tombstone (which clears the email: the queue keeps
-- the addresses, so that the erasure can still find payloads naming them),
-- removed by the erasure. apply_retention
-- reads it instead of an index on users (see webhook_events_subject_idx).
CREATE TABLE jnx.erasure_queue (
    clerk_user_id text PRIMARY KEY,
    since         timestamptz NOT NULL,        -- when the user.deleted arrived: the grace starts
    emails        text[] NOT NULL DEFAULT '{}' -- the addresses they had, to find them after
);
COMMENT ON TABLE jnx.erasure_queue IS
    'Users deleted in Clerk, waiting for their hard erasure after the grace period. Owner only.';
REVOKE ALL ON jnx.erasure_queue FROM PUBLIC;

-- Retention windows (jnx.set_retention) and how far jnx.apply_retention has
-- got. No row: the defaults. Owner only.
CREATE TABLE jnx.retention_config (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    webhook_payload_days    int NOT NULL DEFAULT 30 CHECK (webhook_payload_days BETWEEN 1 AND 3650),
    deleted_user_grace_days int NOT NULL DEFAULT 30 CHECK (deleted_user_grace_days BETWEEN 0 AND 3650),
    audit_days              int DEFAULT 365 CHECK (audit_days BETWEEN 1 AND 36500),
    -- Every payload received before this was dropped: the next run starts here.
    payloads_dropped_before timestamptz NOT NULL DEFAULT '-infinity',
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.retention_config IS
    'Retention windows for payloads, deleted users and audit rows. Owner only; set with jnx.set_retention().';
REVOKE ALL ON jnx.retention_config FROM PUBLIC;

-- pg_dump skips extension tables unless they are marked as configuration.
SELECT pg_catalog.pg_extension_config_dump('jnx.webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.system_events', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.users', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.webhook_events', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.audit_logs', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.orgs', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.memberships', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.token_config', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.retention_config', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.erasure_queue', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jnx.system_events', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jnx.audit_logs', 'id'), '');
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
        RAISE EXCEPTION 'user deleted' USING ERRCODE = 'JX203', DETAIL = 'The user has been deleted.';
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
        RAISE EXCEPTION 'user deleted' USING ERRCODE = 'JX203', DETAIL = 'The user has been deleted.';
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
        RAISE EXCEPTION 'user deleted' USING ERRCODE = 'JX203', DETAIL = 'The user has been deleted.';
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

-- The one exception: jnx.apply_retention deletes rows past the audit window.
-- It marks its own DELETE with a transaction-local setting; only the owner
-- can delete from the table at all (no other role has the privilege), and
-- the owner could drop this trigger anyway: it guards against mistakes, not
-- against the owner.
CREATE OR REPLACE FUNCTION jnx._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('jnx.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
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
    old_emails text[];
BEGIN
    IF p_clerk_user_id IS NULL OR p_clerk_user_id = '' THEN
        RAISE EXCEPTION 'user id is required' USING ERRCODE = 'JX310';
    END IF;
    old_emails := jnx._known_emails(p_clerk_user_id);
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
        -- The rest of their data goes when the grace period ends
        -- (apply_retention), counted from now: a late user.deleted gets it too.
        -- The addresses they had stay with the queue row (the tombstone has
        -- just cleared its email) until the erasure.
        INSERT INTO jnx.erasure_queue (clerk_user_id, since, emails)
        VALUES (p_clerk_user_id, now(), coalesce(old_emails, '{}'))
        ON CONFLICT (clerk_user_id) DO NOTHING;
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
    -- An erased person has no memberships and gets none: a late event about
    -- them creates nothing, not even a provisional org (user_row stays NULL).
    IF EXISTS (SELECT 1 FROM jnx.users u WHERE u.clerk_user_id = v_user AND u.erased_at IS NOT NULL) THEN
        RETURN;
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
    -- Erased, before or (seen once its lock was ours) during this call.
    IF (parties.user_row).id IS NULL OR (parties.user_row).erased_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
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

-- The event without event_attributes.http_request, cut out of the bytes (in
-- C++: extension/core/event_minimize.h), also from a text no JSON parser
-- accepts, by its structure; NULL when there is nothing to remove or not even
-- the structure holds. Internal.
CREATE OR REPLACE FUNCTION jnx._minimized_event(body bytea) RETURNS bytea
AS 'MODULE_PATHNAME', 'jnx_minimized_event'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._minimized_event(bytea) FROM PUBLIC;

-- Applies one verified payload in the caller's transaction. Data that can
-- never be applied (class 22, class 23, class 54 such as a document nested
-- deeper than the stack allows, JX310) is caught here and reported as
-- outcome 'dead_letter'; anything else (serialization failure, deadlock,
-- shutdown) propagates, so the whole delivery rolls back and can be retried.
-- Internal: called only by ingest_clerk_webhook and replay_webhook, which pin
-- search_path; it runs under theirs.
--
-- It also answers what to store: subject, the Clerk user the event is about
-- (export and erasure find payloads by it), and stored, the event without
-- event_attributes.http_request (the client's IP address and user agent,
-- which nothing here needs), or NULL to store the body as it came (it did not
-- parse, or had nothing to remove).
CREATE OR REPLACE FUNCTION jnx._apply_event(
    msg_id text, body bytea,
    OUT outcome text, OUT event_type text, OUT failure text, OUT failure_state text,
    OUT subject text, OUT stored bytea)
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
    -- The client's IP address and user agent, cut out of the bytes: also
    -- from a body that turns out a dead letter below (kept for replay).
    stored := jnx._minimized_event(body);
    BEGIN
        event := convert_from(body, 'UTF8')::jsonb;
        IF jsonb_typeof(event) <> 'object'
           OR jsonb_typeof(event->'type') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'payload is not a Clerk event' USING ERRCODE = 'JX310';
        END IF;
        event_type := event->>'type';
        data := event->'data';
        -- Kept even when the event turns out a dead letter below (variables
        -- are not rolled back with the block).
        subject := CASE WHEN event_type LIKE 'user.%' THEN data->>'id'
                        ELSE coalesce(data->'public_user_data'->>'user_id', data->>'user_id') END;
        -- Only when the bytes could not be cut: jsonb prints the event again
        -- without the member.
        IF stored IS NULL AND jsonb_typeof(event->'event_attributes') = 'object'
           AND event->'event_attributes' ? 'http_request' THEN
            stored := convert_to((event #- '{event_attributes,http_request}')::text, 'UTF8');
        END IF;
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
    erased boolean := false;
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
    -- A late event about an erased person changed nothing (the tombstone
    -- refuses it) and must not bring their values back in its payload.
    -- An erasure of the same person takes this lock exclusively (class
    -- 0x6A6E7802, key hashtext of the Clerk user id): it waits for this
    -- delivery and then finds its row, or this delivery waits for it and then
    -- sees the tombstone. (Nested IF: a condition holding a subquery is run by
    -- the executor in full on every call, even when its first test is false.)
    IF r.subject IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(1785624578, hashtext(r.subject));
        IF r.outcome <> 'processed' THEN
            erased := EXISTS (SELECT 1 FROM jnx.users u
                               WHERE u.clerk_user_id = r.subject AND u.erased_at IS NOT NULL);
        END IF;
    END IF;
    INSERT INTO jnx.webhook_events
        (svix_id, type, status, error, payload, svix_timestamp, processed_at, clerk_user_id)
    VALUES (msg_id, r.event_type, r.outcome, CASE WHEN erased THEN r.failure_state ELSE r.failure END,
            CASE WHEN erased THEN NULL ELSE coalesce(r.stored, $4) END,
            to_timestamp($2::bigint), now(), r.subject)
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
    IF ev.payload IS NULL THEN
        RAISE EXCEPTION 'the payload of this delivery is no longer stored' USING ERRCODE = 'JX322',
            DETAIL = 'Retention or an erasure dropped it; ask Svix to resend the message instead.';
    END IF;
    r := jnx._apply_event(msg_id, ev.payload);
    UPDATE jnx.webhook_events
       SET type = r.event_type, status = r.outcome, error = r.failure,
           attempts = attempts + 1, processed_at = now(),
           payload = coalesce(r.stored, payload), clerk_user_id = r.subject
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
-- Personal data: export (GDPR Art. 15/20), erasure (Art. 17), retention, and
-- the imports that backfill or repair what webhooks missed.
-- docs/SECURITY.md ("Data protection") says what is stored where, and for how
-- long; docs/API.md documents each function.

-- A stored payload as JSON, or NULL when it is not JSON (a dead letter kept
-- as it came). Internal.
CREATE OR REPLACE FUNCTION jnx._payload_json(payload bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF payload IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN convert_from(payload, 'UTF8')::jsonb;
EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION jnx._payload_json(bytea) FROM PUBLIC;

-- Export ----------------------------------------------------------------------

-- Everything the schema holds about one person, as one document with stable
-- keys, and an audit row (actor, target; no values). for_self: the document
-- goes to the person (export_me), so Clerk's private_metadata, which Clerk
-- keeps from the user, is left out of the payloads. Internal: export_user and
-- export_me decide who may ask.
CREATE OR REPLACE FUNCTION jnx._export(p_clerk_user_id text, p_actor text, for_self boolean)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u jnx.users;
    doc jsonb;
BEGIN
    SELECT * INTO u FROM jnx.users WHERE clerk_user_id = p_clerk_user_id;
    doc := jsonb_build_object(
        'format', 'jnx_auth.user_export',
        'format_version', 1,
        'extension_version', (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'jnx_auth'),
        'generated_at', clock_timestamp(),
        'clerk_user_id', p_clerk_user_id,
        'profile', CASE WHEN u.id IS NOT NULL THEN
            to_jsonb(u) || jsonb_build_object('org', (
                SELECT jsonb_build_object('clerk_org_id', o.clerk_org_id, 'name', o.name, 'slug', o.slug)
                  FROM jnx.orgs o WHERE o.id = u.org_id)) END,
        'memberships', coalesce((
            SELECT jsonb_agg(((to_jsonb(m) - 'user_id') - 'org_id')
                             || jsonb_build_object('org', jsonb_build_object(
                                    'clerk_org_id', o.clerk_org_id, 'name', o.name, 'slug', o.slug,
                                    'image_url', o.image_url, 'deleted_at', o.deleted_at))
                             ORDER BY m.clerk_created_at NULLS LAST, m.clerk_membership_id)
              FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
             WHERE m.user_id = u.id), '[]'::jsonb),
        -- The person as target (their row, their memberships) or as actor.
        'audit', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'id', a.id, 'created_at', a.created_at, 'actor', a.actor, 'action', a.action,
                       'target_type', a.target_type, 'target_id', a.target_id,
                       'request_id', a.request_id, 'details', a.details) ORDER BY a.id)
              FROM jnx.audit_logs a
             WHERE a.id IN (
                   SELECT x.id FROM jnx.audit_logs x
                    WHERE x.target_type = 'user' AND x.target_id = p_clerk_user_id
                   UNION ALL
                   SELECT x.id FROM jnx.audit_logs x
                    WHERE x.target_type = 'membership'
                      AND x.target_id IN (SELECT m.clerk_membership_id FROM jnx.memberships m
                                           WHERE m.user_id = u.id)
                   -- As actor: a person changes only their own row (jnx.me()) and
                   -- creates only the orgs their token names (provisionally).
                   UNION ALL
                   SELECT x.id FROM jnx.audit_logs x
                    WHERE x.target_type = 'org' AND x.actor = p_clerk_user_id
                      AND x.target_id IN (SELECT o.clerk_org_id FROM jnx.orgs o
                                           WHERE o.id = u.org_id
                                              OR o.id IN (SELECT m.org_id FROM jnx.memberships m
                                                           WHERE m.user_id = u.id)))), '[]'::jsonb),
        -- The stored deliveries about them, with their payloads.
        'webhook_events', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'svix_id', w.svix_id, 'type', w.type, 'status', w.status,
                       'received_at', w.received_at, 'processed_at', w.processed_at,
                       'payload', CASE WHEN for_self AND jsonb_typeof(p.doc->'data') = 'object'
                                       THEN p.doc #- '{data,private_metadata}' ELSE p.doc END)
                       ORDER BY w.received_at, w.svix_id)
              FROM jnx.webhook_events w, LATERAL (SELECT jnx._payload_json(w.payload) AS doc) p
             WHERE w.clerk_user_id = p_clerk_user_id AND w.payload IS NOT NULL), '[]'::jsonb));
    INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, request_id)
    VALUES (p_actor, 'user.export', 'user', p_clerk_user_id,
            nullif(current_setting('jnx.request_id', true), ''));
    RETURN doc;
END
$$;
REVOKE ALL ON FUNCTION jnx._export(text, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.export_user(clerk_user_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF $1 IS NULL OR $1 = '' THEN
        RAISE EXCEPTION 'user id is required' USING ERRCODE = 'JX310';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM jnx.users u WHERE u.clerk_user_id = $1) THEN
        RAISE EXCEPTION 'unknown user' USING ERRCODE = 'JX332',
            DETAIL = 'No user row has this Clerk user id.';
    END IF;
    -- session_user is a name, of collation "C": left implicit, it would
    -- become the collation of every text argument of the call, and no index
    -- on a Clerk id (default collation) would serve the lookups inside.
    RETURN jnx._export($1, 'db:' || session_user::text COLLATE "default", false);
END
$$;
COMMENT ON FUNCTION jnx.export_user(text) IS
    'Everything the schema holds about a person, as jsonb (GDPR Art. 15/20); audited. Owner and service_role.';
REVOKE ALL ON FUNCTION jnx.export_user(text) FROM PUBLIC;

-- The authenticated caller's own export: the identity comes from the verified
-- token, never from an argument.
CREATE OR REPLACE FUNCTION jnx.export_me() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid CONSTANT text := coalesce(jnx.user_id(), jnx._require_identity());
BEGIN
    IF EXISTS (SELECT 1 FROM jnx.users u WHERE u.clerk_user_id = uid AND u.deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'user deleted' USING ERRCODE = 'JX203', DETAIL = 'The user has been deleted.';
    END IF;
    -- The audit row names the session, as jnx.me() does.
    PERFORM set_config('jnx.request_id', coalesce(jnx.claims()->>'sid', ''), true);
    RETURN jnx._export(uid, uid, true);
END
$$;
COMMENT ON FUNCTION jnx.export_me() IS
    'The authenticated caller''s own export (see export_user); raises JX201/JX203.';
REVOKE ALL ON FUNCTION jnx.export_me() FROM PUBLIC;

-- Erasure -------------------------------------------------------------------------

-- Every email address the schema knows the person by: their row's, the ones
-- the erasure queue kept when user.deleted cleared it, and those their stored
-- user and membership events name. Internal (owner only).
CREATE OR REPLACE FUNCTION jnx._known_emails(p_clerk_user_id text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT e ORDER BY e), '{}')
              FROM (SELECT u.email AS e FROM jnx.users u WHERE u.clerk_user_id = p_clerk_user_id
                    UNION ALL
                    SELECT unnest(q.emails) FROM jnx.erasure_queue q WHERE q.clerk_user_id = p_clerk_user_id
                    UNION ALL
                    SELECT jsonb_path_query(jnx._payload_json(w.payload),
                               'lax $.data.email_addresses[*].email_address') #>> '{}'
                      FROM jnx.webhook_events w
                     WHERE w.clerk_user_id = p_clerk_user_id AND w.payload IS NOT NULL
                    UNION ALL
                    SELECT jnx._payload_json(w.payload)->'data'->'public_user_data'->>'identifier'
                      FROM jnx.webhook_events w
                     WHERE w.clerk_user_id = p_clerk_user_id AND w.payload IS NOT NULL) AS found
             WHERE position('@' IN e) > 0);
END
$$;
REVOKE ALL ON FUNCTION jnx._known_emails(text) FROM PUBLIC;

-- Drops every stored payload that names the person without being about them
-- (an org they created, an invitation to their address): their Clerk id as a
-- JSON string, or one of their addresses. One pass over the payloads still
-- inside the payload window; it locks only the rows it changes, so it runs
-- before the erasure takes the person's row. Internal (owner only).
CREATE OR REPLACE FUNCTION jnx._erase_mentions(p_clerk_user_id text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    needles bytea[];
    since timestamptz;
    n int;
BEGIN
    SELECT array_agg(convert_to(v, 'UTF8')) INTO needles
      FROM unnest(jnx._known_emails(p_clerk_user_id) || ('"' || p_clerk_user_id || '"')) AS v;
    SELECT c.payloads_dropped_before INTO since FROM jnx.retention_config c;
    UPDATE jnx.webhook_events w SET payload = NULL, error = left(w.error, 5)
     WHERE w.payload IS NOT NULL AND w.received_at >= coalesce(since, '-infinity')
       AND EXISTS (SELECT 1 FROM unnest(needles) AS x(needle) WHERE position(x.needle IN w.payload) > 0);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION jnx._erase_mentions(text) FROM PUBLIC;

-- Erases one person, whoever asks (erase_user) or when their grace period
-- ends (apply_retention). Afterwards:
--  * their row is a tombstone: every personal column cleared, deleted_at and
--    erased_at set; it keeps late events from bringing them back;
--  * their memberships are deleted (their orgs stay);
--  * every stored payload about them (clerk_user_id), and every other one that
--    names their id or one of their email addresses, is dropped (the ledger
--    row stays; its error text keeps only the SQLSTATE);
--  * one audit row says so, with the reason and counts, no values.
-- A person never seen gets the tombstone too. With mentions, the long pass of
-- _erase_mentions runs first, before the person's row is locked; the rest
-- holds the row and the person's advisory lock (ingest takes it shared), so a
-- delivery about them being applied meanwhile is waited for and dropped too.
-- Internal (owner only).
CREATE OR REPLACE FUNCTION jnx._erase_user(p_clerk_user_id text, p_reason text, p_actor text,
                                           mentions boolean DEFAULT true)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prior_actor CONSTANT text := current_setting('jnx.audit_actor', true);
    u jnx.users;
    n_users int := 0;
    n_memberships int := 0;
    n_events int := 0;
    n_more int;
BEGIN
    IF mentions THEN
        n_events := jnx._erase_mentions(p_clerk_user_id);
    END IF;
    PERFORM set_config('jnx.audit_actor', p_actor, true);
    INSERT INTO jnx.users (clerk_user_id, sync_state, deleted_at, erased_at)
    VALUES (p_clerk_user_id, 'synced', now(), now())
    ON CONFLICT (clerk_user_id) DO NOTHING
    RETURNING * INTO u;
    IF u.id IS NULL THEN
        SELECT * INTO u FROM jnx.users WHERE clerk_user_id = p_clerk_user_id FOR UPDATE;
    END IF;
    PERFORM pg_advisory_xact_lock(1785624578, hashtext(p_clerk_user_id));

    -- The payloads about them, through the index, including any committed
    -- while this call waited for the locks.
    UPDATE jnx.webhook_events w SET payload = NULL, error = left(w.error, 5)
     WHERE w.clerk_user_id = p_clerk_user_id AND w.payload IS NOT NULL;
    GET DIAGNOSTICS n_more = ROW_COUNT;
    n_events := n_events + n_more;

    UPDATE jnx.users SET
        email = NULL, first_name = NULL, last_name = NULL, username = NULL, image_url = NULL,
        role = 'member', org_id = NULL, public_metadata = '{}', sync_state = 'synced',
        clerk_created_at = NULL, clerk_updated_at = NULL,
        deleted_at = coalesce(deleted_at, now()), erased_at = now(), updated_at = now()
     WHERE id = u.id AND erased_at IS NULL;
    GET DIAGNOSTICS n_users = ROW_COUNT;
    DELETE FROM jnx.erasure_queue WHERE clerk_user_id = p_clerk_user_id;
    DELETE FROM jnx.memberships WHERE user_id = u.id;
    GET DIAGNOSTICS n_memberships = ROW_COUNT;

    INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, details)
    VALUES (p_actor, 'user.erase', 'user', p_clerk_user_id,
            jsonb_build_object('reason', p_reason, 'users', n_users, 'memberships', n_memberships,
                               'webhook_events', n_events));
    PERFORM set_config('jnx.audit_actor', coalesce(prior_actor, ''), true);
    RETURN jsonb_build_object('clerk_user_id', p_clerk_user_id, 'erased_at', now(),
                              'users', n_users, 'memberships', n_memberships,
                              'webhook_events', n_events);
END
$$;
REVOKE ALL ON FUNCTION jnx._erase_user(text, text, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.erase_user(clerk_user_id text, reason text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF $1 IS NULL OR $1 = '' THEN
        RAISE EXCEPTION 'user id is required' USING ERRCODE = 'JX310';
    END IF;
    IF reason IS NULL OR btrim(reason) = '' OR length(reason) > 500 THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'JX331',
            DETAIL = 'Give 1 to 500 characters (kept in the audit log: no personal data in it).';
    END IF;
    -- (COLLATE "default": see export_user.)
    RETURN jnx._erase_user($1, reason, 'db:' || session_user::text COLLATE "default");
END
$$;
COMMENT ON FUNCTION jnx.erase_user(text, text) IS
    'Erases a person''s personal values everywhere in the schema at once, keeping a tombstone; audited. Owner and service_role.';
REVOKE ALL ON FUNCTION jnx.erase_user(text, text) FROM PUBLIC;

-- Retention ---------------------------------------------------------------------

CREATE OR REPLACE FUNCTION jnx.set_retention(webhook_payload_days int, deleted_user_grace_days int,
                                             audit_days int) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF webhook_payload_days IS NULL OR webhook_payload_days NOT BETWEEN 1 AND 3650
       OR deleted_user_grace_days IS NULL OR deleted_user_grace_days NOT BETWEEN 0 AND 3650
       OR audit_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'retention is invalid' USING ERRCODE = 'JX340',
            DETAIL = 'Payloads 1 to 3650 days, grace 0 to 3650 days, audit 1 to 36500 days or NULL (forever).';
    END IF;
    INSERT INTO jnx.retention_config AS c
        (singleton, webhook_payload_days, deleted_user_grace_days, audit_days)
    VALUES (true, webhook_payload_days, deleted_user_grace_days, audit_days)
    ON CONFLICT (singleton) DO UPDATE SET
        webhook_payload_days = EXCLUDED.webhook_payload_days,
        deleted_user_grace_days = EXCLUDED.deleted_user_grace_days,
        audit_days = EXCLUDED.audit_days, updated_at = now();
    INSERT INTO jnx.system_events (kind, severity, details)
    VALUES ('config.retention', 'info',
            jsonb_build_object('webhook_payload_days', webhook_payload_days,
                               'deleted_user_grace_days', deleted_user_grace_days,
                               'audit_days', audit_days));
END
$$;
COMMENT ON FUNCTION jnx.set_retention(int, int, int) IS
    'Retention windows in days: stored payloads, deleted users before hard erasure, audit rows (NULL = forever). Owner only.';
REVOKE ALL ON FUNCTION jnx.set_retention(int, int, int) FROM PUBLIC;

-- One bounded pass of retention; schedule it (pg_cron) every few minutes.
-- Each step takes at most one batch, oldest first, and "more" says a batch
-- was full. Locks: payload rows and audit rows are not locked by ingest (it
-- only inserts and reads them); users due for erasure that a webhook holds
-- right now are skipped until the next run.
CREATE OR REPLACE FUNCTION jnx.apply_retention(now timestamptz DEFAULT now()) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    at CONSTANT timestamptz := $1;
    payload_batch CONSTANT int := 5000;
    user_batch CONSTANT int := 10;
    audit_batch CONSTANT int := 10000;
    cfg jnx.retention_config;
    payload_cutoff timestamptz;
    last_dropped timestamptz;
    mark timestamptz;
    victim text;
    victims text[];
    n_payloads int := 0;
    n_users int := 0;
    n_audit int := 0;
BEGIN
    IF at IS NULL OR NOT isfinite(at) THEN
        RAISE EXCEPTION 'retention is invalid' USING ERRCODE = 'JX340', DETAIL = 'now must be a finite time.';
    END IF;
    SELECT * INTO cfg FROM jnx.retention_config;
    IF NOT FOUND THEN
        cfg.webhook_payload_days := 30;
        cfg.deleted_user_grace_days := 30;
        cfg.audit_days := 365;
        cfg.payloads_dropped_before := '-infinity';
    END IF;

    -- Audit rows past their window (first, so that the rows the erasures
    -- below write are never among them).
    IF cfg.audit_days IS NOT NULL THEN
        PERFORM set_config('jnx.audit_retention', 'on', true);
        DELETE FROM jnx.audit_logs
         WHERE id IN (SELECT a.id FROM jnx.audit_logs a
                       WHERE a.created_at < at - make_interval(days => cfg.audit_days)
                       ORDER BY a.id LIMIT audit_batch);
        GET DIAGNOSTICS n_audit = ROW_COUNT;
        PERFORM set_config('jnx.audit_retention', 'off', true);
    END IF;

    -- Stored payloads past their window, from where the last run stopped.
    payload_cutoff := at - make_interval(days => cfg.webhook_payload_days);
    WITH batch AS (
        SELECT w.svix_id, w.received_at FROM jnx.webhook_events w
         WHERE w.received_at >= cfg.payloads_dropped_before AND w.received_at < payload_cutoff
           AND w.payload IS NOT NULL
         ORDER BY w.received_at LIMIT payload_batch),
    dropped AS (
        UPDATE jnx.webhook_events w SET payload = NULL
          FROM batch b WHERE w.svix_id = b.svix_id
        RETURNING b.received_at)
    SELECT count(*), max(received_at) INTO n_payloads, last_dropped FROM dropped;
    -- Everything before the mark is dropped. Never past a day ago: a run
    -- with a "now" in the future must not make later runs skip real rows.
    mark := least(CASE WHEN n_payloads = payload_batch THEN last_dropped ELSE payload_cutoff END,
                  transaction_timestamp() - interval '1 day');
    IF mark > cfg.payloads_dropped_before THEN
        INSERT INTO jnx.retention_config AS c (singleton, payloads_dropped_before)
        VALUES (true, mark)
        ON CONFLICT (singleton) DO UPDATE SET
            payloads_dropped_before = greatest(c.payloads_dropped_before, EXCLUDED.payloads_dropped_before);
    END IF;

    -- Users deleted in Clerk whose grace period is over: erased. First the
    -- long passes over the payloads for all of them, holding no user row;
    -- then each erasure proper, skipping a user a webhook holds right now
    -- (the next run takes them).
    SELECT coalesce(array_agg(clerk_user_id ORDER BY since), '{}') INTO victims
      FROM (SELECT q.clerk_user_id, q.since FROM jnx.erasure_queue q
             WHERE q.since < at - make_interval(days => cfg.deleted_user_grace_days)
             ORDER BY q.since LIMIT user_batch) AS due;
    FOREACH victim IN ARRAY victims LOOP
        PERFORM jnx._erase_mentions(victim);
    END LOOP;
    FOREACH victim IN ARRAY victims LOOP
        PERFORM 1 FROM jnx.users u WHERE u.clerk_user_id = victim FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            PERFORM jnx._erase_user(victim, 'retention: deleted_user_grace_days', 'jnx:retention', false);
            n_users := n_users + 1;
        END IF;
    END LOOP;

    IF n_payloads + n_users + n_audit > 0 THEN
        INSERT INTO jnx.system_events (kind, severity, details)
        VALUES ('retention.applied', 'info',
                jsonb_build_object('webhook_payloads', n_payloads, 'users_erased', n_users,
                                   'audit_logs', n_audit));
    END IF;
    RETURN jsonb_build_object('now', at, 'webhook_payloads', n_payloads, 'users_erased', n_users,
                              'audit_logs', n_audit,
                              'more', n_payloads = payload_batch OR cardinality(victims) = user_batch
                                      OR n_audit = audit_batch);
END
$$;
COMMENT ON FUNCTION jnx.apply_retention(timestamptz) IS
    'Applies the retention windows in bounded batches ("more": call again). Owner only; schedule with pg_cron.';
REVOKE ALL ON FUNCTION jnx.apply_retention(timestamptz) FROM PUBLIC;

-- Imports -------------------------------------------------------------------------

-- The list to import: a JSON array, or a Backend API page {"data": [...]}.
CREATE OR REPLACE FUNCTION jnx._import_list(items jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jsonb_typeof(items) = 'array' THEN
        RETURN items;
    ELSIF jsonb_typeof(items) = 'object' AND jsonb_typeof(items->'data') = 'array' THEN
        RETURN items->'data';
    END IF;
    RAISE EXCEPTION 'an import takes a JSON array' USING ERRCODE = 'JX330',
        DETAIL = 'Pass an array of Clerk objects, or a Backend API page {"data": [...]}.';
END
$$;
REVOKE ALL ON FUNCTION jnx._import_list(jsonb) FROM PUBLIC;

-- One imported object through the webhook's own upsert. kind: user,
-- organization or membership. Answers inserted, updated, stale, tombstoned or
-- invalid. Internal (owner only).
CREATE OR REPLACE FUNCTION jnx._import_one(kind text, item jsonb) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    object_id text;
    state text;
    dead_party boolean := false;
    applied boolean;
BEGIN
    IF jsonb_typeof(item) IS DISTINCT FROM 'object' OR jsonb_typeof(item->'id') IS DISTINCT FROM 'string'
       OR item->>'id' = '' THEN
        RETURN 'invalid';
    END IF;
    object_id := item->>'id';
    -- Clerk never sends a time in the future: an object claiming one (which
    -- would make every later webhook about it stale) is refused.
    IF jnx._ms_to_timestamptz(item->'updated_at') > now() + interval '1 day' THEN
        RETURN 'invalid';
    END IF;
    -- A membership keeps its user and org for life: an object naming others
    -- under an existing id is not that membership.
    IF kind = 'membership' AND EXISTS (
           SELECT 1 FROM jnx.memberships m
             JOIN jnx.users u ON u.id = m.user_id JOIN jnx.orgs o ON o.id = m.org_id
            WHERE m.clerk_membership_id = object_id
              AND (u.clerk_user_id IS DISTINCT FROM item->'public_user_data'->>'user_id'
                   OR o.clerk_org_id IS DISTINCT FROM item->'organization'->>'id')) THEN
        RETURN 'invalid';
    END IF;
    -- What is there before: nothing (NULL), a live row, or a tombstone.
    state := CASE kind
        WHEN 'user' THEN (SELECT CASE WHEN u.deleted_at IS NULL THEN 'live' ELSE 'tombstone' END
                            FROM jnx.users u WHERE u.clerk_user_id = object_id)
        WHEN 'organization' THEN (SELECT CASE WHEN o.deleted_at IS NULL THEN 'live' ELSE 'tombstone' END
                                    FROM jnx.orgs o WHERE o.clerk_org_id = object_id)
        ELSE (SELECT 'live' FROM jnx.memberships m WHERE m.clerk_membership_id = object_id) END;
    IF state = 'tombstone' THEN
        RETURN 'tombstoned';
    END IF;
    IF kind = 'membership' THEN
        -- A deleted user or org: the webhook's rules store the membership
        -- ended (an erased person's, not at all). Nothing comes back to life.
        dead_party := EXISTS (SELECT 1 FROM jnx.users u
                               WHERE u.clerk_user_id = item->'public_user_data'->>'user_id'
                                 AND u.deleted_at IS NOT NULL)
                   OR EXISTS (SELECT 1 FROM jnx.orgs o
                               WHERE o.clerk_org_id = item->'organization'->>'id'
                                 AND o.deleted_at IS NOT NULL);
    END IF;
    BEGIN
        applied := CASE kind
            WHEN 'user' THEN (jnx._upsert_user(object_id, item)).id IS NOT NULL
            WHEN 'organization' THEN (jnx.upsert_organization(object_id, item)).id IS NOT NULL
            ELSE (jnx._write_membership(object_id, item, NULL)).id IS NOT NULL END;
    EXCEPTION
        WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded
             OR SQLSTATE 'JX310' THEN
            RETURN 'invalid';
    END;
    RETURN CASE WHEN dead_party THEN 'tombstoned' WHEN NOT applied THEN 'stale'
                WHEN state IS NULL THEN 'inserted' ELSE 'updated' END;
END
$$;
REVOKE ALL ON FUNCTION jnx._import_one(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._import(kind text, items jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    list CONSTANT jsonb := jnx._import_list(items);
    prior_actor CONSTANT text := current_setting('jnx.audit_actor', true);
    prior_request CONSTANT text := current_setting('jnx.request_id', true);
    counts jsonb := '{"inserted": 0, "updated": 0, "stale": 0, "tombstoned": 0, "invalid": 0}';
    invalid_items int[] := '{}';
    outcome text;
    item jsonb;
    pos bigint;
BEGIN
    PERFORM set_config('jnx.audit_actor', 'clerk:import', true);
    -- The audit rows' request id names the database role that imported.
    PERFORM set_config('jnx.request_id', 'db:' || session_user, true);
    FOR item, pos IN SELECT t.value, t.ord - 1 FROM jsonb_array_elements(list) WITH ORDINALITY AS t(value, ord) LOOP
        outcome := jnx._import_one(kind, item);
        counts := jsonb_set(counts, ARRAY[outcome], to_jsonb((counts->>outcome)::int + 1));
        IF outcome = 'invalid' AND cardinality(invalid_items) < 100 THEN
            invalid_items := invalid_items || pos::int;
        END IF;
    END LOOP;
    PERFORM set_config('jnx.audit_actor', coalesce(prior_actor, ''), true);
    PERFORM set_config('jnx.request_id', coalesce(prior_request, ''), true);
    RETURN counts || jsonb_build_object('invalid_items', to_jsonb(invalid_items));
END
$$;
REVOKE ALL ON FUNCTION jnx._import(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.import_clerk_users(users jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx._import('user', $1);
END
$$;
COMMENT ON FUNCTION jnx.import_clerk_users(jsonb) IS
    'Backfills users from Clerk Backend API objects through the webhook upsert (never older over newer, never a tombstone back). Owner and service_role.';
REVOKE ALL ON FUNCTION jnx.import_clerk_users(jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.import_clerk_organizations(orgs jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx._import('organization', $1);
END
$$;
COMMENT ON FUNCTION jnx.import_clerk_organizations(jsonb) IS
    'Backfills organizations from Clerk Backend API objects, by the webhook''s rules. Owner and service_role.';
REVOKE ALL ON FUNCTION jnx.import_clerk_organizations(jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx.import_clerk_memberships(memberships jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN jnx._import('membership', $1);
END
$$;
COMMENT ON FUNCTION jnx.import_clerk_memberships(jsonb) IS
    'Backfills organization memberships from Clerk Backend API objects, by the webhook''s rules. Owner and service_role.';
REVOKE ALL ON FUNCTION jnx.import_clerk_memberships(jsonb) FROM PUBLIC;
-- Roles, privileges and row-level security. Idempotent: runs on install and
-- on every upgrade.
--
--   anon               nothing
--   authenticated      reads what its identity may see (policies below)
--   service_role       reads the synced tables (a trusted backend); writes only
--                      through export_user, erase_user and the imports
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
-- Personal data (65_privacy.sql): a trusted backend exports, erases and
-- imports; a signed-in user exports their own data only.
GRANT EXECUTE ON FUNCTION jnx.export_user(text), jnx.erase_user(text, text),
    jnx.import_clerk_users(jsonb), jnx.import_clerk_organizations(jsonb),
    jnx.import_clerk_memberships(jsonb) TO service_role;
GRANT EXECUTE ON FUNCTION jnx.export_me() TO authenticated;

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
                             'system_events', 'webhook_secrets', 'token_config',
                             'retention_config', 'erasure_queue'] LOOP
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

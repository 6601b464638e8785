-- jnx_auth install script, assembled from extension/schema/*.sql at build time.
\echo Use "CREATE EXTENSION jnx_auth" to load this file. \quit
-- Configuration: accepted webhook secrets and the system event log.

-- Readable and writable by the extension owner only (no grants, row-level
-- security on with no policy). Backends cache the decoded keys; the statement
-- trigger below tells every backend to drop that cache when the table changes.
CREATE TABLE jnx.webhook_secrets (
    position   int PRIMARY KEY CHECK (position BETWEEN 1 AND 16),
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.webhook_secrets IS
    'Accepted Svix signing secrets (several during rotation). Owner only; set with jnx.set_webhook_secrets().';
REVOKE ALL ON jnx.webhook_secrets FROM PUBLIC;
ALTER TABLE jnx.webhook_secrets ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION jnx._config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'jnx_config_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._config_changed() FROM PUBLIC;

CREATE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.webhook_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

-- Configuration changes, dead letters, key rotation: what an operator looks at.
CREATE TABLE jnx.system_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    severity   text NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'error')),
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX system_events_created_at_idx ON jnx.system_events (created_at);
REVOKE ALL ON jnx.system_events FROM PUBLIC;
ALTER TABLE jnx.system_events ENABLE ROW LEVEL SECURITY;
-- Synced data: users, webhook deliveries, audit trail.

CREATE TABLE jnx.users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id    text NOT NULL UNIQUE,
    email            text,
    first_name       text,
    last_name        text,
    username         text,
    image_url        text,
    role             text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
    org_id           uuid,  -- the active organization; its foreign key arrives with jnx.orgs
    public_metadata  jsonb NOT NULL DEFAULT '{}',
    sync_state       text NOT NULL DEFAULT 'provisional'
                     CHECK (sync_state IN ('provisional', 'synced')),
    clerk_created_at timestamptz,
    clerk_updated_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE INDEX users_org_id_idx ON jnx.users (org_id);
COMMENT ON TABLE jnx.users IS 'Clerk users, one row per clerk_user_id, filled by webhooks.';
REVOKE ALL ON jnx.users FROM PUBLIC;

-- One row per Svix message id: the idempotency key, and the raw signed body
-- kept for replay.
CREATE TABLE jnx.webhook_events (
    svix_id        text PRIMARY KEY,
    type           text,
    status         text NOT NULL
                   CHECK (status IN ('processing', 'processed', 'stale', 'ignored', 'dead_letter')),
    attempts       int NOT NULL DEFAULT 1,
    error          text,
    payload        bytea NOT NULL,
    svix_timestamp timestamptz,
    received_at    timestamptz NOT NULL DEFAULT now(),
    processed_at   timestamptz
);
CREATE INDEX webhook_events_received_at_idx ON jnx.webhook_events (received_at);
CREATE INDEX webhook_events_dead_letter_idx ON jnx.webhook_events (received_at)
    WHERE status = 'dead_letter';
REVOKE ALL ON jnx.webhook_events FROM PUBLIC;
ALTER TABLE jnx.webhook_events ENABLE ROW LEVEL SECURITY;

-- Append-only. details names the fields that changed, never their values.
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
CREATE INDEX audit_logs_created_at_idx ON jnx.audit_logs (created_at);
CREATE INDEX audit_logs_org_id_idx ON jnx.audit_logs (org_id, created_at);
CREATE INDEX audit_logs_target_idx ON jnx.audit_logs (target_type, target_id);
REVOKE ALL ON jnx.audit_logs FROM PUBLIC;

CREATE FUNCTION jnx._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'jnx.audit_logs is append-only'
        USING ERRCODE = 'JX301', DETAIL = format('%s is not allowed on the audit log.', TG_OP);
END
$$;
REVOKE ALL ON FUNCTION jnx._audit_append_only() FROM PUBLIC;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON jnx.audit_logs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON jnx.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._audit_append_only();

-- pg_dump skips extension tables unless they are marked as configuration.
SELECT pg_catalog.pg_extension_config_dump('jnx.webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.system_events', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.users', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.webhook_events', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.audit_logs', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jnx.system_events', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jnx.audit_logs', 'id'), '');
-- Webhook signatures (Svix / Standard Webhooks, HMAC-SHA256), in C++.

CREATE FUNCTION jnx.webhook_sign(secret text, msg_id text, msg_timestamp bigint, body bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'jnx_webhook_sign'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION jnx.webhook_sign(text, text, bigint, bytea) IS
    'The "v1,<base64>" Svix signature of a message, for tools and tests.';

CREATE FUNCTION jnx.verify_webhook(
    msg_id text, msg_timestamp text, signature_header text, body bytea,
    secret text DEFAULT NULL, now timestamptz DEFAULT now())
RETURNS void
AS 'MODULE_PATHNAME', 'jnx_verify_webhook'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) IS
    'Raises JX001-JX005 unless the delivery is validly signed; secret NULL = the configured secrets.';
-- With secret NULL it checks against the configured secrets: not for everyone.
REVOKE ALL ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) FROM PUBLIC;

CREATE FUNCTION jnx._check_webhook_secret(secret text) RETURNS void
AS 'MODULE_PATHNAME', 'jnx_check_webhook_secret'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._check_webhook_secret(text) FROM PUBLIC;

CREATE FUNCTION jnx.set_webhook_secrets(VARIADIC secrets text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
-- Applying Clerk events: upserts, the audit trigger, and the ingest entry point.

-- Clerk sends every *_at as Unix milliseconds. Anything else (missing, not a
-- number, out of range) is NULL rather than an error.
CREATE FUNCTION jnx._ms_to_timestamptz(ms jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN jsonb_typeof(ms) = 'number' AND (ms::text)::numeric BETWEEN 0 AND 253402300799999
        THEN to_timestamp((ms::text)::numeric / 1000)
    END
$$;

-- Writes one audit row per changed user row, in the same transaction. The
-- actor and request id come from transaction-local settings that the entry
-- points set; details lists the names of changed columns, never values.
CREATE FUNCTION jnx._audit_user_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed text[];
    act text;
    target jnx.users;
BEGIN
    IF TG_OP = 'INSERT' THEN
        target := NEW;
        act := 'user.create';
        SELECT array_agg(key ORDER BY key) INTO changed
            FROM jsonb_each(to_jsonb(NEW))
            WHERE value <> 'null' AND key NOT IN ('id', 'created_at', 'updated_at');
    ELSIF TG_OP = 'UPDATE' THEN
        target := NEW;
        SELECT array_agg(n.key ORDER BY n.key) INTO changed
            FROM jsonb_each(to_jsonb(NEW)) n JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
            WHERE n.value IS DISTINCT FROM o.value AND n.key <> 'updated_at';
        IF changed IS NULL THEN
            RETURN NULL;  -- nothing changed: nothing to audit
        END IF;
        act := CASE WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL
                    THEN 'user.delete' ELSE 'user.update' END;
    ELSE
        target := OLD;
        act := 'user.purge';
    END IF;
    INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, org_id, request_id, details)
    VALUES (coalesce(nullif(current_setting('jnx.audit_actor', true), ''), 'system'),
            act, 'user', target.clerk_user_id, target.org_id,
            nullif(current_setting('jnx.request_id', true), ''),
            jsonb_build_object('fields', coalesce(to_jsonb(changed), '[]'::jsonb)));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION jnx._audit_user_change() FROM PUBLIC;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.users
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_user_change();

-- Inserts or updates a user from Clerk's user object (the webhook's "data").
-- Returns the row, or NULL when nothing changed because the stored row is
-- newer (clerk_updated_at) or deleted.
CREATE FUNCTION jnx.upsert_user(clerk_user_id text, data jsonb) RETURNS jnx.users
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    p_clerk_user_id CONSTANT text := $1;
    p_data CONSTANT jsonb := $2;
    v_email text;
    v_metadata jsonb;
    result jnx.users;
BEGIN
    IF p_clerk_user_id IS NULL OR p_clerk_user_id = '' THEN
        RAISE EXCEPTION 'clerk_user_id is required' USING ERRCODE = 'JX310';
    END IF;
    IF p_data IS NULL OR jsonb_typeof(p_data) <> 'object' THEN
        RAISE EXCEPTION 'user data must be a JSON object' USING ERRCODE = 'JX310';
    END IF;
    IF p_data ? 'id' AND p_data->>'id' IS DISTINCT FROM p_clerk_user_id THEN
        RAISE EXCEPTION 'user data belongs to another user'
            USING ERRCODE = 'JX310', DETAIL = 'data.id differs from clerk_user_id.';
    END IF;

    IF jsonb_typeof(p_data->'email_addresses') = 'array' THEN
        SELECT e->>'email_address' INTO v_email
            FROM jsonb_array_elements(p_data->'email_addresses') AS e
            WHERE jsonb_typeof(e) = 'object' AND e->>'id' = p_data->>'primary_email_address_id'
            LIMIT 1;
    END IF;
    v_metadata := CASE WHEN jsonb_typeof(p_data->'public_metadata') = 'object'
                       THEN p_data->'public_metadata' ELSE '{}'::jsonb END;

    INSERT INTO jnx.users AS u
        (clerk_user_id, email, first_name, last_name, username, image_url, role,
         public_metadata, sync_state, clerk_created_at, clerk_updated_at)
    VALUES
        (p_clerk_user_id, v_email, p_data->>'first_name', p_data->>'last_name',
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
        clerk_created_at = coalesce(u.clerk_created_at, EXCLUDED.clerk_created_at),
        clerk_updated_at = coalesce(EXCLUDED.clerk_updated_at, u.clerk_updated_at),
        updated_at = now()
    WHERE u.deleted_at IS NULL
      AND (u.clerk_updated_at IS NULL OR EXCLUDED.clerk_updated_at IS NULL
           OR u.clerk_updated_at <= EXCLUDED.clerk_updated_at)
    RETURNING * INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION jnx.upsert_user(text, jsonb) IS
    'Inserts or updates a user from Clerk''s user object; NULL when the stored row is newer or deleted.';
REVOKE ALL ON FUNCTION jnx.upsert_user(text, jsonb) FROM PUBLIC;

-- Verifies and applies one Clerk delivery in the caller's transaction.
-- Returns {"status": processed|duplicate|stale|ignored|dead_letter, "type": ...}.
CREATE FUNCTION jnx.ingest_clerk_webhook(
    svix_id text, svix_timestamp text, svix_signature text, body bytea)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    msg_id CONSTANT text := $1;
    event jsonb;
    event_type text;
    outcome text;
    failure text;
    state text;
    message text;
    applied jnx.users;
BEGIN
    -- Raises JX001..JX004 unless the signature is valid: nothing is written.
    PERFORM jnx.verify_webhook(msg_id, $2, $3, $4);

    -- The idempotency key. A concurrent copy of this delivery waits here for
    -- the first one to commit, then finds the row and answers duplicate.
    INSERT INTO jnx.webhook_events (svix_id, status, payload, svix_timestamp)
        VALUES (msg_id, 'processing', $4, to_timestamp($2::bigint))
        ON CONFLICT (svix_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT type INTO event_type FROM jnx.webhook_events WHERE svix_id = msg_id;
        RETURN jsonb_build_object('status', 'duplicate', 'type', event_type);
    END IF;

    PERFORM set_config('jnx.audit_actor', 'clerk:webhook', true);
    PERFORM set_config('jnx.request_id', msg_id, true);

    BEGIN
        event := convert_from($4, 'UTF8')::jsonb;
        IF jsonb_typeof(event) <> 'object'
           OR jsonb_typeof(event->'type') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'payload is not a Clerk event' USING ERRCODE = 'JX310';
        END IF;
        event_type := event->>'type';
        IF event_type IN ('user.created', 'user.updated') THEN
            IF jsonb_typeof(event->'data'->'id') IS DISTINCT FROM 'string' THEN
                RAISE EXCEPTION 'event data has no user id' USING ERRCODE = 'JX310';
            END IF;
            applied := jnx.upsert_user(event->'data'->>'id', event->'data');
            outcome := CASE WHEN applied.id IS NULL THEN 'stale' ELSE 'processed' END;
        ELSE
            outcome := 'ignored';
        END IF;
    EXCEPTION
        -- Data that can never be applied: keep it, answer 200, let an operator
        -- replay it. Anything else (serialization failure, shutdown, ...) is
        -- transient: re-raised, the delivery rolls back, Svix retries.
        WHEN data_exception OR integrity_constraint_violation OR SQLSTATE 'JX310' THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
            outcome := 'dead_letter';
            failure := state || ': ' || message;
    END;

    UPDATE jnx.webhook_events
       SET type = event_type, status = outcome, error = failure, processed_at = now()
     WHERE svix_id = msg_id;
    IF outcome = 'dead_letter' THEN
        INSERT INTO jnx.system_events (kind, severity, details)
            VALUES ('webhook.dead_letter', 'error',
                    jsonb_build_object('svix_id', msg_id, 'type', event_type, 'sqlstate', state));
    END IF;
    RETURN jsonb_build_object('status', outcome, 'type', event_type);
END
$$;
COMMENT ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) IS
    'Verifies a Clerk (Svix) delivery and applies it in this transaction, exactly once per svix-id.';
REVOKE ALL ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) FROM PUBLIC;
-- Privileges. Every table and function above revoked PUBLIC access where it
-- was created; the schema itself is usable by all, so that pure functions
-- (jnx.webhook_sign) work for anyone and each object's own grant decides.
GRANT USAGE ON SCHEMA jnx TO PUBLIC;

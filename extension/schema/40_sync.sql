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

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

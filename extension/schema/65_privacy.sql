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

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

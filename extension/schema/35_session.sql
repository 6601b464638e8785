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

-- The opaque paging cursor of admin_list_users: "c1" and a Clerk user id in
-- unpadded base64url.
CREATE OR REPLACE FUNCTION jnx._page_cursor_encode(id text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'c1' || translate(encode(convert_to(id, 'UTF8'), 'base64'), E'+/=\n', '-_')
$$;
REVOKE ALL ON FUNCTION jnx._page_cursor_encode(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._page_cursor_decode(cursor text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b64 text;
BEGIN
    IF length(cursor) > 4096 OR cursor !~ '^c1[A-Za-z0-9_-]+$' OR length(cursor) % 4 = 3 THEN
        RAISE EXCEPTION 'cursor is invalid' USING ERRCODE = 'JX351',
            DETAIL = 'Pass the next_cursor of the previous page as it was given.';
    END IF;
    b64 := translate(substr(cursor, 3), '-_', '+/');
    b64 := b64 || repeat('=', (4 - length(b64) % 4) % 4);
    RETURN convert_from(decode(b64, 'base64'), 'UTF8');
EXCEPTION
    WHEN invalid_parameter_value OR character_not_in_repertoire OR untranslatable_character THEN
        RAISE EXCEPTION 'cursor is invalid' USING ERRCODE = 'JX351',
            DETAIL = 'Pass the next_cursor of the previous page as it was given.';
END
$$;
REVOKE ALL ON FUNCTION jnx._page_cursor_decode(text) FROM PUBLIC;

-- Members of an organization: the caller's active org for its org admins, any
-- org (p_org) for platform admins, one page at a time in a stable order (the
-- Clerk user id, in the column's collation, which its unique index serves). Runs as the caller: row-level security applies
-- on top of these checks.
--
-- The cursor is opaque to callers: "c1" and the last user id of the previous
-- page in base64url. A page never holds a row twice and, while the membership
-- is unchanged, misses none; a member who joins or leaves between two pages is
-- seen or not according to where their id sorts.
CREATE OR REPLACE FUNCTION jnx.admin_list_users(p_org text DEFAULT NULL, p_limit int DEFAULT 100,
                                                p_cursor text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid CONSTANT text := coalesce(jnx.user_id(), jnx._require_identity());
    target CONSTANT text := coalesce(p_org, jnx.org_id());
    after text;
    page jsonb;
    ids text[];
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'page size is invalid' USING ERRCODE = 'JX350',
            DETAIL = 'The limit is 1 to 1000 (default 100).';
    END IF;
    IF p_cursor IS NOT NULL THEN
        after := jnx._page_cursor_decode(p_cursor);
    END IF;
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
    -- One row more than asked says whether another page follows. No window
    -- function and the column's own collation: with the id index, a page of
    -- a large org reads about limit + 1 rows, not the whole org.
    SELECT array_agg(p.id ORDER BY p.id), coalesce(jsonb_agg(p.doc ORDER BY p.id), '[]'::jsonb)
      INTO ids, page
      FROM (SELECT u.clerk_user_id AS id,
                   jsonb_build_object(
                       'clerk_user_id', u.clerk_user_id, 'email', u.email, 'first_name', u.first_name,
                       'last_name', u.last_name, 'image_url', u.image_url, 'org_role', m.role,
                       'sync_state', u.sync_state) AS doc
              FROM jnx.memberships m
              JOIN jnx.users u ON u.id = m.user_id
              JOIN jnx.orgs o ON o.id = m.org_id
             WHERE o.clerk_org_id = target AND m.deleted_at IS NULL AND u.deleted_at IS NULL
               AND o.deleted_at IS NULL
               AND (after IS NULL OR u.clerk_user_id > after)
             ORDER BY u.clerk_user_id
             LIMIT p_limit + 1) p;
    IF cardinality(ids) > p_limit THEN
        RETURN jsonb_build_object('users', page - p_limit,
                                  'next_cursor', jnx._page_cursor_encode(ids[p_limit]));
    END IF;
    RETURN jsonb_build_object('users', page, 'next_cursor', NULL);
END
$$;
COMMENT ON FUNCTION jnx.admin_list_users(text, int, text) IS
    'Members of the active org (org admins) or of any org (platform admins), paged: {"users": [...], "next_cursor": ...}; raises JX201/JX202/JX203/JX350/JX351.';
REVOKE ALL ON FUNCTION jnx.admin_list_users(text, int, text) FROM PUBLIC;

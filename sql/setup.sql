-- Installs the extension and a helper that reports an error's SQLSTATE and
-- message (and detail) as a row, so that the expected output reads as a table of codes.
CREATE EXTENSION jnx_auth;
SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth';

CREATE SCHEMA regress;
CREATE FUNCTION regress.outcome(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END
$$;

-- The public Svix test vector, used across the suite. It lives in
-- test/fixtures/svix_vector.psql (make installcheck passes its path).
\getenv vector_file JNX_SVIX_VECTOR_FILE
\set ECHO none
\i :vector_file
\set ECHO all
CREATE TABLE regress.vector AS SELECT
    :'svix_secret'::text AS secret,
    :'svix_msg_id'::text AS msg_id,
    :svix_timestamp::bigint AS ts,
    convert_to(:'svix_body', 'UTF8') AS body,
    :'svix_signature'::text AS signature;

-- Deliveries signed with the vector's secret at the current time, as Svix sends them.
-- (Parameters are named p_*: in SQL functions a column name would win.)
CREATE FUNCTION regress.deliver(p_msg_id text, p_event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jnx.ingest_clerk_webhook(p_msg_id, t::text,
                                    jnx.webhook_sign(v.secret, p_msg_id, t, b), b)
      FROM regress.vector v,
           LATERAL (SELECT extract(epoch FROM now())::bigint AS t,
                           convert_to(p_event::text, 'UTF8') AS b) x
$$;
CREATE FUNCTION regress.deliver_raw(p_msg_id text, p_body bytea) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jnx.ingest_clerk_webhook(p_msg_id, t::text,
                                    jnx.webhook_sign(v.secret, p_msg_id, t, p_body), p_body)
      FROM regress.vector v, LATERAL (SELECT extract(epoch FROM now())::bigint AS t) x
$$;
CREATE FUNCTION regress.user_event(kind text, id text, first_name text, email text, updated_ms bigint)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'type', kind, 'object', 'event', 'instance_id', 'ins_fake', 'timestamp', updated_ms,
        'event_attributes', jsonb_build_object('http_request',
            jsonb_build_object('client_ip', '192.0.2.1', 'user_agent', 'fixture')),
        'data', jsonb_build_object(
            'id', id, 'object', 'user', 'first_name', first_name, 'last_name', 'Ørsted',
            'username', NULL, 'image_url', 'https://img.example.com/u.png',
            'primary_email_address_id', 'idn_primary',
            'email_addresses', jsonb_build_array(
                jsonb_build_object('id', 'idn_other', 'email_address', 'other@example.com'),
                jsonb_build_object('id', 'idn_primary', 'email_address', email)),
            'public_metadata', '{}'::jsonb, 'private_metadata', '{"secret": "never stored as a column"}'::jsonb,
            'created_at', 1700000000000, 'updated_at', updated_ms))
$$;

CREATE FUNCTION regress.deleted_event(kind text, id text, at_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', kind, 'object', 'event', 'timestamp', at_ms,
                              'data', jsonb_build_object('id', id, 'deleted', true))
$$;
CREATE FUNCTION regress.org_event(kind text, id text, name text, updated_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', kind, 'object', 'event', 'timestamp', updated_ms,
        'data', jsonb_build_object(
            'id', id, 'object', 'organization', 'name', name,
            'slug', lower(regexp_replace(name, '[^[:alnum:]]+', '-', 'g')),
            'image_url', 'https://img.example.com/o.png', 'has_image', true,
            'members_count', 1, 'max_allowed_memberships', 5, 'admin_delete_enabled', true,
            'public_metadata', '{"plan": "pro"}'::jsonb, 'private_metadata', '{}'::jsonb,
            'created_by', 'user_creator', 'created_at', 1700000000000, 'updated_at', updated_ms))
$$;
CREATE FUNCTION regress.membership_event(kind text, id text, org text, usr text, role text,
                                         updated_ms bigint, created_ms bigint DEFAULT 1700000000000)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', kind, 'object', 'event', 'timestamp', updated_ms,
        'data', jsonb_build_object(
            'id', id, 'object', 'organization_membership', 'role', role,
            'role_name', initcap(replace(role, 'org:', '')),
            'permissions', jsonb_build_array('org:sys_profile:read'),
            'public_metadata', '{}'::jsonb, 'created_at', created_ms, 'updated_at', updated_ms,
            'organization', jsonb_build_object('id', org, 'object', 'organization',
                                               'name', 'Org ' || org, 'slug', org),
            'public_user_data', jsonb_build_object('user_id', usr, 'identifier', usr || '@example.com',
                                                   'first_name', 'Pat', 'last_name', 'Provisional',
                                                   'image_url', 'https://img.example.com/p.png',
                                                   'has_image', true)))
$$;
-- A row as text, without the columns that differ by construction (uuids, our
-- own timestamps): equal text = equal state.
CREATE FUNCTION regress.user_state(p_id text) RETURNS text LANGUAGE sql AS $$
    SELECT ROW(u.email, u.first_name, u.last_name, u.username, u.role, o.clerk_org_id,
               u.public_metadata, u.sync_state, u.clerk_created_at, u.clerk_updated_at,
               u.deleted_at)::text
      FROM jnx.users u LEFT JOIN jnx.orgs o ON o.id = u.org_id WHERE u.clerk_user_id = p_id
$$;
-- Applies events in the given order, each as its own delivery.
CREATE FUNCTION regress.apply_in_order(prefix text, events jsonb[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    outcomes text[] := '{}';
BEGIN
    FOR i IN 1 .. cardinality(events) LOOP
        outcomes := outcomes || (regress.deliver(prefix || '_' || i, events[i])->>'status');
    END LOOP;
    RETURN outcomes;
END
$$;

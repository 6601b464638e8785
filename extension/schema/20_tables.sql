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

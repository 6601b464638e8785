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

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

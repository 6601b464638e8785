-- jnx_auth 0.4.0 -> 0.4.1: speed (issue 8). The build appends
-- extension/schema/20_*.sql onwards (CREATE OR REPLACE functions, triggers,
-- roles, policies) after the changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.4.1'" to load this file. \quit

-- Stored payloads: lz4 instead of pglz (rows already stored keep theirs).
ALTER TABLE jnx.webhook_events ALTER COLUMN payload SET COMPRESSION lz4;

-- The audit log's time index: BRIN instead of btree (see 10_tables.sql).
DROP INDEX jnx.audit_logs_created_at_idx;
CREATE INDEX audit_logs_created_at_idx ON jnx.audit_logs USING brin (created_at)
    WITH (autosummarize = on);

-- Closed vocabularies as domains instead of table CHECK constraints (see
-- 10_tables.sql). Changing a column's type rewrites users, orgs and
-- webhook_events once, under an exclusive lock: see docs/OPERATIONS.md.
CREATE DOMAIN jnx.sync_state AS text
    CONSTRAINT sync_state_check CHECK (VALUE IN ('provisional', 'synced'));
CREATE DOMAIN jnx.user_role AS text
    CONSTRAINT user_role_check CHECK (VALUE IN ('member', 'admin'));
CREATE DOMAIN jnx.webhook_status AS text
    CONSTRAINT webhook_status_check
    CHECK (VALUE IN ('processing', 'processed', 'stale', 'ignored', 'dead_letter'));
ALTER TABLE jnx.orgs DROP CONSTRAINT orgs_sync_state_check,
    ALTER COLUMN sync_state DROP DEFAULT,
    ALTER COLUMN sync_state TYPE jnx.sync_state,
    ALTER COLUMN sync_state SET DEFAULT 'provisional';
ALTER TABLE jnx.users DROP CONSTRAINT users_role_check, DROP CONSTRAINT users_sync_state_check,
    ALTER COLUMN role DROP DEFAULT,
    ALTER COLUMN role TYPE jnx.user_role,
    ALTER COLUMN role SET DEFAULT 'member',
    ALTER COLUMN sync_state DROP DEFAULT,
    ALTER COLUMN sync_state TYPE jnx.sync_state,
    ALTER COLUMN sync_state SET DEFAULT 'provisional';
ALTER TABLE jnx.webhook_events DROP CONSTRAINT webhook_events_status_check,
    ALTER COLUMN status TYPE jnx.webhook_status;

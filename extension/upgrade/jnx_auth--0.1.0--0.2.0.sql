-- jnx_auth 0.1.0 -> 0.2.0: organizations, memberships, deletions, replay.
-- The build appends extension/schema/20_*.sql onwards (CREATE OR REPLACE
-- functions and triggers) to these table changes.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.2.0'" to load this file. \quit

CREATE TABLE jnx.orgs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_org_id     text NOT NULL UNIQUE,
    name             text,
    slug             text,
    image_url        text,
    created_by       text,
    public_metadata  jsonb NOT NULL DEFAULT '{}',
    sync_state       text NOT NULL DEFAULT 'provisional'
                     CHECK (sync_state IN ('provisional', 'synced')),
    clerk_created_at timestamptz,
    clerk_updated_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
COMMENT ON TABLE jnx.orgs IS 'Clerk organizations, one row per clerk_org_id.';
REVOKE ALL ON jnx.orgs FROM PUBLIC;

-- 0.1.0 never set users.org_id; anything there now points at no org.
ALTER TABLE jnx.users DISABLE TRIGGER audit;
UPDATE jnx.users SET org_id = NULL WHERE org_id IS NOT NULL;
ALTER TABLE jnx.users ENABLE TRIGGER audit;
ALTER TABLE jnx.users ADD CONSTRAINT users_org_id_fkey
    FOREIGN KEY (org_id) REFERENCES jnx.orgs (id) ON DELETE SET NULL;
COMMENT ON TABLE jnx.users IS 'Clerk users, one row per clerk_user_id.';

CREATE TABLE jnx.memberships (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_membership_id text NOT NULL UNIQUE,
    user_id             uuid NOT NULL
                        CONSTRAINT memberships_user_id_fkey REFERENCES jnx.users (id) ON DELETE CASCADE,
    org_id              uuid NOT NULL
                        CONSTRAINT memberships_org_id_fkey REFERENCES jnx.orgs (id) ON DELETE CASCADE,
    role                text NOT NULL,
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

SELECT pg_catalog.pg_extension_config_dump('jnx.orgs', '');
SELECT pg_catalog.pg_extension_config_dump('jnx.memberships', '');

-- The users-only audit trigger function becomes the generic jnx._audit_change.
DROP TRIGGER audit ON jnx.users;
DROP FUNCTION jnx._audit_user_change();

-- Roles, privileges and row-level security. Idempotent: runs on install and
-- on every upgrade.
--
--   anon               nothing
--   authenticated      reads what its identity may see (policies below)
--   service_role       reads the synced tables (a trusted backend); writes only
--                      through export_user, erase_user and the imports
--   jnx_authenticator  the shim's login role: only ingest and authenticate, and
--                      SET ROLE to anon/authenticated (NOINHERIT: it holds no
--                      privilege of theirs unless it switches)
-- Roles are created when missing (they are cluster-wide, Supabase has them) and
-- are not dropped with the extension.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jnx_authenticator') THEN
        CREATE ROLE jnx_authenticator LOGIN NOINHERIT;
    END IF;
END
$$;
GRANT anon, authenticated TO jnx_authenticator;
-- The shim binds tokens and webhook bodies (emails, names) as parameters.
-- PostgreSQL logs bound parameter values next to a statement logged for its
-- duration or by log_statement, and on error when asked to: never for this role.
ALTER ROLE jnx_authenticator SET log_parameter_max_length = 0;
ALTER ROLE jnx_authenticator SET log_parameter_max_length_on_error = 0;

-- Functions. Everything was revoked from PUBLIC where it was created.
GRANT EXECUTE ON FUNCTION jnx.ingest_clerk_webhook(text, text, text, bytea) TO jnx_authenticator;
GRANT EXECUTE ON FUNCTION jnx.authenticate(text) TO jnx_authenticator;
GRANT EXECUTE ON FUNCTION jnx.claims(), jnx.user_id(), jnx.org_id(), jnx.org_role(), jnx.is_admin(),
    jnx._is_org_admin(), jnx._active_org_live(), jnx._my_org_ids(), jnx._require_identity(), jnx.me(),
    jnx._page_cursor_encode(text), jnx._page_cursor_decode(text),
    jnx.admin_list_users(text, int, text) TO authenticated;
GRANT EXECUTE ON FUNCTION jnx.get_user_by_clerk_id(text) TO service_role;
-- Personal data (65_privacy.sql): a trusted backend exports, erases and
-- imports; a signed-in user exports their own data only.
GRANT EXECUTE ON FUNCTION jnx.export_user(text), jnx.erase_user(text, text),
    jnx.import_clerk_users(jsonb), jnx.import_clerk_organizations(jsonb),
    jnx.import_clerk_memberships(jsonb) TO service_role;
GRANT EXECUTE ON FUNCTION jnx.export_me() TO authenticated;
-- Monitoring (68_stats.sql): counts only. The shim's login role reads them
-- for /metrics without any other privilege of service_role's.
GRANT EXECUTE ON FUNCTION jnx.stats() TO service_role, jnx_authenticator;

-- Tables: reads only, and only the synced data. Configuration, secrets,
-- deliveries and system events stay with the owner.
GRANT SELECT ON jnx.users, jnx.orgs, jnx.memberships, jnx.audit_logs TO authenticated, service_role;

-- Row-level security, enabled and forced everywhere: the owner's own access
-- goes through an explicit policy, created for whoever installs.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'orgs', 'memberships', 'audit_logs', 'webhook_events',
                             'system_events', 'webhook_secrets', 'token_config',
                             'retention_config', 'erasure_queue'] LOOP
        EXECUTE format('ALTER TABLE jnx.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE jnx.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS owner_all ON jnx.%I', t);
        EXECUTE format('CREATE POLICY owner_all ON jnx.%I TO %I USING (true) WITH CHECK (true)',
                       t, (SELECT rolname FROM pg_roles WHERE oid = (
                              SELECT relowner FROM pg_class WHERE oid = format('jnx.%I', t)::regclass)));
    END LOOP;
    FOREACH t IN ARRAY ARRAY['users', 'orgs', 'memberships', 'audit_logs'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS service_role_read ON jnx.%I', t);
        EXECUTE format('CREATE POLICY service_role_read ON jnx.%I FOR SELECT TO service_role USING (true)', t);
    END LOOP;
END
$$;

-- Each function call is wrapped in (SELECT ...): an InitPlan, evaluated once
-- per statement instead of once per row.

-- A user sees their own row, the members of their orgs, and everything when a
-- platform admin.
DROP POLICY IF EXISTS member_read ON jnx.users;
CREATE POLICY member_read ON jnx.users FOR SELECT TO authenticated USING (
    clerk_user_id = (SELECT jnx.user_id())
    OR (SELECT jnx.is_admin())
    OR (deleted_at IS NULL AND id IN (SELECT m.user_id FROM jnx.memberships m
                                       WHERE m.deleted_at IS NULL
                                         AND m.org_id IN (SELECT jnx._my_org_ids()))));

-- Their orgs (memberships, and the token's active org).
DROP POLICY IF EXISTS member_read ON jnx.orgs;
CREATE POLICY member_read ON jnx.orgs FOR SELECT TO authenticated USING (
    id IN (SELECT jnx._my_org_ids()) OR (SELECT jnx.is_admin()));

-- The memberships of their orgs.
DROP POLICY IF EXISTS member_read ON jnx.memberships;
CREATE POLICY member_read ON jnx.memberships FOR SELECT TO authenticated USING (
    org_id IN (SELECT jnx._my_org_ids()) OR (SELECT jnx.is_admin()));

-- Org admins read their active org's audit log; platform admins read all.
DROP POLICY IF EXISTS admin_read ON jnx.audit_logs;
CREATE POLICY admin_read ON jnx.audit_logs FOR SELECT TO authenticated USING (
    (SELECT jnx.is_admin())
    OR ((SELECT jnx._is_org_admin())
        AND org_id = (SELECT o.id FROM jnx.orgs o WHERE o.clerk_org_id = jnx.org_id())));

-- The audit trail: one row per changed row of users, orgs and memberships,
-- written by triggers in the same transaction, whatever path made the change.

-- The one exception: jnx.apply_retention deletes rows past the audit window.
-- It marks its own DELETE with a transaction-local setting; only the owner
-- can delete from the table at all (no other role has the privilege), and
-- the owner could drop this trigger anyway: it guards against mistakes, not
-- against the owner.
CREATE OR REPLACE FUNCTION jnx._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('jnx.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'jnx.audit_logs is append-only'
        USING ERRCODE = 'JX301', DETAIL = format('%s is not allowed on the audit log.', TG_OP);
END
$$;
REVOKE ALL ON FUNCTION jnx._audit_append_only() FROM PUBLIC;
CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON jnx.audit_logs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_append_only();
CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON jnx.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._audit_append_only();

-- Arguments: target type (user, org, membership), the column holding the
-- target's Clerk id, the column holding the org id (a uuid). The actor and
-- request id come from transaction-local settings set by the entry points (a
-- change made without them is attributed to "system"). details.fields lists
-- the names of changed columns in byte order, never their values; an UPDATE
-- that changes nothing but updated_at is not audited. In C
-- (extension/pg/audit_fns.cpp): diffing the two row versions as jsonb in
-- PL/pgSQL cost a fifth of every webhook. It resolves no name through the
-- caller's search_path (one prepared, fully qualified INSERT).
CREATE OR REPLACE FUNCTION jnx._audit_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'jnx_audit_change' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._audit_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.users
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('user', 'clerk_user_id', 'org_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.orgs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('org', 'clerk_org_id', 'id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.memberships
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('membership', 'clerk_membership_id', 'org_id');

-- The audit trail: one row per changed row of users, orgs and memberships,
-- written by triggers in the same transaction, whatever path made the change.

CREATE OR REPLACE FUNCTION jnx._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
-- target's Clerk id, the column holding the org id. The actor and request id
-- come from transaction-local settings set by the entry points (a change made
-- without them is attributed to "system"). details.fields lists the names of
-- changed columns, never their values.
CREATE OR REPLACE FUNCTION jnx._audit_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target_type CONSTANT text := TG_ARGV[0];
    new_row jsonb;
    old_row jsonb;
    changed text[];
    act text;
    target jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        new_row := to_jsonb(NEW);
        target := new_row;
        -- A row born deleted is a tombstone for an object we never saw.
        act := CASE WHEN new_row->>'deleted_at' IS NULL THEN 'create' ELSE 'delete' END;
        SELECT array_agg(key ORDER BY key) INTO changed
            FROM jsonb_each(new_row)
            WHERE value <> 'null' AND key NOT IN ('id', 'created_at', 'updated_at');
    ELSIF TG_OP = 'UPDATE' THEN
        new_row := to_jsonb(NEW);
        old_row := to_jsonb(OLD);
        target := new_row;
        SELECT array_agg(n.key ORDER BY n.key) INTO changed
            FROM jsonb_each(new_row) n JOIN jsonb_each(old_row) o USING (key)
            WHERE n.value IS DISTINCT FROM o.value AND n.key <> 'updated_at';
        IF changed IS NULL THEN
            RETURN NULL;  -- nothing changed: nothing to audit
        END IF;
        act := CASE WHEN old_row->>'deleted_at' IS NULL AND new_row->>'deleted_at' IS NOT NULL
                    THEN 'delete' ELSE 'update' END;
    ELSE
        target := to_jsonb(OLD);
        act := 'purge';
    END IF;
    INSERT INTO jnx.audit_logs (actor, action, target_type, target_id, org_id, request_id, details)
    VALUES (coalesce(nullif(current_setting('jnx.audit_actor', true), ''), 'system'),
            target_type || '.' || act, target_type, target->>TG_ARGV[1],
            (target->>TG_ARGV[2])::uuid,
            nullif(current_setting('jnx.request_id', true), ''),
            jsonb_build_object('fields', coalesce(to_jsonb(changed), '[]'::jsonb)));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION jnx._audit_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.users
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('user', 'clerk_user_id', 'org_id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.orgs
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('org', 'clerk_org_id', 'id');
CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON jnx.memberships
    FOR EACH ROW EXECUTE FUNCTION jnx._audit_change('membership', 'clerk_membership_id', 'org_id');

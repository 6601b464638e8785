-- organizationMembership.created / updated / deleted: roles as sent, and
-- memberships that arrive before their user and organization.

-- Both role spellings and custom roles are kept exactly as Clerk sends them.
SELECT regress.deliver('msg_r_org_created', regress.org_event('organization.created', 'org_r', 'Rôles', 1700000000000));
SELECT regress.deliver('msg_r_' || r, regress.membership_event('organizationMembership.created',
           'orgmem_r_' || r, 'org_r', 'user_r_' || r, role, 1700000000000))->>'status' AS status, role
  FROM (VALUES (1, 'org:admin'), (2, 'org:member'), (3, 'admin'), (4, 'basic_member'),
               (5, 'org:billing_manager')) AS v(r, role);
SELECT m.clerk_membership_id, m.role, m.permissions FROM jnx.memberships m
 WHERE m.clerk_membership_id LIKE 'orgmem_r_%' ORDER BY 1;

-- A membership before its user and its org: provisional rows, filled from the
-- membership, that the later events complete.
SELECT regress.deliver('msg_early_mem', regress.membership_event('organizationMembership.created',
           'orgmem_early', 'org_early', 'user_early', 'org:admin', 1700000001000));
SELECT clerk_user_id, first_name, last_name, email, sync_state FROM jnx.users WHERE clerk_user_id = 'user_early';
SELECT clerk_org_id, name, slug, sync_state FROM jnx.orgs WHERE clerk_org_id = 'org_early';
SELECT regress.deliver('msg_early_user', regress.user_event('user.created', 'user_early', 'Émile', 'emile@example.com', 1700000000000));
SELECT regress.deliver('msg_early_org', regress.org_event('organization.created', 'org_early', 'Early Bird', 1700000000000));
SELECT clerk_user_id, first_name, last_name, email, sync_state FROM jnx.users WHERE clerk_user_id = 'user_early';
SELECT clerk_org_id, name, slug, sync_state FROM jnx.orgs WHERE clerk_org_id = 'org_early';
SELECT jsonb_pretty((jnx.get_user_by_clerk_id('user_early')->'memberships') #- '{0,org,id}');  -- ids are random
SELECT jnx.get_user_by_clerk_id('user_early')->'org'->>'clerk_org_id' AS active_org;

-- Updated (role change), stale update, deleted; a deletion that arrives first
-- is a tombstone the creation cannot undo.
SELECT regress.deliver('msg_early_mem_up', regress.membership_event('organizationMembership.updated',
           'orgmem_early', 'org_early', 'user_early', 'org:member', 1700000003000));
SELECT regress.deliver('msg_early_mem_old', regress.membership_event('organizationMembership.updated',
           'orgmem_early', 'org_early', 'user_early', 'org:admin', 1700000002000));
SELECT role FROM jnx.memberships WHERE clerk_membership_id = 'orgmem_early';
SELECT regress.deliver('msg_early_mem_del', regress.membership_event('organizationMembership.deleted',
           'orgmem_early', 'org_early', 'user_early', 'org:member', 1700000004000));
SELECT role, deleted_at FROM jnx.memberships WHERE clerk_membership_id = 'orgmem_early';
SELECT jnx.get_user_by_clerk_id('user_early')->>'org' IS NULL AS no_active_org,
       jnx.get_user_by_clerk_id('user_early')->'memberships' AS memberships;

SELECT regress.apply_in_order('msg_md', ARRAY[
    regress.membership_event('organizationMembership.deleted', 'orgmem_dc', 'org_r', 'user_r_1', 'org:member', 1700000005000),
    regress.membership_event('organizationMembership.created', 'orgmem_dc', 'org_r', 'user_r_1', 'org:member', 1700000004000)])
    AS deleted_then_created;
SELECT role, deleted_at FROM jnx.memberships WHERE clerk_membership_id = 'orgmem_dc';

-- Membership payloads without their user or org are dead letters.
SELECT regress.deliver('msg_mem_no_org', '{"type": "organizationMembership.created", "data": {"id": "orgmem_x", "role": "org:member", "public_user_data": {"user_id": "user_x"}}}');
SELECT regress.deliver('msg_mem_no_user', '{"type": "organizationMembership.created", "data": {"id": "orgmem_y", "role": "org:member", "organization": {"id": "org_y"}}}');
SELECT regress.deliver('msg_mem_no_role', '{"type": "organizationMembership.created", "data": {"id": "orgmem_z", "organization": {"id": "org_z"}, "public_user_data": {"user_id": "user_z"}}}');
SELECT svix_id, status, error FROM jnx.webhook_events WHERE svix_id LIKE 'msg_mem_no_%' ORDER BY svix_id;
SELECT count(*) AS rows_from_dead_letters FROM jnx.users WHERE clerk_user_id IN ('user_x', 'user_y', 'user_z');

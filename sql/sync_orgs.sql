-- organization.created / updated / deleted, and what deleting an org does to its members.

SELECT regress.deliver('msg_org_a_created', regress.org_event('organization.created', 'org_a', 'Société Générale ✓', 1700000000000));
SELECT clerk_org_id, name, slug, image_url, created_by, public_metadata, sync_state, clerk_updated_at
  FROM jnx.orgs WHERE clerk_org_id = 'org_a';
SELECT regress.deliver('msg_org_a_updated', regress.org_event('organization.updated', 'org_a', 'Acme Ünited', 1700000002000));
SELECT regress.deliver('msg_org_a_old', regress.org_event('organization.updated', 'org_a', 'Stale Name', 1700000001000));
SELECT name, slug FROM jnx.orgs WHERE clerk_org_id = 'org_a';

-- Two members; org_a is the older membership of user_m1, so it is user_m1's active org.
SELECT regress.deliver('msg_org_b_created', regress.org_event('organization.created', 'org_b', 'Beta', 1700000000000));
SELECT regress.deliver('msg_m1_created', regress.user_event('user.created', 'user_m1', 'Mia', 'mia@example.com', 1700000000000));
SELECT regress.deliver('msg_m2_created', regress.user_event('user.created', 'user_m2', 'Noé', 'noe@example.com', 1700000000000));
SELECT regress.deliver('msg_mem_1a', regress.membership_event('organizationMembership.created', 'orgmem_1a', 'org_a', 'user_m1', 'org:admin', 1700000001000, 1700000001000));
SELECT regress.deliver('msg_mem_1b', regress.membership_event('organizationMembership.created', 'orgmem_1b', 'org_b', 'user_m1', 'org:member', 1700000002000, 1700000002000));
SELECT regress.deliver('msg_mem_2a', regress.membership_event('organizationMembership.created', 'orgmem_2a', 'org_a', 'user_m2', 'org:member', 1700000001000, 1700000001000));
SELECT u.clerk_user_id, o.clerk_org_id AS active_org
  FROM jnx.users u LEFT JOIN jnx.orgs o ON o.id = u.org_id
 WHERE u.clerk_user_id IN ('user_m1', 'user_m2') ORDER BY 1;

-- Deleting org_a: a tombstone; its memberships end; its members stay, and their
-- active org moves to another live membership (user_m1 -> org_b) or to NULL (user_m2).
SELECT regress.deliver('msg_org_a_deleted', regress.deleted_event('organization.deleted', 'org_a', 1700000009000));
SELECT clerk_org_id, name, slug, public_metadata, deleted_at FROM jnx.orgs WHERE clerk_org_id = 'org_a';
SELECT m.clerk_membership_id, o.clerk_org_id, m.deleted_at IS NOT NULL AS ended
  FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
 WHERE m.clerk_membership_id IN ('orgmem_1a', 'orgmem_1b', 'orgmem_2a') ORDER BY 1;
SELECT u.clerk_user_id, u.deleted_at IS NULL AS user_kept, o.clerk_org_id AS active_org
  FROM jnx.users u LEFT JOIN jnx.orgs o ON o.id = u.org_id
 WHERE u.clerk_user_id IN ('user_m1', 'user_m2') ORDER BY 1;
-- A late update for the deleted org changes nothing; a late membership is kept,
-- but ended at the org's deletion, as if it had arrived in time.
SELECT regress.deliver('msg_org_a_late', regress.org_event('organization.updated', 'org_a', 'Zombie', 1700000010000));
SELECT regress.deliver('msg_mem_3a', regress.membership_event('organizationMembership.created', 'orgmem_3a', 'org_a', 'user_m2', 'org:member', 1700000010000));
SELECT count(*) AS live_memberships_of_deleted_org FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
 WHERE o.clerk_org_id = 'org_a' AND m.deleted_at IS NULL;
SELECT m.deleted_at = o.deleted_at AS ended_with_org FROM jnx.memberships m JOIN jnx.orgs o ON o.id = m.org_id
 WHERE m.clerk_membership_id = 'orgmem_3a';

-- A hard DELETE by a DBA never deletes users either: users.org_id is ON DELETE SET NULL.
BEGIN;
DELETE FROM jnx.orgs WHERE clerk_org_id = 'org_b';
SELECT clerk_user_id, org_id IS NULL AS org_cleared FROM jnx.users WHERE clerk_user_id = 'user_m1';
ROLLBACK;

SELECT action, target_type, target_id, details FROM jnx.audit_logs
 WHERE target_id IN ('org_a') OR (target_type = 'user' AND target_id IN ('user_m1', 'user_m2') AND action = 'user.update')
 ORDER BY target_type, target_id, id;

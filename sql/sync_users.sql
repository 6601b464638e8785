-- user.created / user.updated / user.deleted: order-safe, tombstones, one profile query.

-- user.deleted is a tombstone: personal fields cleared, deleted_at = Clerk's event time.
SELECT regress.deliver('msg_del_a_created',
    regress.user_event('user.created', 'user_del_a', 'Åsa', 'asa@example.com', 1700000000000));
SELECT regress.deliver('msg_del_a_deleted', regress.deleted_event('user.deleted', 'user_del_a', 1700000005000));
SELECT clerk_user_id, email, first_name, last_name, image_url, public_metadata, sync_state, deleted_at
  FROM jnx.users WHERE clerk_user_id = 'user_del_a';
-- Nothing older resurrects it, and a second deletion changes nothing.
SELECT regress.deliver('msg_del_a_late_update',
    regress.user_event('user.updated', 'user_del_a', 'Åsa', 'asa@example.com', 1700000009000));
SELECT regress.deliver('msg_del_a_deleted_again', regress.deleted_event('user.deleted', 'user_del_a', 1700000009000));
SELECT email, first_name, deleted_at FROM jnx.users WHERE clerk_user_id = 'user_del_a';
-- A deletion of a user never seen leaves a tombstone that blocks a late creation.
SELECT regress.deliver('msg_del_b_deleted', regress.deleted_event('user.deleted', 'user_del_b', 1700000005000));
SELECT regress.deliver('msg_del_b_created',
    regress.user_event('user.created', 'user_del_b', 'Late', 'late@example.com', 1700000000000));
SELECT email, first_name, sync_state, deleted_at FROM jnx.users WHERE clerk_user_id = 'user_del_b';
-- The audit trail says what happened, never the values.
SELECT action, target_id, details FROM jnx.audit_logs
 WHERE target_id IN ('user_del_a', 'user_del_b') ORDER BY id;

-- Every order of created, updated, deleted converges to one final row.
CREATE TABLE regress.perm AS
SELECT n, p AS events,
       regress.apply_in_order('msg_perm_' || n, ARRAY(
           SELECT CASE e
               WHEN 'c' THEN regress.user_event('user.created', 'user_perm_' || n, 'Old', 'old@example.com', 1700000000000)
               WHEN 'u' THEN regress.user_event('user.updated', 'user_perm_' || n, 'New', 'new@example.com', 1700000001000)
               WHEN 'd' THEN regress.deleted_event('user.deleted', 'user_perm_' || n, 1700000002000)
           END FROM unnest(p) WITH ORDINALITY AS t(e, i) ORDER BY i)) AS outcomes
  FROM (VALUES (1, ARRAY['c','u','d']), (2, ARRAY['c','d','u']), (3, ARRAY['u','c','d']),
               (4, ARRAY['u','d','c']), (5, ARRAY['d','c','u']), (6, ARRAY['d','u','c'])) AS v(n, p);
SELECT n, events, outcomes, regress.user_state('user_perm_' || n) AS final_state
  FROM regress.perm ORDER BY n;
SELECT count(DISTINCT regress.user_state('user_perm_' || n)) AS distinct_final_states FROM regress.perm;

-- created and updated in both orders: the newer data wins either way.
SELECT regress.apply_in_order('msg_cu', ARRAY[
    regress.user_event('user.created', 'user_cu', 'Old', 'old@example.com', 1700000000000),
    regress.user_event('user.updated', 'user_cu', 'New', 'new@example.com', 1700000001000)]) AS created_then_updated;
SELECT regress.apply_in_order('msg_uc', ARRAY[
    regress.user_event('user.updated', 'user_uc', 'New', 'new@example.com', 1700000001000),
    regress.user_event('user.created', 'user_uc', 'Old', 'old@example.com', 1700000000000)]) AS updated_then_created;
SELECT regress.user_state('user_cu') = regress.user_state('user_uc') AS same_state,
       regress.user_state('user_uc') AS state;

-- jnx.get_user_by_clerk_id: the profile with active org and memberships; NULL when unknown or deleted.
SELECT jsonb_pretty(jnx.get_user_by_clerk_id('user_cu') - 'id' - 'created_at' - 'updated_at');
SELECT jnx.get_user_by_clerk_id('user_unknown') IS NULL AS unknown_is_null,
       jnx.get_user_by_clerk_id('user_del_a') IS NULL AS deleted_is_null;

-- Bad user payloads are dead letters, kept for replay.
SELECT regress.deliver('msg_user_no_id', '{"type": "user.deleted", "data": {"deleted": true}}');
SELECT regress.deliver('msg_user_data_array', '{"type": "user.updated", "data": ["user_x"]}');
SELECT svix_id, status, error FROM jnx.webhook_events
 WHERE svix_id IN ('msg_user_no_id', 'msg_user_data_array') ORDER BY svix_id;

-- Clerk's millisecond times: a fraction is rounded to the millisecond, so a
-- tiny one is the epoch rather than an error; anything else unusable is NULL.
SELECT extract(epoch FROM jnx._ms_to_timestamptz('1e-400')) AS tiny,
       extract(epoch FROM jnx._ms_to_timestamptz('1764150000000.6')) AS fraction,
       jnx._ms_to_timestamptz('-1') IS NULL AS negative_is_null,
       jnx._ms_to_timestamptz('"1764150000000"') IS NULL AS string_is_null,
       jnx._ms_to_timestamptz('253402300800000') IS NULL AS too_late_is_null;

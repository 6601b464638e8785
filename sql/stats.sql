-- jnx.stats(): counts for monitoring (0.6.0). Earlier files leave data
-- behind, so the checks are differences between two calls around known writes.
SELECT jnx.stats() AS s0 \gset
SELECT array(SELECT jsonb_object_keys(:'s0'::jsonb) ORDER BY 1) AS keys;
SELECT :'s0'::jsonb->'webhook_events_24h' ?& ARRAY['processing', 'processed', 'stale', 'ignored', 'dead_letter']
       AS every_status,
       :'s0'::jsonb->>'extension_version' AS version;

-- One delivery applied, one dead letter received three hours ago, one
-- provisional user two hours old and one just created.
SELECT regress.deliver('msg_stats_1', regress.user_event('user.created', 'user_stats_1', 'Sam',
                       'sam@example.test', 1700000000000))->>'status' AS applied;
SELECT regress.deliver_raw('msg_stats_dead', convert_to('{"type": "user.created", "data": ', 'UTF8'))->>'status'
       AS dead;
UPDATE jnx.webhook_events SET received_at = now() - interval '3 hours' WHERE svix_id = 'msg_stats_dead';
INSERT INTO jnx.users (clerk_user_id, sync_state, created_at)
VALUES ('user_stats_old', 'provisional', now() - interval '2 hours'),
       ('user_stats_new', 'provisional', now());
SELECT jnx.stats() AS s1 \gset
SELECT (:'s1'::jsonb->'webhook_events_24h'->>'processed')::int
         - (:'s0'::jsonb->'webhook_events_24h'->>'processed')::int AS processed_delta,
       (:'s1'::jsonb->'webhook_events_24h'->>'dead_letter')::int
         - (:'s0'::jsonb->'webhook_events_24h'->>'dead_letter')::int AS dead_letter_delta,
       (:'s1'::jsonb->>'dead_letters_waiting')::int - (:'s0'::jsonb->>'dead_letters_waiting')::int
         AS waiting_delta,
       (:'s1'::jsonb->>'oldest_dead_letter_age_seconds')::int >= 10800 AS oldest_at_least_3h,
       (:'s1'::jsonb->>'oldest_dead_letter_age_seconds')::int
         = (SELECT floor(extract(epoch FROM now() - min(received_at)))::int FROM jnx.webhook_events
             WHERE status = 'dead_letter') AS oldest_matches_the_ledger,
       (:'s1'::jsonb->>'provisional_users_over_1h')::int - (:'s0'::jsonb->>'provisional_users_over_1h')::int
         AS provisional_delta;
-- A replayed dead letter no longer waits (it counts as processed now), and
-- a delivery older than 24 hours leaves the window: processed is unchanged.
UPDATE jnx.webhook_events SET received_at = now() - interval '25 hours' WHERE svix_id = 'msg_stats_1';
UPDATE jnx.webhook_events SET status = 'processed' WHERE svix_id = 'msg_stats_dead';
SELECT jnx.stats() AS s2 \gset
SELECT (:'s2'::jsonb->'webhook_events_24h'->>'processed')::int
         - (:'s1'::jsonb->'webhook_events_24h'->>'processed')::int AS processed_delta,
       (:'s2'::jsonb->'webhook_events_24h'->>'dead_letter')::int
         - (:'s1'::jsonb->'webhook_events_24h'->>'dead_letter')::int AS dead_letter_delta,
       (:'s2'::jsonb->>'dead_letters_waiting')::int - (:'s1'::jsonb->>'dead_letters_waiting')::int
         AS waiting_delta;
-- Configuration age: seconds since the last write, NULL when never set.
SELECT jsonb_typeof(:'s2'::jsonb->'config_age_seconds'->'webhook_secrets') AS secrets_age,
       (:'s2'::jsonb->'config_age_seconds'->>'webhook_secrets')::int >= 0 AS non_negative;
-- Counts only: no id, name or address of anyone.
SELECT jnx.stats()::text !~ '(user_|org_|@|Sam)' AS nothing_personal;

-- The owner, service_role and the shim's login role (for /metrics); not a
-- signed-in user nor anon.
SET ROLE service_role;
SELECT jsonb_typeof(jnx.stats()) AS service_role_reads;
RESET ROLE;
SET ROLE jnx_authenticator;
SELECT jsonb_typeof(jnx.stats()) AS shim_reads;
RESET ROLE;
SET ROLE authenticated;
SELECT jnx.stats();
RESET ROLE;
SET ROLE anon;
SELECT jnx.stats();
RESET ROLE;
DELETE FROM jnx.users WHERE clerk_user_id IN ('user_stats_old', 'user_stats_new');

-- jnx.replay_webhook: a dead letter, its cause fixed, applied from its stored payload.

-- A DBA's rule the payload breaks makes it a dead letter (SQLSTATE 23514) ...
ALTER TABLE jnx.users ADD CONSTRAINT regress_short_first_name CHECK (length(first_name) <= 8);
SELECT regress.deliver('msg_replay', regress.user_event('user.created', 'user_replay', 'Bartholomew', 'bart@example.com', 1700000000000));
SELECT status, attempts, error FROM jnx.webhook_events WHERE svix_id = 'msg_replay';
SELECT kind, severity, details->>'sqlstate' AS sqlstate FROM jnx.system_events
 WHERE details->>'svix_id' = 'msg_replay' ORDER BY id;
-- ... replaying it unchanged fails again and says so ...
SELECT jnx.replay_webhook('msg_replay');
-- ... and once the cause is gone it applies, exactly once.
ALTER TABLE jnx.users DROP CONSTRAINT regress_short_first_name;
SELECT jnx.replay_webhook('msg_replay');
SELECT status, attempts, error FROM jnx.webhook_events WHERE svix_id = 'msg_replay';
SELECT first_name, email, sync_state FROM jnx.users WHERE clerk_user_id = 'user_replay';
SELECT actor, action, request_id FROM jnx.audit_logs WHERE target_id = 'user_replay';
SELECT kind, severity, details - 'by' AS details FROM jnx.system_events
 WHERE kind = 'webhook.replayed' ORDER BY id;

-- Only dead letters can be replayed; unknown ids are an error.
SELECT regress.outcome($$SELECT jnx.replay_webhook('msg_replay')$$) AS processed_again;
SELECT regress.outcome($$SELECT jnx.replay_webhook('msg_never_seen')$$) AS unknown;
-- A Svix retry of it is still a duplicate.
SELECT regress.deliver('msg_replay', regress.user_event('user.created', 'user_replay', 'Bartholomew', 'bart@example.com', 1700000000000));

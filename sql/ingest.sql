-- jnx.ingest_clerk_webhook: verify, then apply once, in one transaction.
-- Deliveries are signed here with the configured secret and the current time.

-- user.created: one row, synced, primary email picked from the list.
SELECT regress.deliver('msg_u1_created',
    regress.user_event('user.created', 'user_1', 'Zoë', 'zoe@example.com', 1700000000000));
SELECT clerk_user_id, email, first_name, last_name, role, sync_state, clerk_updated_at
  FROM jnx.users ORDER BY clerk_user_id;

-- The same delivery again (a Svix retry): duplicate, nothing changes.
SELECT regress.deliver('msg_u1_created',
    regress.user_event('user.created', 'user_1', 'Changed', 'zoe@example.com', 1700000000000));
SELECT first_name FROM jnx.users WHERE clerk_user_id = 'user_1';

-- user.updated, newer: applied; the audit row names the changed fields only.
SELECT regress.deliver('msg_u1_updated',
    regress.user_event('user.updated', 'user_1', 'Zoé', 'zoe@example.org', 1700000001000));
SELECT first_name, email, clerk_updated_at FROM jnx.users WHERE clerk_user_id = 'user_1';

-- user.updated, older than what is stored: stale, nothing changes.
SELECT regress.deliver('msg_u1_old',
    regress.user_event('user.updated', 'user_1', 'Old', 'old@example.com', 1699999999000));
SELECT first_name, email FROM jnx.users WHERE clerk_user_id = 'user_1';

-- Platform admin from public_metadata.role.
SELECT regress.deliver('msg_u2_created', jsonb_set(
    regress.user_event('user.created', 'user_2', 'Admin', 'admin@example.com', 1700000000000),
    '{data,public_metadata}', '{"role": "admin"}'));
SELECT clerk_user_id, role FROM jnx.users ORDER BY clerk_user_id;

-- Events we do not sync are recorded and ignored.
SELECT regress.deliver('msg_session', '{"type": "session.created", "object": "event", "data": {"id": "sess_1"}}');
SELECT regress.deliver('msg_unknown', '{"type": "something.new", "object": "event", "data": {}}');

-- Signed but unappliable payloads are kept as dead letters (answered 200 by the shim).
SELECT regress.deliver_raw('msg_not_json', convert_to('not json at all', 'UTF8'));
SELECT regress.deliver_raw('msg_bad_utf8', '\xff00'::bytea);
SELECT regress.deliver('msg_no_type', '{"object": "event", "data": {"id": "user_3"}}');
SELECT regress.deliver('msg_no_id', '{"type": "user.created", "data": {"first_name": "No id"}}');
SELECT regress.deliver('msg_array', '[1, 2, 3]');

-- A bad signature raises and writes nothing at all.
SELECT count(*) AS events_before FROM jnx.webhook_events;
SELECT regress.outcome($$SELECT jnx.ingest_clerk_webhook('msg_forged', extract(epoch FROM now())::bigint::text,
    'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '{"type": "user.created"}'::bytea)$$) AS forged;
SELECT regress.outcome($$SELECT jnx.ingest_clerk_webhook('msg_stale', '1614265330',
    'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '{}'::bytea)$$) AS stale;
SELECT regress.outcome($$SELECT jnx.ingest_clerk_webhook(NULL, NULL, NULL, '{}'::bytea)$$) AS no_headers;
SELECT count(*) AS events_after FROM jnx.webhook_events;
SELECT count(*) AS forged_rows FROM jnx.webhook_events WHERE svix_id IN ('msg_forged', 'msg_stale');

-- Every delivery, with its outcome; the raw payload is kept for replay.
SELECT svix_id, type, status, attempts, error, processed_at IS NOT NULL AS processed,
       length(payload) > 0 AS has_payload
  FROM jnx.webhook_events ORDER BY received_at, svix_id;
SELECT kind, severity, details - 'svix_id' AS details, details->>'svix_id' AS svix_id
  FROM jnx.system_events WHERE kind = 'webhook.dead_letter' ORDER BY id;

-- The audit trail: who, what, which fields; never a value.
SELECT actor, action, target_type, target_id, request_id, details
  FROM jnx.audit_logs ORDER BY id;
SELECT count(*) AS audit_rows_with_values FROM jnx.audit_logs
 WHERE details::text ~ '(example|Zo|Ørsted)';

-- The audit log is append-only.
SELECT regress.outcome('UPDATE jnx.audit_logs SET actor = ''me''') AS update_audit;
SELECT regress.outcome('DELETE FROM jnx.audit_logs') AS delete_audit;
SELECT regress.outcome('TRUNCATE jnx.audit_logs') AS truncate_audit;

-- upsert_user validates its input.
SELECT regress.outcome($$SELECT jnx.upsert_user('', '{}')$$) AS empty_id;
SELECT regress.outcome($$SELECT jnx.upsert_user('user_9', '[]')$$) AS not_object;
SELECT regress.outcome($$SELECT jnx.upsert_user('user_9', '{"id": "user_8"}')$$) AS other_id;
SELECT count(*) AS user_9_rows FROM jnx.users WHERE clerk_user_id = 'user_9';

-- A signed document nested deeper than the server's stack allows is kept as a
-- dead letter (class 54), never an error that loses it on every retry.
SET max_stack_depth = '200kB';
SELECT regress.deliver_raw('msg_deep', convert_to(repeat('[', 50000) || repeat(']', 50000), 'UTF8')) AS deep;
RESET max_stack_depth;
SELECT status, left(error, 24) AS error, octet_length(payload) AS kept_bytes
  FROM jnx.webhook_events WHERE svix_id = 'msg_deep';

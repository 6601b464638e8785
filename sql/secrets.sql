-- jnx.set_webhook_secrets: validated, owner-only, cached per backend and
-- invalidated when changed.

-- Rejected lists write nothing.
SELECT regress.outcome('SELECT jnx.set_webhook_secrets(VARIADIC ''{}''::text[])') AS no_secret;
SELECT regress.outcome('SELECT jnx.set_webhook_secrets(VARIADIC array_fill(''whsec_QQ==''::text, ARRAY[17]))') AS seventeen;
SELECT regress.outcome('SELECT jnx.set_webhook_secrets(''whsec_QQ=='', NULL)') AS null_secret;
SELECT regress.outcome('SELECT jnx.set_webhook_secrets(''whsec_QQ=='', ''whsec_!!'')') AS one_invalid;
SELECT count(*) AS stored_after_rejections FROM jnx.webhook_secrets;
SELECT count(*) AS events_after_rejections FROM jnx.system_events;

-- The test vector's secret is accepted; verification now uses it.
SELECT jnx.set_webhook_secrets(secret) FROM regress.vector;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS configured_valid
  FROM regress.vector;

-- Rotation: old and new both accepted; then the old one alone is dropped and
-- this backend's cache follows at once.
SELECT jnx.set_webhook_secrets('whsec_' || encode('new key, 24 bytes long!!', 'base64'), secret)
  FROM regress.vector;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS old_during_rotation
  FROM regress.vector;
SELECT jnx.set_webhook_secrets('whsec_' || encode('new key, 24 bytes long!!', 'base64'));
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS old_after_rotation
  FROM regress.vector;

-- A change rolled back leaves the committed secrets in force, even in the
-- backend that used the uncommitted ones.
BEGIN;
SELECT jnx.set_webhook_secrets(secret) FROM regress.vector;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS inside_transaction
  FROM regress.vector;
ROLLBACK;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS after_rollback
  FROM regress.vector;

-- Each change is a system event that names the count, never a secret.
SELECT kind, severity, details FROM jnx.system_events ORDER BY id;

-- Nobody but the owner reads or changes them.
CREATE ROLE jnx_regress_outsider;
GRANT USAGE ON SCHEMA regress TO jnx_regress_outsider;
GRANT SELECT ON regress.vector TO jnx_regress_outsider;
SET ROLE jnx_regress_outsider;
SELECT regress.outcome('SELECT secret FROM jnx.webhook_secrets') AS select_secrets;
SELECT regress.outcome('SELECT jnx.set_webhook_secrets(''whsec_QQ=='')') AS set_secrets;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', ''1'', ''v1,x'', ''''::bytea)') AS verify_configured;
SELECT regress.outcome('SELECT jnx.ingest_clerk_webhook(''msg_1'', ''1'', ''v1,x'', ''''::bytea)') AS ingest;
SELECT regress.outcome('SELECT * FROM jnx.system_events') AS system_events;
-- Signing with an explicit secret is a pure function, open to all.
SELECT jnx.webhook_sign(secret, msg_id, ts, body) = signature AS sign_for_everyone FROM regress.vector;
RESET ROLE;
REVOKE ALL ON regress.vector FROM jnx_regress_outsider;
REVOKE ALL ON SCHEMA regress FROM jnx_regress_outsider;
DROP ROLE jnx_regress_outsider;

-- Leave the vector's secret configured for the next tests.
SELECT jnx.set_webhook_secrets(secret) FROM regress.vector;

-- More than 16 stored secrets (only possible by going around the setter and
-- the table's CHECK) are refused, never silently cut to 16.
BEGIN;
ALTER TABLE jnx.webhook_secrets DROP CONSTRAINT webhook_secrets_position_check;
INSERT INTO jnx.webhook_secrets (position, secret)
    SELECT 100 + n, 'whsec_' || encode(convert_to('key ' || n, 'UTF8'), 'base64') FROM generate_series(1, 17) n;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS seventeen_stored
  FROM regress.vector;
ROLLBACK;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS after_rollback_again
  FROM regress.vector;

-- The leader of a parallel query may not take a new snapshot, which a reload
-- needs (the statement's may predate the change): verify_webhook is PARALLEL
-- UNSAFE, so even a forced parallel plan leaves it out, and a wrapper
-- mislabeled PARALLEL RESTRICTED that reaches it in parallel mode after the
-- secrets changed gets JX901, not the secrets of an older snapshot.
CREATE TABLE regress.parallel_rows AS SELECT g FROM generate_series(1, 1000) g;
ANALYZE regress.parallel_rows;
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT jnx.set_webhook_secrets(secret) FROM regress.vector;
EXPLAIN (costs off)
SELECT jnx.verify_webhook(v.msg_id, v.ts::text, v.signature, v.body, now => to_timestamp(v.ts))
  FROM regress.parallel_rows p, regress.vector v WHERE p.g = 1;
SELECT jnx.verify_webhook(v.msg_id, v.ts::text, v.signature, v.body, now => to_timestamp(v.ts))
       AS verified_by_a_serial_plan
  FROM regress.parallel_rows p, regress.vector v WHERE p.g = 1;
CREATE FUNCTION regress.verify_restricted(msg_id text, ts bigint, signature text, body bytea)
RETURNS text LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
BEGIN
    PERFORM jnx.verify_webhook(msg_id, ts::text, signature, body, now => to_timestamp(ts));
    RETURN 'ok';
END
$$;
SELECT jnx.set_webhook_secrets(secret) FROM regress.vector;
EXPLAIN (costs off)
SELECT regress.verify_restricted(v.msg_id, v.ts, v.signature, v.body)
  FROM regress.parallel_rows p, regress.vector v WHERE p.g = 1;
\set VERBOSITY sqlstate
SELECT regress.verify_restricted(v.msg_id, v.ts, v.signature, v.body)
  FROM regress.parallel_rows p, regress.vector v WHERE p.g = 1;
\set VERBOSITY default
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS after_the_parallel_query
  FROM regress.vector;
DROP TABLE regress.parallel_rows;
DROP FUNCTION regress.verify_restricted(text, bigint, text, bytea);

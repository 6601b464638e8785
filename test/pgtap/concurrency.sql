-- pgTAP: what other sessions can do to this one. Real second sessions
-- (dblink) hold locks and commit while this backend reloads its caches or
-- runs jnx.me(). Not wrapped in a transaction: the other sessions must see
-- what this one commits, and the other way round. Cleans up after itself.
\getenv tokens_file JNX_TOKENS_FILE
\set ECHO none
\i :tokens_file
\set QUIET 1
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT plan(32);

CREATE SCHEMA conc;
-- A libpq conninfo for another session on this database, as this user.
CREATE FUNCTION conc.conninfo(app text) RETURNS text LANGUAGE sql AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s application_name=%s',
                  split_part(current_setting('unix_socket_directories'), ',', 1),
                  current_setting('port'), current_database(), current_user, app)
$$;
-- Waits (at most 10 s) until the session named app waits for a lock.
CREATE FUNCTION conc.wait_for_lock(app text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        IF EXISTS (SELECT 1 FROM pg_stat_activity
                    WHERE application_name = app AND wait_event_type = 'Lock') THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
-- Runs a statement that returns one row of one column in another session.
CREATE FUNCTION conc.remote(conn text, sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM dblink(conn, sql) AS t(r text);
END
$$;
SELECT dblink_connect('admin', conc.conninfo('conc_admin'));
SELECT dblink_connect('locker', conc.conninfo('conc_locker'));

-- 1. A JWKS reload that fails (lock timeout) must not leave the removed key
--    accepted in this backend.
SELECT jnx.set_jwks(:'jwks_with_stranger');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
SELECT lives_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_stranger'),
                'the second key is accepted while configured (and now cached here)');
-- Another session removes it and commits; a third holds the table.
SELECT conc.remote('admin', format('SELECT jnx.set_jwks(%L)::text', :'jwks'));
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE jnx.token_config IN ACCESS EXCLUSIVE MODE');
SET lock_timeout = '200ms';
SELECT throws_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_stranger'), '55P03', NULL,
                 'the reload cannot read the table: lock timeout');
SELECT throws_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_stranger'), '55P03', NULL,
                 'a second try reloads again instead of trusting the old keys');
SELECT throws_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_alice'), '55P03', NULL,
                 'no token verifies with a configuration that could not be read');
SELECT dblink_exec('locker', 'ROLLBACK');
SELECT throws_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_stranger'), 'JX102', NULL,
                 'once readable: the removed key is refused');
SELECT lives_ok(format('SELECT jnx.verify_session_token(%L)', :'tok_alice'),
                'and the remaining key still verifies');
RESET lock_timeout;

-- 1b. Inside one open transaction (each isolation level): a key removed and
--     committed by another session is refused at the next call, not at the
--     next transaction.
SELECT jnx.set_jwks(:'jwks_with_stranger');
CREATE FUNCTION conc.removed_key_in_open_transaction(isolation text, token text,
                                                     in_parallel_mode boolean DEFAULT false)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    outcome text;
BEGIN
    -- The first call loads the keys and takes the transaction's snapshot
    -- (which still has the key); the second comes after the removal,
    -- directly or (1c) through a wrapper forced into parallel mode.
    PERFORM dblink_exec('caller', 'BEGIN ISOLATION LEVEL ' || isolation);
    PERFORM * FROM dblink('caller', format('SELECT jnx.verify_session_token(%L)::text', token)) AS t(r text);
    IF in_parallel_mode THEN
        PERFORM dblink_exec('caller', 'SET LOCAL force_parallel_mode = on');
    END IF;
    PERFORM conc.remote('admin', format('SELECT jnx.set_jwks(%L)::text', current_setting('conc.jwks')));
    BEGIN
        PERFORM * FROM dblink('caller', format(CASE WHEN in_parallel_mode
                                                    THEN 'SELECT conc.verify_restricted(%L)'
                                                    ELSE 'SELECT jnx.verify_session_token(%L)::text' END,
                                               token)) AS t(r text);
        outcome := 'accepted';
    EXCEPTION WHEN OTHERS THEN
        outcome := SQLSTATE;
    END;
    PERFORM dblink_exec('caller', 'ROLLBACK');
    PERFORM conc.remote('admin', format('SELECT jnx.set_jwks(%L)::text', current_setting('conc.jwks_with_stranger')));
    RETURN outcome;
END
$$;
SELECT set_config('conc.jwks', :'jwks', false) IS NULL, set_config('conc.jwks_with_stranger', :'jwks_with_stranger', false) IS NULL;
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
SELECT is(conc.removed_key_in_open_transaction(iso, :'tok_stranger'), 'JX102',
          'a key removed while a ' || iso || ' transaction runs is refused in that transaction')
  FROM unnest(ARRAY['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']) iso;
-- 1c. The same in a parallel query's leader, which may not take the fresh
--     snapshot that the reload reads with: the function is PARALLEL UNSAFE,
--     and a wrapper mislabeled PARALLEL RESTRICTED (forced into parallel
--     mode) must get an error, not the key set of its old snapshot.
SELECT dblink_exec('caller', $$CREATE FUNCTION conc.verify_restricted(token text) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS 'BEGIN RETURN jnx.verify_session_token(token)::text; END'$$);
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'jnx.verify_session_token(text, timestamptz)'::regprocedure),
          'u', 'verify_session_token is PARALLEL UNSAFE: no parallel plan calls it');
SELECT is((SELECT proparallel FROM pg_proc
            WHERE oid = 'jnx.verify_webhook(text, text, text, bytea, text, timestamptz)'::regprocedure),
          'u', 'so is verify_webhook, which reloads the secrets the same way');
SELECT is(conc.removed_key_in_open_transaction('REPEATABLE READ', :'tok_stranger', true), 'JX901',
          'a key removed while a REPEATABLE READ transaction runs is not accepted in parallel mode');
SELECT conc.remote('caller', format('SELECT jnx.verify_session_token(%L)::text', :'tok_alice'));
SELECT dblink_exec('caller', 'SET force_parallel_mode = on');
SELECT is((SELECT r FROM dblink('caller', format('SELECT conc.verify_restricted(%L)::jsonb->>''sub''', :'tok_alice')) AS t(r text)),
          'user_alice', 'with a current cache, parallel mode verifies as usual');
SELECT dblink_exec('caller', 'RESET force_parallel_mode');
SELECT dblink_exec('caller', 'DROP FUNCTION conc.verify_restricted(text)');
SELECT dblink_disconnect('caller');
SELECT jnx.set_jwks(:'jwks');

-- 2. The same for webhook secrets: a failed reload must not make the
--    configured secret look missing (JX004, which the shim answers 503).
SELECT jnx.set_webhook_secrets('whsec_' || encode('concurrency test key number one!', 'base64'));
CREATE TABLE conc.delivery AS
    SELECT 'msg_conc_1'::text AS id, extract(epoch FROM now())::bigint AS ts,
           convert_to('{"type":"user.created"}', 'UTF8') AS body;
SELECT lives_ok($$SELECT jnx.verify_webhook(id, ts::text,
                      jnx.webhook_sign('whsec_' || encode('concurrency test key number one!', 'base64'), id, ts, body),
                      body) FROM conc.delivery$$, 'the configured secret verifies (and is cached here)');
SELECT conc.remote('admin', $$SELECT jnx.set_webhook_secrets(
    'whsec_' || encode('concurrency test key number one!', 'base64'),
    'whsec_' || encode('concurrency test key number two!', 'base64'))::text$$);
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE jnx.webhook_secrets IN ACCESS EXCLUSIVE MODE');
SET lock_timeout = '200ms';
SELECT throws_ok($$SELECT jnx.verify_webhook(id, ts::text, 'v1,AAAA', body) FROM conc.delivery$$,
                 '55P03', NULL, 'the reload of the secrets times out');
SELECT throws_ok($$SELECT jnx.verify_webhook(id, ts::text, 'v1,AAAA', body) FROM conc.delivery$$,
                 '55P03', NULL, 'and times out again: the secrets never look missing (JX004)');
SELECT dblink_exec('locker', 'ROLLBACK');
RESET lock_timeout;
SELECT lives_ok($$SELECT jnx.verify_webhook(id, ts::text,
                      jnx.webhook_sign('whsec_' || encode('concurrency test key number two!', 'base64'), id, ts, body),
                      body) FROM conc.delivery$$, 'once readable: the newly added secret verifies');

-- 3. jnx.me() racing a user.deleted: the tombstone commits while me() waits
--    on it. The answer is JX203 (the shim's 403), never NULL (an empty 200).
CREATE FUNCTION conc.me_as(token text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jnx.authenticate(token);
    SET LOCAL ROLE authenticated;
    RETURN jnx.me();
END
$$;
GRANT USAGE ON SCHEMA conc TO authenticated;
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
SELECT dblink_exec('admin', 'BEGIN');
SELECT conc.remote('admin', $$SELECT jnx._delete_user('user_dave', now())::text$$);
SELECT dblink_send_query('caller', format('SELECT conc.me_as(%L)', :'tok_dave'));
SELECT ok(conc.wait_for_lock('conc_caller'), 'me() waits on the uncommitted tombstone');
SELECT dblink_exec('admin', 'COMMIT');
SELECT throws_ok($$SELECT * FROM dblink_get_result('caller') AS t(me jsonb)$$, 'JX203', NULL,
                 'me() answers "deleted", not NULL');
SELECT is((SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_dave' AND deleted_at IS NOT NULL),
          1::bigint, 'one row: the tombstone');
SELECT dblink_disconnect('caller');
-- The same without the race: a tombstone already there is refused up front.
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
SELECT throws_ok(format($$SELECT * FROM dblink('caller', %L) AS t(me jsonb)$$,
                        format('SELECT conc.me_as(%L)', :'tok_dave')),
                 'JX203', NULL, 'a deleted user gets no provisional row');
SELECT is((SELECT count(*) FROM jnx.users WHERE clerk_user_id = 'user_dave'), 1::bigint,
          'still only the tombstone');

SELECT dblink_disconnect('caller');

-- 4. An erasure racing a membership of the same person, both ways round.
CREATE FUNCTION conc.membership(id text, usr text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', id, 'role', 'org:member', 'updated_at', 1700000000000,
                              'organization', jsonb_build_object('id', 'org_race'),
                              'public_user_data', jsonb_build_object('user_id', usr, 'first_name', 'Racey'))
$$;
SELECT jnx.upsert_user(u, jsonb_build_object('id', u, 'first_name', 'Racey', 'updated_at', 1700000000000))
  FROM unnest(ARRAY['user_race1', 'user_race2']) u;
SELECT jnx.upsert_membership('orgmem_' || u, conc.membership('orgmem_' || u, u))
  FROM unnest(ARRAY['user_race1', 'user_race2']) u;
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
-- 4a. The erasure holds the person's row; a membership arriving meanwhile
--     waits, then finds them erased and writes nothing.
SELECT dblink_exec('admin', 'BEGIN');
SELECT conc.remote('admin', $$SELECT jnx.erase_user('user_race1', 'race test')::text$$);
SELECT dblink_send_query('caller', format('SELECT (jnx.upsert_membership(%L, conc.membership(%L, %L))).id::text',
                                          'orgmem_race1_late', 'orgmem_race1_late', 'user_race1'));
SELECT ok(conc.wait_for_lock('conc_caller'), 'a membership waits on the erasure in progress');
SELECT dblink_exec('admin', 'COMMIT');
SELECT is((SELECT r FROM dblink_get_result('caller') AS t(r text)), NULL,
          'then applies nothing (NULL: stale)');
SELECT is((SELECT count(*) FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
            WHERE u.clerk_user_id = 'user_race1'), 0::bigint, 'the erased person has no membership');
SELECT is((SELECT first_name FROM jnx.users WHERE clerk_user_id = 'user_race1'), NULL, 'and no name');
SELECT dblink_disconnect('caller');
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
-- 4b. A membership holds the row; the erasure waits for it, then removes it.
SELECT dblink_exec('locker', 'BEGIN');
SELECT conc.remote('locker', format('SELECT (jnx.upsert_membership(%L, conc.membership(%L, %L))).id::text',
                                    'orgmem_race2_new', 'orgmem_race2_new', 'user_race2'));
SELECT dblink_send_query('caller', $$SELECT jnx.erase_user('user_race2', 'race test')->>'memberships'$$);
SELECT ok(conc.wait_for_lock('conc_caller'), 'an erasure waits on a membership in progress');
SELECT dblink_exec('locker', 'COMMIT');
SELECT is((SELECT r FROM dblink_get_result('caller') AS t(r text)), '2',
          'then erases both memberships, the one committed meanwhile too');
SELECT is((SELECT count(*) FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
            WHERE u.clerk_user_id = 'user_race2'), 0::bigint, 'none is left');
SELECT dblink_disconnect('caller');
-- 4c. A delivery about the person that locks no user row (session.*): the
--     erasure waits for it (the person's advisory lock) and drops it too.
CREATE FUNCTION conc.ingest(id text, event jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT jnx.ingest_clerk_webhook(id, x.t::text,
               jnx.webhook_sign('whsec_' || encode('concurrency test key number one!', 'base64'), id, x.t, x.b),
               x.b)->>'status'
      FROM (SELECT extract(epoch FROM now())::bigint AS t, convert_to(event::text, 'UTF8') AS b) x
$$;
SELECT jnx.upsert_user('user_race3', jsonb_build_object('id', 'user_race3', 'updated_at', 1700000000000));
SELECT dblink_connect('caller', conc.conninfo('conc_caller'));
SELECT dblink_exec('locker', 'BEGIN');
SELECT conc.remote('locker', $$SELECT conc.ingest('msg_race3', '{"type": "session.created", "data":
    {"id": "sess_race3", "user_id": "user_race3", "latest_activity": {"city": "Racetown"}}}')$$);
SELECT dblink_send_query('caller', $$SELECT jnx.erase_user('user_race3', 'race test')->>'webhook_events'$$);
SELECT ok(conc.wait_for_lock('conc_caller'), 'an erasure waits for a session event about the person in progress');
SELECT dblink_exec('locker', 'COMMIT');
SELECT is((SELECT r FROM dblink_get_result('caller') AS t(r text)), '1',
          'then drops its payload as well');
SELECT is((SELECT count(*) FROM jnx.webhook_events WHERE svix_id = 'msg_race3' AND payload IS NULL),
          1::bigint, 'its ledger row stays, without the payload');
SELECT dblink_disconnect('caller');
DELETE FROM jnx.webhook_events WHERE svix_id = 'msg_race3';

SELECT dblink_disconnect('locker');
SELECT dblink_disconnect('admin');
SELECT * FROM finish();

-- Clean up for the other pgTAP files of this database.
DELETE FROM jnx.users WHERE clerk_user_id IN ('user_dave', 'user_race1', 'user_race2', 'user_race3');
DELETE FROM jnx.erasure_queue;
DELETE FROM jnx.orgs WHERE clerk_org_id = 'org_race';
DELETE FROM jnx.token_config;
DELETE FROM jnx.webhook_secrets;
DROP SCHEMA conc CASCADE;

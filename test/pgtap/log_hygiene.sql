-- pgTAP: failed calls never copy a secret or a token into the server log.
-- PostgreSQL logs the text of a statement that fails (log_min_error_statement,
-- ERROR by default); for our functions that text holds the secret or the
-- token as a literal. The calls below fail at the top level, uncaught, so
-- that PostgreSQL logs them; then the log is read back (pg_read_file, from
-- the size it had before). JNX_BASE names the test cluster's directory.
\getenv tokens_file JNX_TOKENS_FILE
\set ECHO none
\i :tokens_file
\getenv base JNX_BASE
\set QUIET 1
SELECT plan(9);
SELECT :'base' || '/postgresql.log' AS log_path \gset
SELECT (pg_stat_file(:'log_path')).size AS log_start \gset
SHOW log_min_error_statement;

-- Secrets that only this file uses, so that finding one means this file leaked it.
SELECT 'whsec_' || encode('log hygiene secret number one!!!', 'base64') AS secret_one,
       'whsec_' || encode('log hygiene secret number two!!!', 'base64') AS secret_two \gset
SELECT jnx.set_jwks(:'jwks');
SELECT jnx.set_token_policy(ARRAY[:'issuer'], ARRAY[:'party']);
CREATE EXTENSION IF NOT EXISTS dblink;

\set ON_ERROR_STOP 0
-- A valid secret next to an invalid one, and next to a NULL.
SELECT jnx.set_webhook_secrets(:'secret_one', 'whsec_o!');
SELECT jnx.set_webhook_secrets(:'secret_two', NULL);
-- A valid list that fails for another reason: a lock timeout.
SELECT dblink_connect('locker', format('host=%s port=%s dbname=%s user=%s',
                      split_part(current_setting('unix_socket_directories'), ',', 1),
                      current_setting('port'), current_database(), current_user));
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE jnx.webhook_secrets IN ACCESS EXCLUSIVE MODE');
SET lock_timeout = '100ms';
SELECT jnx.set_webhook_secrets(:'secret_one', :'secret_two');
RESET lock_timeout;
SELECT dblink_exec('locker', 'ROLLBACK');
SELECT dblink_disconnect('locker');
-- Verification and signing with an explicit secret.
SELECT jnx.verify_webhook('msg_log_1', '1', 'v1,AAAA', 'body', :'secret_one');
SELECT jnx.verify_webhook(NULL, '1', 'v1,AAAA', 'body', :'secret_two');
SELECT jnx.webhook_sign(:'secret_one', 'msg with spaces', 1, 'body');
-- Tokens that fail.
SELECT jnx.verify_session_token(:'tok_expired');
SELECT jnx.authenticate(:'tok_wrong_iss');
SELECT jnx.verify_session_token(:'tok_alice', 'infinity');
\set ON_ERROR_STOP 1

SELECT pg_read_file(:'log_path', :log_start, (pg_stat_file(:'log_path')).size - :log_start) AS log_text \gset
SELECT cmp_ok((SELECT count(*) FROM regexp_matches(:'log_text', 'ERROR:', 'g')), '>=', 9::bigint,
              'the failures were logged');
SELECT ok(strpos(:'log_text', 'lock timeout') > 0 OR strpos(:'log_text', 'canceling statement due to lock timeout') > 0,
          'including the lock timeout');
SELECT is(strpos(:'log_text', substr(:'secret_one', 7, 24)), 0, 'the first secret is not in the log');
SELECT is(strpos(:'log_text', substr(:'secret_two', 7, 24)), 0, 'the second secret is not in the log');
SELECT is(strpos(:'log_text', split_part(:'tok_expired', '.', 3)), 0, 'no expired token signature in the log');
SELECT is(strpos(:'log_text', split_part(:'tok_wrong_iss', '.', 2)), 0, 'no token claims in the log');
SELECT is(strpos(:'log_text', split_part(:'tok_alice', '.', 3)), 0, 'no valid token in the log');
SELECT is(strpos(:'log_text', 'STATEMENT:'), 0, 'no failed statement text at all');
SELECT is((SELECT array_agg(c ORDER BY c) FROM pg_db_role_setting, unnest(setconfig) c
            WHERE setrole = 'jnx_authenticator'::regrole AND setdatabase = 0 AND c LIKE 'log_parameter%'),
          ARRAY['log_parameter_max_length=0', 'log_parameter_max_length_on_error=0'],
          'the shim''s role never has bound parameters (tokens, bodies) logged');
SELECT * FROM finish();

DELETE FROM jnx.token_config;
DELETE FROM jnx.webhook_secrets;

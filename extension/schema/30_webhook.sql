-- Webhook signatures (Svix / Standard Webhooks, HMAC-SHA256), in C++.

CREATE OR REPLACE FUNCTION jnx.webhook_sign(secret text, msg_id text, msg_timestamp bigint, body bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'jnx_webhook_sign'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION jnx.webhook_sign(text, text, bigint, bytea) IS
    'The "v1,<base64>" Svix signature of a message, for tools and tests.';

CREATE OR REPLACE FUNCTION jnx.verify_webhook(
    msg_id text, msg_timestamp text, signature_header text, body bytea,
    secret text DEFAULT NULL, now timestamptz DEFAULT now())
RETURNS void
AS 'MODULE_PATHNAME', 'jnx_verify_webhook'
LANGUAGE C STABLE PARALLEL UNSAFE;  -- see verify_session_token (35_session.sql)
COMMENT ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) IS
    'Raises JX001-JX005 unless the delivery is validly signed; secret NULL = the configured secrets.';
-- With secret NULL it checks against the configured secrets: not for everyone.
REVOKE ALL ON FUNCTION jnx.verify_webhook(text, text, text, bytea, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jnx._check_webhook_secret(secret text) RETURNS void
AS 'MODULE_PATHNAME', 'jnx_check_webhook_secret'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._check_webhook_secret(text) FROM PUBLIC;

-- The secrets are the arguments of the statement that calls this function:
-- if it fails (a malformed secret, a lock timeout, a cancel), PostgreSQL
-- would copy that statement into the server log (log_min_error_statement).
-- The SET clause is still in force when the error is logged, so nothing is.
CREATE OR REPLACE FUNCTION jnx.set_webhook_secrets(VARIADIC secrets text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic AS $$
DECLARE
    n int := coalesce(cardinality(secrets), 0);
BEGIN
    IF n = 0 OR n > 16 THEN
        RAISE EXCEPTION 'webhook secret is invalid'
            USING ERRCODE = 'JX005', DETAIL = 'Give between 1 and 16 secrets.';
    END IF;
    FOR i IN 1 .. n LOOP
        IF secrets[i] IS NULL THEN
            RAISE EXCEPTION 'webhook secret is invalid'
                USING ERRCODE = 'JX005', DETAIL = format('Secret %s is NULL.', i);
        END IF;
        PERFORM jnx._check_webhook_secret(secrets[i]);
    END LOOP;
    DELETE FROM jnx.webhook_secrets;
    INSERT INTO jnx.webhook_secrets (position, secret)
        SELECT ord, s FROM unnest(secrets) WITH ORDINALITY AS t(s, ord);
    INSERT INTO jnx.system_events (kind, severity, details)
        VALUES ('config.webhook_secrets', 'info', jsonb_build_object('count', n));
END
$$;
COMMENT ON FUNCTION jnx.set_webhook_secrets(text[]) IS
    'Replaces the accepted webhook secrets (pass old and new during rotation). Owner only.';
REVOKE ALL ON FUNCTION jnx.set_webhook_secrets(text[]) FROM PUBLIC;

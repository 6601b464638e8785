-- Installs the extension and a helper that reports an error's SQLSTATE and
-- message (and detail) as a row, so that the expected output reads as a table of codes.
CREATE EXTENSION jnx_auth;
SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth';

CREATE SCHEMA regress;
CREATE FUNCTION regress.outcome(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END
$$;

-- The public Svix test vector, used across the suite.
CREATE TABLE regress.vector AS SELECT
    'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'::text AS secret,
    'msg_p5jXN8AQM9LWM0D4loKWxJek'::text AS msg_id,
    1614265330::bigint AS ts,
    convert_to('{"test": 2432232314}', 'UTF8') AS body,
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='::text AS signature;

-- jnx.verify_webhook: every way a delivery can be wrong has its own SQLSTATE.
-- The vector was signed at 1614265330; "now" is passed explicitly.

-- Valid: returns nothing, raises nothing.
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, %L, to_timestamp(%s))',
    msg_id, ts, signature, body, secret, ts)) AS valid
  FROM regress.vector;

CREATE FUNCTION regress.verify(header text, at_offset int DEFAULT 0, id text DEFAULT NULL,
                               timestamp_text text DEFAULT NULL, payload bytea DEFAULT NULL,
                               key text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT regress.outcome(format(
        'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, %L, to_timestamp(%s))',
        coalesce(id, v.msg_id), coalesce(timestamp_text, v.ts::text), header,
        coalesce(payload, v.body), coalesce(key, v.secret), v.ts + at_offset))
    FROM regress.vector v
$$;

-- Several entries (secret rotation), other versions ignored, any v1 match accepts.
SELECT regress.verify(signature) AS one_entry,
       regress.verify('v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ' || signature) AS second_of_two,
       regress.verify(signature || ' v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=') AS first_of_two,
       regress.verify('v2,abc ' || signature || ' v1a,xyz') AS among_other_versions,
       regress.verify(signature || '  ' || signature) AS double_space
  FROM regress.vector;

-- Timestamp window: exactly 300 s passes in both directions, 301 s does not.
SELECT regress.verify(signature, 300) AS plus_300, regress.verify(signature, -300) AS minus_300
  FROM regress.vector;
SELECT regress.verify(signature, 301) AS too_old FROM regress.vector;
SELECT regress.verify(signature, -301) AS too_new FROM regress.vector;

-- Bad signatures (JX002): the reference compares the base64 text exactly.
SELECT regress.verify(signature, payload => convert_to('{"test": 2432232315}', 'UTF8')) AS tampered_body,
       regress.verify(signature, id => 'msg_other') AS other_id
  FROM regress.vector;
SELECT regress.verify(signature, key => 'whsec_' || encode('another key', 'base64')) AS other_secret
  FROM regress.vector;
SELECT regress.verify('V1' || substr(signature, 3)) AS uppercase_version FROM regress.vector;
SELECT regress.verify(rtrim(signature, '=')) AS stripped_padding FROM regress.vector;
SELECT regress.verify(translate(signature, '+/', '-_')) AS base64url FROM regress.vector;
SELECT regress.verify('v1, ' || substr(signature, 4)) AS space_after_comma FROM regress.vector;
SELECT regress.verify('v1,AAAA' || chr(9) || signature) AS tab_separator FROM regress.vector;
SELECT regress.verify('v2,' || substr(signature, 4)) AS only_other_version FROM regress.vector;
SELECT regress.verify(left(signature, 20)) AS truncated FROM regress.vector;

-- Malformed headers (JX001).
SELECT regress.verify('') AS empty_header;
SELECT regress.verify('v1') AS no_comma;
SELECT regress.verify('v1,' || repeat('A', 9000)) AS oversized_header;
SELECT regress.verify(signature, id => '') AS empty_id FROM regress.vector;
SELECT regress.verify(signature, id => 'msg 1') AS space_in_id FROM regress.vector;
SELECT regress.verify(signature, id => repeat('m', 257)) AS long_id FROM regress.vector;
SELECT regress.verify(signature, timestamp_text => '') AS empty_timestamp FROM regress.vector;
SELECT regress.verify(signature, timestamp_text => '16142653.30') AS fractional_timestamp FROM regress.vector;
SELECT regress.verify(signature, timestamp_text => '+1614265330') AS signed_timestamp FROM regress.vector;
SELECT regress.verify(signature, timestamp_text => '1614265330000000000') AS timestamp_19_digits FROM regress.vector;
-- A zero-padded timestamp is the same integer and is signed as such.
SELECT regress.verify(signature, timestamp_text => '01614265330') AS zero_padded FROM regress.vector;

-- Missing arguments name what is missing.
SELECT regress.outcome('SELECT jnx.verify_webhook(NULL, ''1'', ''v1,x'', ''''::bytea, ''whsec_QQ=='')') AS no_id;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', NULL, ''v1,x'', ''''::bytea, ''whsec_QQ=='')') AS no_timestamp;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', ''1'', NULL, ''''::bytea, ''whsec_QQ=='')') AS no_signature;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', ''1'', ''v1,x'', NULL, ''whsec_QQ=='')') AS no_body;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', ''1'', ''v1,x'', ''''::bytea, ''whsec_QQ=='', NULL)') AS no_now;
SELECT regress.outcome('SELECT jnx.verify_webhook(''msg_1'', ''1'', ''v1,x'', ''''::bytea, ''whsec_QQ=='', ''infinity'')') AS infinite_now;
-- An invalid explicit secret (JX005).
SELECT regress.verify(signature, key => 'whsec_***') AS invalid_secret FROM regress.vector;

-- With no secret configured, the configured-secret form says so (JX004).
SELECT count(*) AS configured_secrets FROM jnx.webhook_secrets;
SELECT regress.outcome(format(
    'SELECT jnx.verify_webhook(%L, %L, %L, %L::bytea, now => to_timestamp(%s))',
    msg_id, ts, signature, body, ts)) AS no_secret_configured
  FROM regress.vector;

-- What a DBA sees, in full.
\set VERBOSITY default
SELECT jnx.verify_webhook(msg_id, ts::text, signature, body, secret, to_timestamp(ts + 3600))
  FROM regress.vector;
SELECT jnx.verify_webhook(msg_id, ts::text, 'v1,AAAA', body, secret, to_timestamp(ts))
  FROM regress.vector;

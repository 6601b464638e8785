-- jnx.webhook_sign: the "v1,<base64>" Svix signature.

-- The public Svix test vector.
SELECT jnx.webhook_sign(secret, msg_id, ts, body) = signature AS matches_vector
  FROM regress.vector;
SELECT jnx.webhook_sign(secret, msg_id, ts, body) FROM regress.vector;

-- The "whsec_" prefix is optional.
SELECT jnx.webhook_sign(substr(secret, 7), msg_id, ts, body) = signature AS without_prefix
  FROM regress.vector;

-- Every byte is signed: another body, id or timestamp gives another signature.
SELECT jnx.webhook_sign(secret, msg_id, ts, body || '\x20'::bytea) <> signature AS body_signed,
       jnx.webhook_sign(secret, msg_id || 'x', ts, body) <> signature AS id_signed,
       jnx.webhook_sign(secret, msg_id, ts + 1, body) <> signature AS timestamp_signed
  FROM regress.vector;

-- An empty body is a valid message.
SELECT length(jnx.webhook_sign(secret, msg_id, ts, ''::bytea)) AS empty_body_signature_length
  FROM regress.vector;

-- STRICT: NULL in, NULL out.
SELECT jnx.webhook_sign(NULL, 'msg_1', 1, ''::bytea) IS NULL AS null_secret;

-- Bad secrets and ids; the message never echoes the secret.
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_', 'msg_1', 1, ''::bytea)$$) AS empty_secret;
SELECT regress.outcome($$SELECT jnx.webhook_sign('', 'msg_1', 1, ''::bytea)$$) AS empty_string;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_not*base64', 'msg_1', 1, ''::bytea)$$) AS bad_alphabet;
SELECT regress.outcome(format('SELECT jnx.webhook_sign(%L, ''msg_1'', 1, ''''::bytea)', left(secret, -1))) AS bad_length
  FROM regress.vector;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_QQ', 'msg_1', 1, ''::bytea)$$) AS missing_padding;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_QR==', 'msg_1', 1, ''::bytea)$$) AS non_canonical;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_QQ==', '', 1, ''::bytea)$$) AS empty_msg_id;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_QQ==', 'msg 1', 1, ''::bytea)$$) AS space_in_msg_id;
SELECT regress.outcome($$SELECT jnx.webhook_sign('whsec_QQ==', 'msg_1', -1, ''::bytea)$$) AS negative_timestamp;

\set VERBOSITY default
SELECT jnx.webhook_sign('whsec_secretvalue!', 'msg_1', 1, ''::bytea);

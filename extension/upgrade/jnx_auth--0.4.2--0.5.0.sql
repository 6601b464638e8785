-- jnx_auth 0.4.2 -> 0.5.0: personal data under control (issue 9): export,
-- erasure, retention, imports. The build appends extension/schema/20_*.sql
-- onwards (CREATE OR REPLACE functions, triggers, roles, policies) after the
-- changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.5.0'" to load this file. \quit

ALTER TABLE jnx.users ADD COLUMN erased_at timestamptz;

ALTER TABLE jnx.webhook_events ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE jnx.webhook_events ADD COLUMN clerk_user_id text;

CREATE TABLE jnx.erasure_queue (
    clerk_user_id text PRIMARY KEY,
    since         timestamptz NOT NULL,        -- when the user.deleted arrived: the grace starts
    emails        text[] NOT NULL DEFAULT '{}' -- the addresses they had, to find them after
);
COMMENT ON TABLE jnx.erasure_queue IS
    'Users deleted in Clerk, waiting for their hard erasure after the grace period. Owner only.';
REVOKE ALL ON jnx.erasure_queue FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jnx.erasure_queue', '');
-- Users deleted before 0.5.0 wait for their erasure like later ones.
-- Their grace starts with this update; their addresses are what their
-- stored user events still say.
INSERT INTO jnx.erasure_queue (clerk_user_id, since)
SELECT clerk_user_id, now() FROM jnx.users WHERE deleted_at IS NOT NULL;

CREATE TABLE jnx.retention_config (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    webhook_payload_days    int NOT NULL DEFAULT 30 CHECK (webhook_payload_days BETWEEN 1 AND 3650),
    deleted_user_grace_days int NOT NULL DEFAULT 30 CHECK (deleted_user_grace_days BETWEEN 0 AND 3650),
    audit_days              int DEFAULT 365 CHECK (audit_days BETWEEN 1 AND 36500),
    payloads_dropped_before timestamptz NOT NULL DEFAULT '-infinity',
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.retention_config IS
    'Retention windows for payloads, deleted users and audit rows. Owner only; set with jnx.set_retention().';
REVOKE ALL ON jnx.retention_config FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jnx.retention_config', '');

-- Payloads stored by earlier versions get the same minimization as new ones
-- (no event_attributes.http_request: no client IP or user agent) and the
-- user each is about. One pass over the table, in this transaction; a payload
-- that is not a JSON object (a dead letter) is left as it is. The helper is
-- dropped again below.
CREATE FUNCTION jnx._upgrade_050_event(payload bytea, OUT stripped bytea, OUT subject text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    event jsonb;
BEGIN
    BEGIN
        event := convert_from(payload, 'UTF8')::jsonb;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        RETURN;
    END;
    IF jsonb_typeof(event) <> 'object' THEN
        RETURN;
    END IF;
    subject := CASE WHEN event->>'type' LIKE 'user.%' THEN event->'data'->>'id'
                    ELSE coalesce(event->'data'->'public_user_data'->>'user_id',
                                  event->'data'->>'user_id') END;
    IF jsonb_typeof(event->'event_attributes') = 'object' AND event->'event_attributes' ? 'http_request' THEN
        stripped := convert_to((event #- '{event_attributes,http_request}')::text, 'UTF8');
    END IF;
END
$$;
UPDATE jnx.webhook_events
   SET (payload, clerk_user_id) = (SELECT coalesce(e.stripped, payload), e.subject
                                     FROM jnx._upgrade_050_event(payload) e);
DROP FUNCTION jnx._upgrade_050_event(bytea);

CREATE INDEX webhook_events_subject_idx ON jnx.webhook_events (clerk_user_id, received_at);

-- _apply_event answers two more OUT columns (subject, stored): its row type
-- changes, which CREATE OR REPLACE cannot do.
DROP FUNCTION jnx._apply_event(text, bytea);

-- The reference for make bench, section 6: what a hand-written Clerk webhook
-- service typically keeps (the Node peer's shape): a ledger keyed by the
-- svix-id, the users, and an audit table. No verification, no payload, no
-- row-level security, no audit trigger.
CREATE TABLE plain_webhook_events (
    svix_id     text PRIMARY KEY,
    event_type  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE plain_users (
    id               bigserial PRIMARY KEY,
    clerk_user_id    text NOT NULL UNIQUE,
    email            text,
    first_name       text,
    last_name        text,
    image_url        text,
    public_metadata  jsonb NOT NULL DEFAULT '{}',
    clerk_updated_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE plain_audit_logs (
    id         bigserial PRIMARY KEY,
    actor      text NOT NULL,
    action     text NOT NULL,
    target_id  text,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plain_audit_logs_target_idx ON plain_audit_logs (target_id);

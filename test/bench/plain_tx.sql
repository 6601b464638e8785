\set n random(1, 2000000000)
BEGIN;
INSERT INTO plain_webhook_events (svix_id, event_type) VALUES ('msg_' || :client_id || '_' || :n, 'user.created') ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id;
INSERT INTO plain_users (clerk_user_id, email, first_name, last_name, image_url, public_metadata, clerk_updated_at) VALUES ('user_' || :client_id || '_' || :n, 'b' || :n || '@example.com', 'Bench', 'Mark', 'https://img.example.com/b.png', '{}', to_timestamp(1764150000000::double precision / 1000)) ON CONFLICT (clerk_user_id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name, image_url = excluded.image_url, public_metadata = excluded.public_metadata, clerk_updated_at = excluded.clerk_updated_at, updated_at = now() WHERE plain_users.clerk_updated_at <= excluded.clerk_updated_at;
INSERT INTO plain_audit_logs (actor, action, target_id, details) VALUES ('clerk-webhook', 'user.created', 'user_' || :client_id || '_' || :n, jsonb_build_object('svix_id', 'msg_' || :client_id || '_' || :n, 'email', 'b' || :n || '@example.com'));
COMMIT;

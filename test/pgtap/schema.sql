-- pgTAP: the shape of the jnx schema (tables, keys, indexes, triggers) and
-- who may touch what. Runs in a transaction that is rolled back.
BEGIN;
SELECT plan(124);

SELECT has_schema('jnx');
SELECT has_extension('jnx_auth');

-- Tables.
SELECT has_table('jnx', t, 'jnx.' || t || ' exists')
  FROM unnest(ARRAY['users', 'orgs', 'memberships', 'webhook_events', 'audit_logs', 'system_events',
                    'webhook_secrets']) t;

-- Keys.
SELECT col_is_pk('jnx', 'users', 'id', 'users.id is the primary key');
SELECT col_type_is('jnx', 'users', 'id', 'uuid', 'users.id is a uuid');
SELECT col_is_unique('jnx', 'users', 'clerk_user_id', 'users.clerk_user_id is unique');
SELECT col_not_null('jnx', 'users', 'clerk_user_id', 'users.clerk_user_id is required');
SELECT col_type_is('jnx', 'users', 'clerk_user_id', 'text', 'Clerk ids are text, not uuid');
SELECT col_is_pk('jnx', 'webhook_events', 'svix_id', 'webhook_events keyed by svix-id');
SELECT col_is_pk('jnx', 'audit_logs', 'id', 'audit_logs.id is the primary key');
SELECT col_type_is('jnx', 'audit_logs', 'id', 'bigint', 'audit_logs.id is a bigint');
SELECT col_is_pk('jnx', 'system_events', 'id', 'system_events.id is the primary key');
SELECT col_is_pk('jnx', 'orgs', 'id', 'orgs.id is the primary key');
SELECT col_is_unique('jnx', 'orgs', 'clerk_org_id', 'orgs.clerk_org_id is unique');
SELECT col_type_is('jnx', 'orgs', 'clerk_org_id', 'text', 'Clerk org ids are text');
SELECT col_is_pk('jnx', 'memberships', 'id', 'memberships.id is the primary key');
SELECT col_is_unique('jnx', 'memberships', 'clerk_membership_id', 'memberships.clerk_membership_id is unique');

-- Foreign keys, and what a delete does: deleting an org never deletes a user.
SELECT fk_ok('jnx', 'users', 'org_id', 'jnx', 'orgs', 'id');
SELECT fk_ok('jnx', 'memberships', 'user_id', 'jnx', 'users', 'id');
SELECT fk_ok('jnx', 'memberships', 'org_id', 'jnx', 'orgs', 'id');
SELECT is((SELECT confdeltype::text FROM pg_constraint WHERE conname = 'users_org_id_fkey'), 'n',
          'users.org_id is ON DELETE SET NULL');
SELECT is((SELECT confdeltype::text FROM pg_constraint WHERE conname = 'memberships_user_id_fkey'), 'c',
          'memberships go with their user');
SELECT is((SELECT confdeltype::text FROM pg_constraint WHERE conname = 'memberships_org_id_fkey'), 'c',
          'memberships go with their org');

-- Contract columns (DESIGN.md data model).
SELECT has_column('jnx', 'users', c, 'users.' || c)
  FROM unnest(ARRAY['email', 'first_name', 'last_name', 'username', 'image_url', 'role', 'org_id',
                    'public_metadata', 'sync_state', 'clerk_updated_at', 'created_at',
                    'updated_at', 'deleted_at']) c;
SELECT has_column('jnx', 'webhook_events', c, 'webhook_events.' || c)
  FROM unnest(ARRAY['type', 'status', 'attempts', 'error', 'payload', 'received_at', 'processed_at']) c;
SELECT has_column('jnx', 'orgs', c, 'orgs.' || c)
  FROM unnest(ARRAY['name', 'slug', 'image_url', 'created_by', 'public_metadata', 'clerk_updated_at',
                    'created_at', 'updated_at', 'deleted_at']) c;
SELECT has_column('jnx', 'memberships', c, 'memberships.' || c)
  FROM unnest(ARRAY['user_id', 'org_id', 'role', 'clerk_updated_at', 'created_at', 'updated_at']) c;
SELECT has_column('jnx', 'audit_logs', c, 'audit_logs.' || c)
  FROM unnest(ARRAY['actor', 'action', 'target_type', 'target_id', 'org_id', 'request_id',
                    'details', 'created_at']) c;
SELECT col_default_is('jnx', 'users', 'role', 'member', 'users.role defaults to member');
SELECT col_type_is('jnx', 'users', 'public_metadata', 'jsonb', 'public_metadata is jsonb');

-- Indexes.
SELECT has_index('jnx', 'users', 'users_clerk_user_id_key', ARRAY['clerk_user_id'], 'index on users.clerk_user_id');
SELECT has_index('jnx', 'users', 'users_org_id_idx', ARRAY['org_id'], 'index on users.org_id');
SELECT has_index('jnx', 'audit_logs', 'audit_logs_created_at_idx', ARRAY['created_at'], 'index on audit_logs.created_at');
SELECT has_index('jnx', 'orgs', 'orgs_clerk_org_id_key', ARRAY['clerk_org_id'], 'index on orgs.clerk_org_id');
SELECT has_index('jnx', 'memberships', 'memberships_user_id_idx', ARRAY['user_id'], 'index on memberships.user_id');
SELECT has_index('jnx', 'memberships', 'memberships_org_id_idx', ARRAY['org_id'], 'index on memberships.org_id');

-- Triggers.
SELECT has_trigger('jnx', 'webhook_secrets', 'config_changed', 'secret changes invalidate backend caches');
SELECT has_trigger('jnx', t, 'audit', t || ' changes are audited')
  FROM unnest(ARRAY['users', 'orgs', 'memberships']) t;
SELECT has_trigger('jnx', 'audit_logs', 'append_only', 'audit log refuses UPDATE and DELETE');

-- Functions of the public contract, with their signatures.
SELECT has_function('jnx', 'webhook_sign', ARRAY['text', 'text', 'bigint', 'bytea']);
SELECT function_returns('jnx', 'webhook_sign', ARRAY['text', 'text', 'bigint', 'bytea'], 'text');
SELECT has_function('jnx', 'verify_webhook', ARRAY['text', 'text', 'text', 'bytea', 'text', 'timestamp with time zone']);
SELECT has_function('jnx', 'set_webhook_secrets', ARRAY['text[]']);
SELECT has_function('jnx', 'ingest_clerk_webhook', ARRAY['text', 'text', 'text', 'bytea']);
SELECT function_returns('jnx', 'ingest_clerk_webhook', ARRAY['text', 'text', 'text', 'bytea'], 'jsonb');
SELECT has_function('jnx', 'upsert_user', ARRAY['text', 'jsonb']);
SELECT has_function('jnx', 'upsert_organization', ARRAY['text', 'jsonb']);
SELECT has_function('jnx', 'upsert_membership', ARRAY['text', 'jsonb']);
SELECT function_returns('jnx', 'get_user_by_clerk_id', ARRAY['text'], 'jsonb');
SELECT function_returns('jnx', 'replay_webhook', ARRAY['text'], 'jsonb');
SELECT is_definer('jnx', 'ingest_clerk_webhook', ARRAY['text', 'text', 'text', 'bytea'], 'ingest runs as the owner');
SELECT isnt_definer('jnx', 'set_webhook_secrets', ARRAY['text[]'], 'setters run as their caller');

-- Every data table is dumped by pg_dump.
SELECT set_eq(
    $$SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'jnx_auth'$$,
    ARRAY['jnx.webhook_secrets', 'jnx.system_events', 'jnx.users', 'jnx.orgs', 'jnx.memberships',
          'jnx.webhook_events', 'jnx.audit_logs', 'jnx.token_config', 'jnx.system_events_id_seq',
          'jnx.audit_logs_id_seq', 'jnx.retention_config',
          'jnx.erasure_queue'],
    'pg_dump keeps every jnx table');

-- Privileges: a role that was granted nothing can read or call nothing but
-- the pure signing function.
-- Time-ordered keys (0.4.2): version 7 UUIDs from the owner-only jnx._uuid_v7().
SELECT is(pg_get_expr(d.adbin, d.adrelid), 'jnx._uuid_v7()', 'jnx.' || c.relname || '.id defaults to jnx._uuid_v7()')
  FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
  JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE c.relnamespace = 'jnx'::regnamespace AND c.relname IN ('users', 'orgs', 'memberships')
   AND a.attname = 'id'
 ORDER BY c.relname;
SELECT ok((jnx.upsert_user('user_tap_v7_a', '{}')).id IS NOT NULL, 'a user for the key checks');
SELECT pg_sleep(0.003);
SELECT ok((jnx.upsert_user('user_tap_v7_b', '{}')).id IS NOT NULL, 'a later user');
SELECT is((SELECT count(*)::int FROM jnx.users WHERE clerk_user_id IN ('user_tap_v7_a', 'user_tap_v7_b')
             AND substr(id::text, 15, 1) = '7' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')),
          2, 'new user ids are version 7, RFC 9562 variant');
SELECT ok((SELECT a.id < b.id FROM jnx.users a, jnx.users b
            WHERE a.clerk_user_id = 'user_tap_v7_a' AND b.clerk_user_id = 'user_tap_v7_b'),
          'a later row has a larger id');
-- The first 48 bits are the wall clock in milliseconds.
SELECT ok((SELECT abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
                      - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 60000
             FROM jnx.users WHERE clerk_user_id = 'user_tap_v7_b'),
          'the id carries its creation time');

CREATE ROLE jnx_tap_other;
SELECT table_privs_are('jnx', t, 'jnx_tap_other', ARRAY[]::text[], 'no privileges on jnx.' || t)
  FROM unnest(ARRAY['users', 'orgs', 'memberships', 'webhook_events', 'audit_logs', 'system_events',
                    'webhook_secrets']) t;
SELECT function_privs_are('jnx', 'replay_webhook', ARRAY['text'], 'jnx_tap_other', ARRAY[]::text[]);
SELECT function_privs_are('jnx', 'get_user_by_clerk_id', ARRAY['text'], 'jnx_tap_other', ARRAY[]::text[]);
SELECT function_privs_are('jnx', 'set_webhook_secrets', ARRAY['text[]'], 'jnx_tap_other', ARRAY[]::text[]);
SELECT function_privs_are('jnx', 'ingest_clerk_webhook', ARRAY['text', 'text', 'text', 'bytea'], 'jnx_tap_other', ARRAY[]::text[]);
SELECT function_privs_are('jnx', 'webhook_sign', ARRAY['text', 'text', 'bigint', 'bytea'], 'jnx_tap_other', ARRAY['EXECUTE']);
SELECT function_privs_are('jnx', '_uuid_v7', ARRAY[]::text[], 'jnx_tap_other', ARRAY[]::text[]);
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = 'jnx.webhook_secrets'::regclass), true,
          'row-level security on the secrets table');

SET LOCAL ROLE jnx_tap_other;
SELECT throws_ok('SELECT secret FROM jnx.webhook_secrets', '42501', NULL, 'secrets unreadable');
SELECT throws_ok('SELECT count(*) FROM jnx.webhook_events', '42501', NULL, 'raw payloads unreadable');
SELECT throws_ok($$SELECT jnx.set_webhook_secrets('whsec_QQ==')$$, '42501', NULL, 'secrets unsettable');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

-- Personal data: export, erasure, retention, imports (0.5.0).
\getenv tokens_file JNX_TOKENS_FILE
\set ECHO none
\i :tokens_file
\set ECHO all
\set VERBOSITY default
GRANT USAGE ON SCHEMA regress TO authenticated, service_role;

-- One person with values found nowhere else, and what Clerk sends about them:
-- their user events, an org they created, a membership, a session.
CREATE TABLE regress.person AS SELECT
    'user_pii'::text AS id, 'pii.person.q7@example.org'::text AS email,
    'Quentinq7'::text AS first_name, 'Seventhq7'::text AS last_name, 'quentin_q7'::text AS username,
    'https://img.example.com/q7-face.png'::text AS image_url, 'team-q7-secret'::text AS metadata_value,
    '203.0.113.77'::text AS ip, 'Q7Browser/7.7 (PersonalOS)'::text AS user_agent;
CREATE FUNCTION regress.person_event(kind text, updated_ms bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', kind, 'object', 'event', 'timestamp', updated_ms,
        'event_attributes', jsonb_build_object('http_request',
            jsonb_build_object('client_ip', p.ip, 'user_agent', p.user_agent)),
        'data', jsonb_build_object('id', p.id, 'object', 'user', 'first_name', p.first_name,
            'last_name', p.last_name, 'username', p.username, 'image_url', p.image_url,
            'primary_email_address_id', 'idn_q7',
            'email_addresses', jsonb_build_array(jsonb_build_object('id', 'idn_q7', 'email_address', p.email)),
            'public_metadata', jsonb_build_object('team', p.metadata_value),
            'created_at', 1700000000000, 'updated_at', updated_ms))
      FROM regress.person p
$$;
SELECT regress.deliver('pii_1', regress.person_event('user.created', 1700000001000))->>'status' AS created,
       regress.deliver('pii_2', regress.org_event('organization.created', 'org_pii', 'Q7 Org', 1700000001000)
                                || jsonb_build_object('event_attributes', jsonb_build_object('http_request',
                                       jsonb_build_object('client_ip', '203.0.113.77', 'user_agent', 'Q7Browser/7.7 (PersonalOS)'))))
                                ->>'status' AS org,
       regress.deliver('pii_3', regress.membership_event('organizationMembership.created', 'orgmem_pii',
                                                         'org_pii', 'user_pii', 'org:admin', 1700000001000))->>'status' AS membership,
       regress.deliver('pii_4', jsonb_build_object('type', 'session.created', 'object', 'event',
                                'timestamp', 1700000002000,
                                'data', jsonb_build_object('id', 'sess_pii', 'user_id', 'user_pii',
                                    'latest_activity', jsonb_build_object('ip_address', '203.0.113.77',
                                        'browser_name', 'Q7Browser', 'city', 'Q7ville'))))->>'status' AS session,
       regress.deliver('pii_5', regress.person_event('user.updated', 1700000003000))->>'status' AS updated;

-- The client's IP and user agent are never stored (event_attributes.http_request);
-- each delivery knows whom it concerns.
SELECT svix_id, type, clerk_user_id,
       convert_from(payload, 'UTF8')::jsonb ? 'event_attributes' AS has_attributes,
       convert_from(payload, 'UTF8')::jsonb->'event_attributes' ? 'http_request' AS has_http_request,
       position('Q7Browser/7.7' IN convert_from(payload, 'UTF8')) > 0 AS has_user_agent
  FROM jnx.webhook_events WHERE svix_id LIKE 'pii\_%' ORDER BY svix_id;

-- Export -----------------------------------------------------------------------
SELECT regress.outcome($$SELECT jnx.export_user('user_never_seen')$$) AS unknown_user,
       regress.outcome($$SELECT jnx.export_user('')$$) AS empty_id;
CREATE TABLE regress.export AS SELECT jnx.export_user('user_pii') AS doc;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(doc) k) AS keys,
       doc->>'format' AS format, doc->>'format_version' AS format_version,
       doc->>'extension_version' = (SELECT extversion FROM pg_extension WHERE extname = 'jnx_auth') AS version_ok,
       doc->>'clerk_user_id' AS id,
       doc->'profile'->>'email' AS email, doc->'profile'->>'first_name' AS first_name,
       doc->'profile'->'public_metadata' AS metadata, doc->'profile'->'org'->>'clerk_org_id' AS active_org
  FROM regress.export;
SELECT m->>'clerk_membership_id' AS membership, m->>'role' AS role, m->'org'->>'clerk_org_id' AS org,
       m->'org'->>'name' AS org_name, m ? 'user_id' AS leaks_internal_key
  FROM regress.export, jsonb_array_elements(doc->'memberships') m;
SELECT e->>'svix_id' AS svix_id, e->>'type' AS type, e->>'status' AS status,
       e->'payload'->'data'->>'id' AS payload_id
  FROM regress.export, jsonb_array_elements(doc->'webhook_events') e ORDER BY 1;
SELECT a->>'action' AS action, a->>'actor' AS actor, a->>'target_type' AS target_type,
       a->>'target_id' AS target_id, a->'details' AS details
  FROM regress.export, jsonb_array_elements(doc->'audit') a ORDER BY (a->>'id')::bigint;
-- The export itself is audited: actor and target, no values.
SELECT actor, action, target_type, target_id, details FROM jnx.audit_logs
 WHERE action = 'user.export' ORDER BY id;

-- export_me: the caller's own data, from the verified identity only.
SELECT regress.outcome('SELECT jnx.export_me()') AS export_me_without_identity;
BEGIN;
SELECT jnx.authenticate(:'tok_bob') IS NOT NULL AS authenticated;
SET LOCAL ROLE authenticated;
SELECT doc->>'clerk_user_id' AS mine, doc ? 'profile' AS has_profile,
       jsonb_typeof(doc->'memberships') AS memberships
  FROM jnx.export_me() AS doc;
SELECT regress.outcome($$SELECT jnx.export_user('user_pii')$$) AS export_user_as_authenticated,
       regress.outcome($$SELECT jnx.erase_user('user_pii', 'why not')$$) AS erase_as_authenticated,
       regress.outcome($$SELECT jnx.import_clerk_users('[]')$$) AS import_as_authenticated;
ROLLBACK;
BEGIN;
SET LOCAL ROLE service_role;
SELECT jnx.export_user('user_pii')->>'clerk_user_id' AS service_role_exports;
ROLLBACK;

-- Erasure ------------------------------------------------------------------------
SELECT regress.outcome($$SELECT jnx.erase_user('user_pii', NULL)$$) AS no_reason,
       regress.outcome($$SELECT jnx.erase_user('user_pii', '  ')$$) AS blank_reason,
       regress.outcome(format('SELECT jnx.erase_user(%L, %L)', 'user_pii', repeat('x', 501))) AS long_reason,
       regress.outcome($$SELECT jnx.erase_user(NULL, 'request #12')$$) AS no_id;
SELECT count(*) AS nothing_erased_yet FROM jnx.users WHERE erased_at IS NOT NULL;

-- Every table of the schema as text (payloads decoded). Before the erasure the
-- person's values are there (all but the user agent, never stored); after it, none.
CREATE FUNCTION regress.schema_text() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t regclass;
    part text;
    result text := '';
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'jnx'::regnamespace AND c.relkind = 'r' LOOP
        EXECUTE format('SELECT string_agg(x::text, E''\n'') FROM %s x', t) INTO part;
        result := result || coalesce(part, '');
    END LOOP;
    -- escape: ASCII as is (the values looked for are ASCII), other bytes as octal.
    RETURN result || coalesce((SELECT string_agg(encode(payload, 'escape'), E'\n')
                                 FROM jnx.webhook_events WHERE payload IS NOT NULL), '');
END
$$;
CREATE VIEW regress.person_values AS
SELECT v.what, v.value
  FROM regress.person p,
       LATERAL (VALUES ('email', p.email), ('first_name', p.first_name), ('last_name', p.last_name),
                       ('username', p.username), ('image_url', p.image_url),
                       ('metadata value', p.metadata_value), ('ip', p.ip),
                       ('user agent', p.user_agent), ('session city', 'Q7ville')) AS v(what, value);
SELECT what, position(value IN regress.schema_text()) > 0 AS still_stored FROM regress.person_values;

SELECT r - 'erased_at' AS erased, (r->>'erased_at')::timestamptz = now() AS erased_now
  FROM jnx.erase_user('user_pii', 'Art. 17 request #12') AS r;

SELECT what, position(value IN regress.schema_text()) > 0 AS still_stored FROM regress.person_values;
-- What remains: the tombstone, the ledger rows (no payload), the org.
SELECT clerk_user_id, email, first_name, deleted_at IS NOT NULL AS deleted,
       erased_at IS NOT NULL AS erased, sync_state
  FROM jnx.users WHERE clerk_user_id = 'user_pii';
SELECT count(*) AS memberships_left FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
 WHERE u.clerk_user_id = 'user_pii';
SELECT clerk_org_id, name FROM jnx.orgs WHERE clerk_org_id = 'org_pii';
SELECT svix_id, type, status, payload IS NULL AS payload_dropped
  FROM jnx.webhook_events WHERE svix_id LIKE 'pii\_%' ORDER BY svix_id;
SELECT actor, action, target_type, target_id, details FROM jnx.audit_logs
 WHERE target_id = 'user_pii' AND action IN ('user.erase', 'user.update') ORDER BY id;

-- Late events change nothing and store no values.
SELECT regress.deliver('pii_late_1', regress.person_event('user.updated', 1800000000000))->>'status' AS late_update,
       regress.deliver('pii_late_2', regress.membership_event('organizationMembership.created', 'orgmem_pii_2',
                                     'org_pii_new', 'user_pii', 'org:member', 1800000000000))->>'status' AS late_membership,
       regress.deliver('pii_late_3', regress.person_event('user.created', 1800000000000))->>'status' AS late_create;
SELECT svix_id, status, payload IS NULL AS payload_dropped FROM jnx.webhook_events
 WHERE svix_id LIKE 'pii\_late%' ORDER BY svix_id;
SELECT (SELECT count(*) FROM jnx.orgs WHERE clerk_org_id = 'org_pii_new') AS provisional_org,
       (SELECT count(*) FROM jnx.memberships WHERE clerk_membership_id = 'orgmem_pii_2') AS membership,
       (SELECT email IS NULL AND first_name IS NULL FROM jnx.users WHERE clerk_user_id = 'user_pii') AS still_erased;
SELECT what, position(value IN regress.schema_text()) > 0 AS still_stored FROM regress.person_values;
-- An import cannot bring them back either.
SELECT jnx.import_clerk_users(jsonb_build_array(regress.person_event('user.created', 1750000000000)->'data'))
       AS import_erased;
-- Erasing again: idempotent, audited again; someone never seen gets a tombstone.
SELECT r - 'erased_at' AS again FROM jnx.erase_user('user_pii', 'repeat') AS r;
SELECT r - 'erased_at' AS never_seen FROM jnx.erase_user('user_ghost', 'pre-emptive request') AS r;
SELECT regress.deliver('ghost_1', regress.user_event('user.created', 'user_ghost', 'Ghost', 'ghost@example.com',
                                                     1700000000000))->>'status' AS ghost_created_later;

-- A still-valid token of an erased or deleted person brings nobody back.
SELECT jnx.erase_user('user_bob', 'token test')->>'users' AS bob_erased;
BEGIN;
SELECT jnx.authenticate(:'tok_bob') IS NOT NULL AS authenticated;
SET LOCAL ROLE authenticated;
SELECT regress.outcome('SELECT jnx.me()') AS me,
       regress.outcome('SELECT jnx.export_me()') AS export_me,
       regress.outcome('SELECT jnx.admin_list_users()') AS admin_list_users;
ROLLBACK;
SELECT count(*) AS bob_rows, bool_and(erased_at IS NOT NULL) AS bob_erased
  FROM jnx.users WHERE clerk_user_id = 'user_bob';

-- Retention ---------------------------------------------------------------------
SELECT regress.outcome('SELECT jnx.set_retention(0, 30, 365)') AS zero_payload_days,
       regress.outcome('SELECT jnx.set_retention(30, NULL, 365)') AS null_grace,
       regress.outcome('SELECT jnx.set_retention(30, 30, 0)') AS zero_audit_days,
       regress.outcome('SELECT jnx.apply_retention(NULL)') AS null_now;
SELECT jnx.set_retention(10, 5, 20);
SELECT kind, details FROM jnx.system_events WHERE kind = 'config.retention';
-- Deliveries at known ages: 15 days old (past the 10-day window), 5 days old.
-- (Without the fixture's second address, which every fixture user shares:
-- erasing one would rightly drop the payloads of all.)
SELECT regress.deliver('ret_old', regress.user_event('user.created', 'user_ret_old', 'Old', 'old@example.com', 1700000000000)
                                  #- '{data,email_addresses,0}')->>'status',
       regress.deliver('ret_young', regress.user_event('user.created', 'user_ret_young', 'Young', 'young@example.com', 1700000000000)
                                    #- '{data,email_addresses,0}')->>'status',
       regress.deliver_raw('ret_dead', convert_to('not json', 'UTF8'))->>'status';
UPDATE jnx.webhook_events SET received_at = now() - interval '15 days' WHERE svix_id IN ('ret_old', 'ret_dead');
UPDATE jnx.webhook_events SET received_at = now() - interval '5 days' WHERE svix_id = 'ret_young';
-- Users deleted 6 days ago (past the 5-day grace) and 2 days ago (as Clerk stamps it).
SELECT regress.deliver('ret_del_1', regress.deleted_event('user.deleted', 'user_ret_old',
                       (extract(epoch FROM now() - interval '6 days') * 1000)::bigint))->>'status',
       regress.deliver('ret_del_2', regress.deleted_event('user.deleted', 'user_ret_young',
                       (extract(epoch FROM now() - interval '2 days') * 1000)::bigint))->>'status';
UPDATE jnx.webhook_events SET received_at = now() - interval '15 days' WHERE svix_id IN ('ret_del_1', 'ret_del_2');
-- The grace counts from when the deletion arrived (the erasure queue's since).
SELECT clerk_user_id, since > now() - interval '1 minute' AS queued_now, emails FROM jnx.erasure_queue
 WHERE clerk_user_id LIKE 'user\_ret\_%' ORDER BY 1;
UPDATE jnx.erasure_queue SET since = now() - interval '6 days' WHERE clerk_user_id = 'user_ret_old';
UPDATE jnx.erasure_queue SET since = now() - interval '2 days' WHERE clerk_user_id = 'user_ret_young';
-- Audit rows 30 and 10 days old (the window is 20 days).
INSERT INTO jnx.audit_logs (actor, action, target_type, created_at)
VALUES ('regress', 'test.old', 'test', now() - interval '30 days'),
       ('regress', 'test.young', 'test', now() - interval '10 days');
SELECT count(*) FILTER (WHERE payload IS NOT NULL AND received_at < now() - interval '10 days') AS payloads_due
  FROM jnx.webhook_events;
-- Outside apply_retention the audit log stays append-only.
SELECT regress.outcome($$DELETE FROM jnx.audit_logs WHERE action = 'test.old'$$) AS delete_audit;

SELECT r - 'now' AS applied FROM jnx.apply_retention(now()) AS r;
SELECT svix_id, type, status, payload IS NULL AS payload_dropped FROM jnx.webhook_events
 WHERE svix_id LIKE 'ret\_%' ORDER BY svix_id;
SELECT clerk_user_id, deleted_at IS NOT NULL AS deleted, erased_at IS NOT NULL AS erased
  FROM jnx.users WHERE clerk_user_id LIKE 'user\_ret\_%' ORDER BY 1;
SELECT action FROM jnx.audit_logs WHERE action LIKE 'test.%' ORDER BY 1;
SELECT kind, details FROM jnx.system_events WHERE kind = 'retention.applied';
-- A second run finds nothing; a replay of a dropped dead letter says why it cannot.
SELECT r - 'now' AS second_run FROM jnx.apply_retention(now()) AS r;
SELECT regress.outcome($$SELECT jnx.replay_webhook('ret_dead')$$) AS replay_dropped;
-- The grace period, seen from 4 days later: the second user is erased too.
SELECT r->'users_erased' AS erased_4_days_later FROM jnx.apply_retention(now() + interval '4 days') AS r;

-- Imports -------------------------------------------------------------------------
SELECT regress.outcome($$SELECT jnx.import_clerk_users('{"users": []}')$$) AS not_an_array,
       regress.outcome($$SELECT jnx.import_clerk_users('"x"')$$) AS a_string,
       regress.outcome($$SELECT jnx.import_clerk_users(NULL)$$) AS null_list;
CREATE TABLE regress.thousand AS
SELECT jsonb_agg(jsonb_build_object('id', 'user_imp_' || i, 'object', 'user', 'first_name', 'Imp' || i,
                                    'primary_email_address_id', 'idn_' || i,
                                    'email_addresses', jsonb_build_array(jsonb_build_object(
                                        'id', 'idn_' || i, 'email_address', 'imp' || i || '@example.com')),
                                    'public_metadata', CASE WHEN i % 100 = 0 THEN '{"role": "admin"}'::jsonb ELSE '{}'::jsonb END,
                                    'created_at', 1700000000000, 'updated_at', 1700000000000 + i)
                 ORDER BY i) AS users
  FROM generate_series(1, 1000) i;
SELECT jnx.import_clerk_users(users) AS first_import FROM regress.thousand;
SELECT md5(string_agg(regress.user_state(clerk_user_id), ',' ORDER BY clerk_user_id)) AS state
  FROM jnx.users WHERE clerk_user_id LIKE 'user\_imp\_%' \gset first_
SELECT count(*) AS audit_rows FROM jnx.audit_logs WHERE actor = 'clerk:import' \gset first_
SELECT jnx.import_clerk_users(jsonb_build_object('data', users, 'total_count', 1000)) AS second_import
  FROM regress.thousand;
SELECT md5(string_agg(regress.user_state(clerk_user_id), ',' ORDER BY clerk_user_id)) = :'first_state' AS same_state,
       (SELECT count(*) FROM jnx.audit_logs WHERE actor = 'clerk:import') = :first_audit_rows AS no_new_audit_rows,
       :first_audit_rows AS audit_rows_of_first_import
  FROM jnx.users WHERE clerk_user_id LIKE 'user\_imp\_%';
-- Older than what a webhook delivered: stale, nothing changes.
SELECT regress.deliver('imp_hook', regress.user_event('user.updated', 'user_imp_7', 'Webhook', 'hook@example.com',
                                                      1750000000000))->>'status' AS webhook;
SELECT jnx.import_clerk_users(jsonb_build_array(
           (SELECT users->6 FROM regress.thousand),
           jsonb_build_object('id', 'user_ret_old', 'first_name', 'Back'),
           1, jsonb_build_object('no', 'id'), jsonb_build_object('id', 'user_imp_bad', 'created_at', 1,
                                                                 'email_addresses', 'nope', 'primary_email_address_id', 'x',
                                                                 'username', repeat('u', 10)),
           jsonb_build_object('id', 'user_imp_new', 'first_name', 'New'))) AS mixed;
SELECT first_name, email FROM jnx.users WHERE clerk_user_id = 'user_imp_7';
SELECT clerk_user_id, first_name, deleted_at IS NOT NULL AS deleted FROM jnx.users
 WHERE clerk_user_id IN ('user_ret_old', 'user_imp_new', 'user_imp_bad') ORDER BY 1;
SELECT DISTINCT actor, action FROM jnx.audit_logs WHERE target_id IN ('user_imp_1', 'user_imp_new') ORDER BY 1, 2;
-- Organizations and memberships, by the same rules.
SELECT jnx.import_clerk_organizations(jsonb_build_array(
           regress.org_event('organization.created', 'org_imp', 'Imported', 1700000000000)->'data',
           regress.org_event('organization.created', 'org_pii', 'Q7 Org renamed', 1600000000000)->'data',
           jsonb_build_object('id', ''))) AS orgs;
SELECT jnx.import_clerk_memberships(jsonb_build_array(
           regress.membership_event('organizationMembership.created', 'orgmem_imp_1', 'org_imp', 'user_imp_1',
                                    'org:admin', 1700000000000)->'data',
           regress.membership_event('organizationMembership.created', 'orgmem_imp_2', 'org_imp', 'user_pii',
                                    'org:member', 1700000000000)->'data',
           regress.membership_event('organizationMembership.created', 'orgmem_imp_3', 'org_imp', 'user_ret_young',
                                    'org:member', 1700000000000)->'data',
           jsonb_build_object('id', 'orgmem_imp_4', 'role', 'org:member'))) AS memberships;
SELECT m.clerk_membership_id, u.clerk_user_id, m.role, m.deleted_at IS NOT NULL AS ended
  FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
 WHERE m.clerk_membership_id LIKE 'orgmem\_imp\_%' ORDER BY 1;
SELECT jnx.get_user_by_clerk_id('user_imp_1')->'org'->>'clerk_org_id' AS active_org_after_import;

-- Hostile and odd inputs -----------------------------------------------------------
-- An address the tombstone no longer holds and no stored user event names
-- any more (retention dropped it) is still found: the erasure queue kept it.
SELECT regress.deliver('inv_1', regress.user_event('user.created', 'user_inv', 'Ivy', 'ivy.q9@example.org', 1700000000000)
                                #- '{data,email_addresses,0}')->>'status' AS created,
       regress.deliver('inv_2', jsonb_build_object('type', 'organizationInvitation.created', 'object', 'event',
                                'data', jsonb_build_object('id', 'orginv_q9', 'email_address', 'ivy.q9@example.org',
                                                           'organization_id', 'org_imp')))->>'status' AS invitation,
       regress.deliver('inv_3', regress.deleted_event('user.deleted', 'user_inv', 1700000001000))->>'status' AS deleted;
UPDATE jnx.webhook_events SET payload = NULL WHERE svix_id = 'inv_1';
SELECT (SELECT email FROM jnx.users WHERE clerk_user_id = 'user_inv') AS row_email,
       (SELECT emails FROM jnx.erasure_queue WHERE clerk_user_id = 'user_inv') AS queued_emails;
SELECT jnx.erase_user('user_inv', 'found through the queue')->>'webhook_events' AS dropped;
SELECT svix_id, payload IS NULL AS payload_dropped FROM jnx.webhook_events WHERE svix_id LIKE 'inv\_%' ORDER BY 1;
SELECT count(*) AS queue_rows_left FROM jnx.erasure_queue WHERE clerk_user_id = 'user_inv';

-- Clerk's private_metadata is kept from the user: export_me leaves it out,
-- export_user (a trusted backend) keeps it.
SELECT regress.deliver('priv_1', regress.user_event('user.updated', 'user_carol', 'Carol', 'carol@example.com',
                                                    1760000000000))->>'status' AS carol_updated;
BEGIN;
SELECT jnx.authenticate(:'tok_carol') IS NOT NULL AS authenticated;
SET LOCAL ROLE authenticated;
SELECT count(*) FILTER (WHERE e->'payload'->'data' ? 'private_metadata') AS with_private_metadata,
       count(*) FILTER (WHERE e->'payload'->'data'->>'first_name' = 'Carol') AS with_name
  FROM jnx.export_me() AS d, jsonb_array_elements(d->'webhook_events') e;
ROLLBACK;
SELECT count(*) FILTER (WHERE e->'payload'->'data' ? 'private_metadata') AS with_private_metadata
  FROM jnx.export_user('user_carol') AS d, jsonb_array_elements(d->'webhook_events') e;

-- An import cannot claim the future (which would make every later webhook
-- stale), nor move a membership to another user or org.
SELECT jnx.import_clerk_users(jsonb_build_array(
           jsonb_build_object('id', 'user_imp_2', 'public_metadata', '{"role": "admin"}'::jsonb,
                              'updated_at', 253402300799999))) AS future;
SELECT role, clerk_updated_at < now() + interval '1 day' AS not_pinned FROM jnx.users WHERE clerk_user_id = 'user_imp_2';
SELECT jnx.import_clerk_memberships(jsonb_build_array(
           regress.membership_event('organizationMembership.updated', 'orgmem_imp_1', 'org_imp', 'user_imp_5',
                                    'org:admin', 1800000000000)->'data')) AS other_user;
SELECT u.clerk_user_id, m.role FROM jnx.memberships m JOIN jnx.users u ON u.id = m.user_id
 WHERE m.clerk_membership_id = 'orgmem_imp_1';
SELECT DISTINCT request_id FROM jnx.audit_logs WHERE actor = 'clerk:import' ORDER BY 1;

-- event_attributes that is not an object is left alone, not a dead letter.
SELECT regress.deliver('attr_1', regress.user_event('user.created', 'user_attr', 'Attr', 'attr@example.com', 1700000000000)
                                 || '{"event_attributes": ["http_request"]}')->>'status' AS array_attributes;

-- A signed body no JSON parser accepts (a \u0000, which jsonb refuses) is a
-- dead letter kept for replay: without the client's IP and user agent all
-- the same, found by the body's structure.
SELECT regress.deliver_raw('nul_1', convert_to('{"type":"user.updated","event_attributes":{"http_request":{"client_ip":"203.0.113.250","user_agent":"NulAgent/1"}},"data":{"id":"user_nul","unsafe_metadata":{"x":"\u0000"}}}', 'UTF8'))->>'status' AS nul_escape;
SELECT position('203.0.113.250' IN encode(payload, 'escape')) > 0 AS has_ip,
       position('NulAgent' IN encode(payload, 'escape')) > 0 AS has_user_agent,
       position('unsafe_metadata' IN encode(payload, 'escape')) > 0 AS keeps_the_rest
  FROM jnx.webhook_events WHERE svix_id = 'nul_1';

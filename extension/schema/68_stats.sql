-- Operational state for monitoring (issue 10): what the shim's /metrics
-- exposes as gauges and what an operator checks first. Counts only: no user
-- id, email or payload leaves this function.
--
-- Cost: the ledger counts use the received_at index (the last 24 hours) and
-- the dead-letter index; the provisional-user count reads jnx.users once.
-- The shim caches the answer (JNX_STATS_CACHE_SECONDS), so a scrape every few
-- seconds costs one call per cache period whatever the number of scrapers.
CREATE OR REPLACE FUNCTION jnx.stats() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e
                               WHERE e.extname = 'jnx_auth'),
        'generated_at', now(),
        -- Deliveries received in the last 24 hours, by ledger status (every
        -- status present, 0 when none).
        'webhook_events_24h', (
            SELECT jsonb_object_agg(s.status, coalesce(c.n, 0) ORDER BY s.status)
              FROM unnest(ARRAY['processing', 'processed', 'stale', 'ignored', 'dead_letter']) AS s(status)
              LEFT JOIN (SELECT w.status::text AS status, count(*) AS n
                           FROM jnx.webhook_events w
                          WHERE w.received_at >= now() - interval '24 hours'
                          GROUP BY w.status::text) c ON c.status = s.status),
        'dead_letters_waiting', (SELECT count(*) FROM jnx.webhook_events w
                                  WHERE w.status = 'dead_letter'),
        -- NULL when no dead letter waits.
        'oldest_dead_letter_age_seconds', (
            SELECT floor(extract(epoch FROM now() - min(w.received_at)))::bigint
              FROM jnx.webhook_events w WHERE w.status = 'dead_letter'),
        -- Users created from a session token whose user.created never came:
        -- a sign that webhooks are not arriving.
        'provisional_users_over_1h', (
            SELECT count(*) FROM jnx.users u
             WHERE u.sync_state = 'provisional' AND u.deleted_at IS NULL
               AND u.created_at < now() - interval '1 hour'),
        'erasures_waiting', (SELECT count(*) FROM jnx.erasure_queue),
        -- Seconds since each setting was last written; NULL when never set.
        'config_age_seconds', jsonb_build_object(
            'webhook_secrets', (SELECT floor(extract(epoch FROM now() - max(s.created_at)))::bigint
                                  FROM jnx.webhook_secrets s),
            'token_config', (SELECT floor(extract(epoch FROM now() - t.updated_at))::bigint
                               FROM jnx.token_config t WHERE t.jwks IS NOT NULL)));
$$;
COMMENT ON FUNCTION jnx.stats() IS
    'Counts for monitoring: deliveries by status (24 h), dead letters, provisional users over an hour, configuration age. Owner, service_role and jnx_authenticator (for /metrics).';
REVOKE ALL ON FUNCTION jnx.stats() FROM PUBLIC;

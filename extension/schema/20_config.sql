-- Configuration functions and the cache-invalidation trigger. This file and
-- every later one are shared by the install script and the upgrade scripts:
-- only CREATE OR REPLACE and idempotent statements.

CREATE OR REPLACE FUNCTION jnx._config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'jnx_config_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._config_changed() FROM PUBLIC;

CREATE OR REPLACE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.webhook_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

CREATE OR REPLACE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.token_config
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

CREATE OR REPLACE FUNCTION jnx._check_jwks(jwks jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'jnx_check_jwks' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._check_jwks(jsonb) FROM PUBLIC;

-- The JSON Web Key Set that session tokens are verified against (pass the old
-- and new keys together during a rotation). Owner only.
CREATE OR REPLACE FUNCTION jnx.set_jwks(jwks jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jwks IS NULL THEN
        RAISE EXCEPTION 'JWKS is invalid' USING ERRCODE = 'JX110', DETAIL = 'The key set is NULL.';
    END IF;
    PERFORM jnx._check_jwks(jwks);
    INSERT INTO jnx.token_config AS c (singleton, jwks) VALUES (true, jwks)
    ON CONFLICT (singleton) DO UPDATE SET jwks = EXCLUDED.jwks, updated_at = now();
    INSERT INTO jnx.system_events (kind, severity, details)
    VALUES ('config.jwks', 'info',
            jsonb_build_object('kids', (SELECT jsonb_agg(k->>'kid') FROM jsonb_array_elements(jwks->'keys') k)));
END
$$;
COMMENT ON FUNCTION jnx.set_jwks(jsonb) IS 'Sets the JWKS for session tokens (old and new keys during rotation). Owner only.';
REVOKE ALL ON FUNCTION jnx.set_jwks(jsonb) FROM PUBLIC;

-- Accepted issuers (required: a token whose iss is not listed is refused),
-- authorized parties (when non-empty, azp must be one of them) and the clock
-- leeway for exp/nbf/iat. Owner only.
CREATE OR REPLACE FUNCTION jnx.set_token_policy(issuers text[], authorized_parties text[],
                                                leeway_seconds int DEFAULT 5) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF issuers IS NULL OR cardinality(issuers) = 0 OR cardinality(issuers) > 16
       OR EXISTS (SELECT 1 FROM unnest(issuers) i WHERE i IS NULL OR i = '' OR i ~ '[\n\r]') THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'Give 1 to 16 non-empty issuers, one line each.';
    END IF;
    IF authorized_parties IS NULL OR cardinality(authorized_parties) > 64
       OR EXISTS (SELECT 1 FROM unnest(authorized_parties) p WHERE p IS NULL OR p = '' OR p ~ '[\n\r]') THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'Give at most 64 non-empty authorized parties (an empty array: azp is not checked).';
    END IF;
    IF leeway_seconds IS NULL OR leeway_seconds NOT BETWEEN 0 AND 300 THEN
        RAISE EXCEPTION 'token policy is invalid' USING ERRCODE = 'JX110',
            DETAIL = 'The leeway is 0 to 300 seconds.';
    END IF;
    INSERT INTO jnx.token_config AS c (singleton, issuers, authorized_parties, leeway_seconds)
    VALUES (true, issuers, authorized_parties, leeway_seconds)
    ON CONFLICT (singleton) DO UPDATE SET issuers = EXCLUDED.issuers,
        authorized_parties = EXCLUDED.authorized_parties,
        leeway_seconds = EXCLUDED.leeway_seconds, updated_at = now();
    INSERT INTO jnx.system_events (kind, severity, details)
    VALUES ('config.token_policy', 'info',
            jsonb_build_object('issuers', to_jsonb(issuers), 'authorized_parties', to_jsonb(authorized_parties),
                               'leeway_seconds', leeway_seconds));
END
$$;
COMMENT ON FUNCTION jnx.set_token_policy(text[], text[], int) IS
    'Sets accepted issuers, authorized parties and leeway for session tokens. Owner only.';
REVOKE ALL ON FUNCTION jnx.set_token_policy(text[], text[], int) FROM PUBLIC;

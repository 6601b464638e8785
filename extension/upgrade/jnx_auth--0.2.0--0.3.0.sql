-- jnx_auth 0.2.0 -> 0.3.0: session tokens, identity, roles, row-level security.
-- The build appends extension/schema/20_*.sql onwards (CREATE OR REPLACE
-- functions, triggers, roles, policies) to these table changes.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.3.0'" to load this file. \quit

CREATE TABLE jnx.token_config (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    jwks               jsonb,
    issuers            text[] NOT NULL DEFAULT '{}',
    authorized_parties text[] NOT NULL DEFAULT '{}',
    leeway_seconds     int NOT NULL DEFAULT 5 CHECK (leeway_seconds BETWEEN 0 AND 300),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE jnx.token_config IS
    'Session-token verification: JWKS, issuers, authorized parties, leeway. Owner only.';
REVOKE ALL ON jnx.token_config FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jnx.token_config', '');

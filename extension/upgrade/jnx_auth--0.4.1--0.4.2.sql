-- jnx_auth 0.4.1 -> 0.4.2: speed (issue 8). The build appends
-- extension/schema/20_*.sql onwards (CREATE OR REPLACE functions, triggers,
-- roles, policies) after the changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.4.2'" to load this file. \quit

-- Time-ordered uuid keys for new rows (see 10_tables.sql). Existing keys
-- stay as they are; changing a default rewrites nothing and takes a moment.
CREATE FUNCTION jnx._uuid_v7() RETURNS uuid
AS 'MODULE_PATHNAME', 'jnx_uuid_v7'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION jnx._uuid_v7() FROM PUBLIC;
ALTER TABLE jnx.orgs ALTER COLUMN id SET DEFAULT jnx._uuid_v7();
ALTER TABLE jnx.users ALTER COLUMN id SET DEFAULT jnx._uuid_v7();
ALTER TABLE jnx.memberships ALTER COLUMN id SET DEFAULT jnx._uuid_v7();

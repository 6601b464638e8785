-- jnx_auth 0.5.0 -> 0.6.0: run it in production (issue 10): jnx.stats() for
-- monitoring, and jnx.admin_list_users paged (limit, opaque cursor). The build
-- appends extension/schema/20_*.sql onwards (CREATE OR REPLACE functions,
-- triggers, roles, policies) after the changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.6.0'" to load this file. \quit

-- The one-argument form answered a bare array of every member; the paged
-- form answers {"users": [...], "next_cursor": ...} and is created below.
DROP FUNCTION jnx.admin_list_users(text);

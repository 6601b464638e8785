-- jnx_auth 0.3.0 -> 0.4.0: hardening after an outside review. No table
-- changes; the build appends extension/schema/20_*.sql onwards (CREATE OR
-- REPLACE functions, triggers, roles, policies).
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.4.0'" to load this file. \quit

-- jnx_auth 0.4.0 -> 0.4.1: speed (issue 8). The build appends
-- extension/schema/20_*.sql onwards (CREATE OR REPLACE functions, triggers,
-- roles, policies) after the changes below.
\echo Use "ALTER EXTENSION jnx_auth UPDATE TO '0.4.1'" to load this file. \quit

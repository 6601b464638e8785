-- jnx_auth install script, assembled from extension/schema/*.sql at build time.
\echo Use "CREATE EXTENSION jnx_auth" to load this file. \quit

-- Configuration functions and the cache-invalidation trigger. This file and
-- every later one are shared by the install script and the upgrade scripts:
-- only CREATE OR REPLACE and idempotent statements.

CREATE OR REPLACE FUNCTION jnx._config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'jnx_config_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION jnx._config_changed() FROM PUBLIC;

CREATE OR REPLACE TRIGGER config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jnx.webhook_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION jnx._config_changed();

-- Privileges. Every table and function above revoked PUBLIC access where it
-- was created; the schema itself is usable by all, so that pure functions
-- (jnx.webhook_sign) work for anyone and each object's own grant decides.
GRANT USAGE ON SCHEMA jnx TO PUBLIC;

DROP FUNCTION IF EXISTS rotate_refresh_token(bytea, bytea, bytea, timestamptz, interval, interval, text, text);
DROP TABLE IF EXISTS audit_events;
DROP TABLE IF EXISTS signing_keys;
DROP TABLE IF EXISTS revoked_tokens;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS users;

DROP INDEX IF EXISTS sessions_client_live_idx;
ALTER TABLE sessions DROP COLUMN IF EXISTS client_id;
DROP TABLE IF EXISTS oauth_clients;

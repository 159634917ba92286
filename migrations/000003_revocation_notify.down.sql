DROP INDEX IF EXISTS users_logout_all_at_idx;
DROP INDEX IF EXISTS sessions_ended_at_idx;
DROP TRIGGER IF EXISTS users_changed_notify ON users;
DROP TRIGGER IF EXISTS sessions_ended_notify ON sessions;
DROP TRIGGER IF EXISTS revoked_tokens_notify ON revoked_tokens;
DROP FUNCTION IF EXISTS notify_revocation();

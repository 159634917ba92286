DROP TRIGGER IF EXISTS email_outbox_notify ON email_outbox;
DROP FUNCTION IF EXISTS notify_outbox();
DROP TABLE IF EXISTS one_time_tokens;
DROP TABLE IF EXISTS email_outbox;
DROP TABLE IF EXISTS secret_keys;
DROP TRIGGER IF EXISTS users_changed_notify ON users;
CREATE TRIGGER users_changed_notify AFTER UPDATE OF logout_all_at, role, email ON users
    FOR EACH ROW WHEN (OLD.logout_all_at IS DISTINCT FROM NEW.logout_all_at
                       OR OLD.role IS DISTINCT FROM NEW.role OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION notify_revocation();
DROP INDEX IF EXISTS users_unverified_idx;
DROP INDEX IF EXISTS users_email_key_missing_idx;
DROP INDEX IF EXISTS users_email_key_idx;
ALTER TABLE users
    DROP COLUMN IF EXISTS password_disabled_at, DROP COLUMN IF EXISTS must_verify, DROP COLUMN IF EXISTS email_key,
    DROP COLUMN IF EXISTS pending_email, DROP COLUMN IF EXISTS email_verified_at;

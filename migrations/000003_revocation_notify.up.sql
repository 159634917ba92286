-- Every instance keeps the revocation state in memory; these triggers tell
-- them, at commit, of every revocation, whichever statement made it.
-- Payloads: j|<jti>|<expires unix>, s|<session id>|<ended unix>,
-- u|<user id>|<logout-all unix>, r|<user id> (role or email changed).
CREATE FUNCTION notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'revoked_tokens' THEN
        PERFORM pg_notify('accounts_revocations', 'j|' || NEW.jti || '|' || extract(epoch FROM NEW.expires_at)::bigint);
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        PERFORM pg_notify('accounts_revocations', 's|' || NEW.id || '|' || extract(epoch FROM NEW.ended_at)::bigint);
    ELSIF NEW.logout_all_at IS DISTINCT FROM OLD.logout_all_at THEN
        PERFORM pg_notify('accounts_revocations', 'u|' || NEW.id || '|' || floor(extract(epoch FROM NEW.logout_all_at))::bigint);
    ELSE
        PERFORM pg_notify('accounts_revocations', 'r|' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER revoked_tokens_notify AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_revocation();
CREATE TRIGGER sessions_ended_notify AFTER UPDATE OF ended_at ON sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION notify_revocation();
CREATE TRIGGER users_changed_notify AFTER UPDATE OF logout_all_at, role, email ON users
    FOR EACH ROW WHEN (OLD.logout_all_at IS DISTINCT FROM NEW.logout_all_at
                       OR OLD.role IS DISTINCT FROM NEW.role OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION notify_revocation();

-- The in-memory state is loaded from these at start and at every resync.
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX users_logout_all_at_idx ON users (logout_all_at) WHERE logout_all_at IS NOT NULL;

-- notify_revocation as in 000003 (pinned by 000004).
CREATE OR REPLACE FUNCTION notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
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
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION notify_revocation() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;
DROP FUNCTION IF EXISTS revocation_snapshot(timestamptz, interval);
DROP FUNCTION IF EXISTS announce_revocation(revocation_kind, text, timestamptz);
DROP TYPE IF EXISTS rotation_outcome;
DROP TYPE IF EXISTS revocation_kind;

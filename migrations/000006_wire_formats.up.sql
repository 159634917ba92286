-- The store's wire formats, spelled once on the SQL side, each as a type:
-- the kinds of revocation that the triggers announce and the snapshot
-- lists, and the outcomes of a rotation. Go spells each once too, in
-- internal/store/wire.go, and a test holds the two together.

-- Revocation kinds (one letter each: they travel in NOTIFY payloads, in
-- the form "kind|id|unix seconds" that every version of the service reads):
-- j = an access token (id: jti, at: its expiry), s = an ended session
-- (id: session id, at: when), u = a logout-everywhere cut-off (id: user id,
-- at: the cut-off), r = a user's role or email changed (id: user id, no
-- time), h = a heartbeat (id: the sending instance's nonce, no time).
CREATE TYPE revocation_kind AS ENUM ('j', 's', 'u', 'r', 'h');

-- Outcomes of a rotation: see rotate_refresh_token.
CREATE TYPE rotation_outcome AS ENUM ('rotated', 'grace', 'reuse', 'invalid');

-- announce_revocation tells every listener of one revocation, at commit.
CREATE FUNCTION announce_revocation(p_kind revocation_kind, p_id text, p_at timestamptz)
RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('accounts_revocations', p_kind::text || '|' || p_id
        || coalesce('|' || floor(extract(epoch FROM p_at))::bigint, ''))
$$;

CREATE OR REPLACE FUNCTION notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'revoked_tokens' THEN
        PERFORM announce_revocation('j', NEW.jti, NEW.expires_at);
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        PERFORM announce_revocation('s', NEW.id::text, NEW.ended_at);
    ELSIF NEW.logout_all_at IS DISTINCT FROM OLD.logout_all_at THEN
        PERFORM announce_revocation('u', NEW.id::text, NEW.logout_all_at);
    ELSE
        PERFORM announce_revocation('r', NEW.id::text, NULL);
    END IF;
    RETURN NULL;
END
$$;

-- revocation_snapshot lists every revocation that can still matter at
-- p_now for access tokens living at most p_window (an instance loads it
-- when its listener starts and at every resync).
CREATE FUNCTION revocation_snapshot(p_now timestamptz, p_window interval)
RETURNS TABLE (kind revocation_kind, id text, at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT 'j'::revocation_kind, r.jti, r.expires_at FROM revoked_tokens r WHERE r.expires_at > p_now - p_window
    UNION ALL
    SELECT 's'::revocation_kind, s.id::text, s.ended_at FROM sessions s WHERE s.ended_at > p_now - p_window
    UNION ALL
    SELECT 'u'::revocation_kind, u.id::text, date_trunc('second', u.logout_all_at) FROM users u
     WHERE u.logout_all_at > p_now - p_window
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION announce_revocation(revocation_kind, text, timestamptz) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION revocation_snapshot(timestamptz, interval) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    -- CREATE OR REPLACE reset the setting 000004 gave it.
    EXECUTE format('ALTER FUNCTION notify_revocation() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

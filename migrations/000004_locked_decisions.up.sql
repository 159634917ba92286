-- Opening a session is conditional on the credentials it was opened with:
-- every statement that must end all of a user's sessions (password change,
-- logout-all, admin logout) bumps session_epoch under the user's row lock,
-- and a login inserts its session only if the epoch it read is still current.
ALTER TABLE users ADD COLUMN IF NOT EXISTS session_epoch bigint NOT NULL DEFAULT 0;

-- Which argon2id parameter sets the stored hashes use (a failed login
-- spends one hash under each, so that its timing tells nothing): read by a
-- loose scan of this index, one probe per set.
CREATE INDEX IF NOT EXISTS users_password_params_idx ON users (split_part(password_hash, '$', 4));

-- rotate_refresh_token, as in 000001, but deciding only on rows it holds
-- locked: the token row is locked after the session's (the purge deletes
-- expired token rows without the session's lock, so a rotation that waited
-- for the session may find its token gone), and a missing token or user is
-- 'invalid'. Lock order stays session, then token.
CREATE OR REPLACE FUNCTION rotate_refresh_token(
    p_hash bytea, p_new_hash bytea, p_sealed bytea, p_now timestamptz,
    p_grace interval, p_ttl interval, p_ip text, p_user_agent text)
RETURNS TABLE (outcome text, session_id uuid, user_id uuid, role text, sealed bytea, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_sid       uuid;
    v_uid       uuid;
    v_ended     timestamptz;
    v_s_exp     timestamptz;
    v_spent     timestamptz;
    v_t_exp     timestamptz;
    v_succ      bytea;
    v_sealed    bytea;
    v_role      text;
    v_next_exp  timestamptz;
BEGIN
    SELECT ss.id, ss.user_id, ss.ended_at, ss.expires_at INTO v_sid, v_uid, v_ended, v_s_exp
      FROM sessions ss
     WHERE ss.id = (SELECT rt.session_id FROM refresh_tokens rt WHERE rt.hash = p_hash)
       FOR UPDATE;
    IF NOT FOUND OR v_ended IS NOT NULL OR v_s_exp <= p_now THEN
        RETURN QUERY SELECT 'invalid'::text, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT rt.spent_at, rt.expires_at, rt.successor_hash, rt.successor_sealed
      INTO v_spent, v_t_exp, v_succ, v_sealed
      FROM refresh_tokens rt
     WHERE rt.hash = p_hash AND rt.session_id = v_sid
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT u.role INTO v_role FROM users u WHERE u.id = v_uid;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;

    IF v_spent IS NULL THEN
        IF v_t_exp <= p_now THEN
            RETURN QUERY SELECT 'invalid'::text, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz;
            RETURN;
        END IF;
        v_next_exp := least(p_now + p_ttl, v_s_exp);
        UPDATE refresh_tokens rt
           SET spent_at = p_now, successor_hash = p_new_hash, successor_sealed = p_sealed
         WHERE rt.hash = p_hash;
        INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
        VALUES (p_new_hash, v_sid, p_now, v_next_exp);
        UPDATE sessions ss
           SET last_used_at = p_now, idle_expires_at = v_next_exp, ip = p_ip, user_agent = p_user_agent
         WHERE ss.id = v_sid;
        RETURN QUERY SELECT 'rotated'::text, v_sid, v_uid, v_role, NULL::bytea, v_next_exp;
        RETURN;
    END IF;

    -- Spent. Within the grace window, and only while its successor is the
    -- live token, the holder gets that same successor again.
    IF p_grace > interval '0' AND v_spent > p_now - p_grace THEN
        SELECT least(nx.expires_at, v_s_exp) INTO v_next_exp
          FROM refresh_tokens nx
         WHERE nx.hash = v_succ AND nx.session_id = v_sid AND nx.spent_at IS NULL AND nx.expires_at > p_now;
        IF FOUND THEN
            UPDATE sessions ss SET last_used_at = p_now, ip = p_ip, user_agent = p_user_agent
             WHERE ss.id = v_sid;
            RETURN QUERY SELECT 'grace'::text, v_sid, v_uid, v_role, v_sealed, v_next_exp;
            RETURN;
        END IF;
    END IF;

    -- Reuse: end the whole session.
    UPDATE sessions ss SET ended_at = p_now WHERE ss.id = v_sid;
    UPDATE refresh_tokens rt SET spent_at = p_now
     WHERE rt.session_id = v_sid AND rt.spent_at IS NULL;
    RETURN QUERY SELECT 'reuse'::text, v_sid, v_uid, v_role, NULL::bytea, NULL::timestamptz;
END
$$;

-- Pin the functions' search_path to the schema the tables live in (and
-- pg_temp last), so that no caller's search_path can swap in other tables
-- or operators.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION rotate_refresh_token(bytea, bytea, bytea, timestamptz, interval, interval, text, text) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION notify_revocation() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

-- Refresh-token state on the session's own row ("format 2"): a rotation is
-- one update of that row, and a session holds a bounded amount of state
-- however often it refreshes. Format-2 tokens carry their session's id, so
-- they are found by primary key; the database keeps hashes only, plus the
-- live token sealed with a key derived from the token spent last (for the
-- grace window), never a key from which tokens can be made.
--
-- Format-1 ("legacy") tokens, one row each in refresh_tokens, keep working:
-- rotate_legacy_token rotates them, and converts their session to format 2
-- when asked. refresh_tokens can be dropped by a later migration once no
-- format-1 token can be live (REFRESH_TOKEN_TTL after every instance issues
-- format 2; see README, "Upgrading").
ALTER TABLE sessions
    ADD COLUMN rt_hash          bytea,       -- SHA-256 of the live token's secret; NULL: a format-1 session
    ADD COLUMN rt_prev_hash     bytea,       -- the token spent last (format 1 or 2)
    ADD COLUMN rt_prev_spent_at timestamptz, -- when
    ADD COLUMN rt_prev_sealed   bytea,       -- the live token's secret, sealed with a key derived from that spent token
    ADD COLUMN rt_spent         bytea;       -- the first 16 bytes of the hashes of the 7 tokens spent before it, newest first
-- Room on each page for the next version of a row: rotations stay HOT
-- updates (no indexed column changes), pruned in place.
ALTER TABLE sessions SET (fillfactor = 70);

-- rotate_session_token settles one refresh of a format-2 token in one round
-- trip: 'rotated' (the token was live), 'grace' (it was spent last, within
-- p_grace: its successor, still the live token, is returned sealed),
-- 'reuse' (it is one of the session's 8 last spent tokens otherwise: the
-- session ends), 'invalid' (anything else: unknown session, a token that
-- is none of its recent ones, an ended or expired session, an idle-expired
-- live token).
--
-- The live token is rotated by one conditional UPDATE, which locks the row
-- only if it matches. Anything else is first classified without a lock, so
-- that a token that cannot be ours costs no write; one that may be ours is
-- then decided on the row as it is under its lock (a new snapshot, READ
-- COMMITTED), so concurrent rotations of one session serialise on that
-- row. Every statement that ends sessions locks session rows too, and none
-- holds one while waiting for another (the session-user lock order of
-- 000001 is kept), so nothing here can deadlock.
CREATE FUNCTION rotate_session_token(
    p_sid uuid, p_hash bytea, p_new_hash bytea, p_sealed bytea, p_now timestamptz,
    p_grace interval, p_ttl interval, p_ip text, p_user_agent text)
RETURNS TABLE (outcome rotation_outcome, user_id uuid, role text, sealed bytea, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_uid  uuid;
    v_exp  timestamptz;
    v_role text;
    r      sessions%ROWTYPE;
    v_old  boolean;
BEGIN
    UPDATE sessions s
       SET rt_spent = substring(substring(s.rt_prev_hash for 16) || coalesce(s.rt_spent, ''::bytea) for 112),
           rt_prev_hash = s.rt_hash, rt_prev_spent_at = p_now, rt_prev_sealed = p_sealed, rt_hash = p_new_hash,
           last_used_at = p_now, idle_expires_at = least(p_now + p_ttl, s.expires_at),
           ip = p_ip, user_agent = p_user_agent
     WHERE s.id = p_sid AND s.rt_hash = p_hash
       AND s.ended_at IS NULL AND s.expires_at > p_now AND s.idle_expires_at > p_now
    RETURNING s.user_id, s.idle_expires_at, (SELECT u.role FROM users u WHERE u.id = s.user_id)
      INTO v_uid, v_exp, v_role;
    IF FOUND THEN
        RETURN QUERY SELECT 'rotated'::rotation_outcome, v_uid, v_role, NULL::bytea, v_exp;
        RETURN;
    END IF;

    -- Is it one of this session's tokens at all? (No lock yet.)
    SELECT * INTO r FROM sessions s WHERE s.id = p_sid;
    IF NOT FOUND OR p_hash IS DISTINCT FROM r.rt_hash AND p_hash IS DISTINCT FROM r.rt_prev_hash
       AND NOT EXISTS (SELECT 1 FROM generate_series(0, coalesce(length(r.rt_spent), 0) / 16 - 1) i
                        WHERE substring(r.rt_spent FROM i * 16 + 1 FOR 16) = substring(p_hash FOR 16)) THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, NULL::uuid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;

    -- It may be: decide on the row under its lock.
    SELECT * INTO r FROM sessions s WHERE s.id = p_sid FOR UPDATE;
    IF NOT FOUND OR r.ended_at IS NOT NULL OR r.expires_at <= p_now THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, r.user_id, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT u.role INTO v_role FROM users u WHERE u.id = r.user_id;

    IF p_hash = r.rt_hash THEN
        IF r.idle_expires_at <= p_now THEN
            RETURN QUERY SELECT 'invalid'::rotation_outcome, r.user_id, NULL::text, NULL::bytea, NULL::timestamptz;
            RETURN;
        END IF;
        UPDATE sessions s
           SET rt_spent = substring(substring(s.rt_prev_hash for 16) || coalesce(s.rt_spent, ''::bytea) for 112),
               rt_prev_hash = s.rt_hash, rt_prev_spent_at = p_now, rt_prev_sealed = p_sealed, rt_hash = p_new_hash,
               last_used_at = p_now, idle_expires_at = least(p_now + p_ttl, s.expires_at),
               ip = p_ip, user_agent = p_user_agent
         WHERE s.id = p_sid
        RETURNING s.idle_expires_at INTO v_exp;
        RETURN QUERY SELECT 'rotated'::rotation_outcome, r.user_id, v_role, NULL::bytea, v_exp;
        RETURN;
    END IF;

    -- Spent last, within the grace window: the same successor again (by
    -- construction the successor of rt_prev_hash is the live token).
    IF p_hash = r.rt_prev_hash AND p_grace > interval '0' AND r.rt_prev_spent_at > p_now - p_grace
       AND r.idle_expires_at > p_now THEN
        UPDATE sessions s SET last_used_at = p_now, ip = p_ip, user_agent = p_user_agent WHERE s.id = p_sid;
        RETURN QUERY SELECT 'grace'::rotation_outcome, r.user_id, v_role, r.rt_prev_sealed, r.idle_expires_at;
        RETURN;
    END IF;

    v_old := p_hash = r.rt_prev_hash OR EXISTS (
        SELECT 1 FROM generate_series(0, coalesce(length(r.rt_spent), 0) / 16 - 1) i
         WHERE substring(r.rt_spent FROM i * 16 + 1 FOR 16) = substring(p_hash FOR 16));
    IF NOT v_old THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, r.user_id, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;
    -- Reuse: end the whole session.
    UPDATE sessions s SET ended_at = p_now WHERE s.id = p_sid;
    RETURN QUERY SELECT 'reuse'::rotation_outcome, r.user_id, v_role, NULL::bytea, NULL::timestamptz;
END
$$;

-- rotate_legacy_token settles one refresh of a format-1 token, as
-- rotate_refresh_token of 000004 did, and with p_convert moves its session
-- to format 2: the successor (p_new_hash, a format-2 token's hash) goes on
-- the session's row instead of into refresh_tokens. on_session_row says
-- whether the successor returned (rotated or grace) is a format-2 token. A format-1 token spent
-- by a conversion still gets its successor in the grace window, and any
-- older one is still reuse. Lock order: session, then token (as 000004).
CREATE FUNCTION rotate_legacy_token(
    p_hash bytea, p_new_hash bytea, p_sealed bytea, p_now timestamptz,
    p_grace interval, p_ttl interval, p_ip text, p_user_agent text, p_convert boolean)
RETURNS TABLE (outcome rotation_outcome, session_id uuid, user_id uuid, role text, sealed bytea,
               expires_at timestamptz, on_session_row boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_sid      uuid;
    v_uid      uuid;
    v_ended    timestamptz;
    v_s_exp    timestamptz;
    v_s_rt     bytea;
    v_spent    timestamptz;
    v_t_exp    timestamptz;
    v_succ     bytea;
    v_sealed   bytea;
    v_role     text;
    v_next_exp timestamptz;
BEGIN
    SELECT ss.id, ss.user_id, ss.ended_at, ss.expires_at, ss.rt_hash INTO v_sid, v_uid, v_ended, v_s_exp, v_s_rt
      FROM sessions ss
     WHERE ss.id = (SELECT rt.session_id FROM refresh_tokens rt WHERE rt.hash = p_hash)
       FOR UPDATE;
    IF NOT FOUND OR v_ended IS NOT NULL OR v_s_exp <= p_now THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz, v_s_rt IS NOT NULL;
        RETURN;
    END IF;
    SELECT rt.spent_at, rt.expires_at, rt.successor_hash, rt.successor_sealed
      INTO v_spent, v_t_exp, v_succ, v_sealed
      FROM refresh_tokens rt
     WHERE rt.hash = p_hash AND rt.session_id = v_sid
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz, v_s_rt IS NOT NULL;
        RETURN;
    END IF;
    SELECT u.role INTO v_role FROM users u WHERE u.id = v_uid;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::rotation_outcome, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz, v_s_rt IS NOT NULL;
        RETURN;
    END IF;

    IF v_spent IS NULL THEN
        -- A session already on format 2 has no live format-1 token.
        IF v_t_exp <= p_now OR v_s_rt IS NOT NULL THEN
            RETURN QUERY SELECT 'invalid'::rotation_outcome, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz, v_s_rt IS NOT NULL;
            RETURN;
        END IF;
        v_next_exp := least(p_now + p_ttl, v_s_exp);
        UPDATE refresh_tokens rt
           SET spent_at = p_now, successor_hash = p_new_hash, successor_sealed = p_sealed
         WHERE rt.hash = p_hash;
        IF p_convert THEN
            UPDATE sessions ss
               SET rt_hash = p_new_hash, rt_prev_hash = p_hash, rt_prev_spent_at = p_now,
                   rt_prev_sealed = p_sealed, rt_spent = NULL,
                   last_used_at = p_now, idle_expires_at = v_next_exp, ip = p_ip, user_agent = p_user_agent
             WHERE ss.id = v_sid;
        ELSE
            INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
            VALUES (p_new_hash, v_sid, p_now, v_next_exp);
            UPDATE sessions ss
               SET last_used_at = p_now, idle_expires_at = v_next_exp, ip = p_ip, user_agent = p_user_agent
             WHERE ss.id = v_sid;
        END IF;
        RETURN QUERY SELECT 'rotated'::rotation_outcome, v_sid, v_uid, v_role, NULL::bytea, v_next_exp, p_convert;
        RETURN;
    END IF;

    -- Spent. Within the grace window, and only while its successor is the
    -- live token (on the session's row once converted, else a format-1
    -- row), the holder gets that same successor again.
    IF p_grace > interval '0' AND v_spent > p_now - p_grace THEN
        IF v_s_rt IS NOT NULL THEN
            SELECT least(ss.idle_expires_at, v_s_exp) INTO v_next_exp
              FROM sessions ss
             WHERE ss.id = v_sid AND ss.rt_hash = v_succ AND ss.idle_expires_at > p_now;
        ELSE
            SELECT least(nx.expires_at, v_s_exp) INTO v_next_exp
              FROM refresh_tokens nx
             WHERE nx.hash = v_succ AND nx.session_id = v_sid AND nx.spent_at IS NULL AND nx.expires_at > p_now;
        END IF;
        IF FOUND THEN
            UPDATE sessions ss SET last_used_at = p_now, ip = p_ip, user_agent = p_user_agent
             WHERE ss.id = v_sid;
            RETURN QUERY SELECT 'grace'::rotation_outcome, v_sid, v_uid, v_role, v_sealed, v_next_exp, v_s_rt IS NOT NULL;
            RETURN;
        END IF;
    END IF;

    -- Reuse: end the whole session.
    UPDATE sessions ss SET ended_at = p_now WHERE ss.id = v_sid;
    UPDATE refresh_tokens rt SET spent_at = p_now
     WHERE rt.session_id = v_sid AND rt.spent_at IS NULL;
    RETURN QUERY SELECT 'reuse'::rotation_outcome, v_sid, v_uid, v_role, NULL::bytea, NULL::timestamptz, v_s_rt IS NOT NULL;
END
$$;

-- The function that binaries before format 2 call, same signature: now the
-- legacy rotation without conversion, so those binaries keep working on
-- this schema during a rolling deploy.
CREATE OR REPLACE FUNCTION rotate_refresh_token(
    p_hash bytea, p_new_hash bytea, p_sealed bytea, p_now timestamptz,
    p_grace interval, p_ttl interval, p_ip text, p_user_agent text)
RETURNS TABLE (outcome text, session_id uuid, user_id uuid, role text, sealed bytea, expires_at timestamptz)
LANGUAGE sql AS $$
    SELECT r.outcome::text, r.session_id, r.user_id, r.role, r.sealed, r.expires_at
      FROM rotate_legacy_token(p_hash, p_new_hash, p_sealed, p_now, p_grace, p_ttl, p_ip, p_user_agent, false) r
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION rotate_session_token(uuid, bytea, bytea, bytea, timestamptz, interval, interval, text, text) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION rotate_legacy_token(bytea, bytea, bytea, timestamptz, interval, interval, text, text, boolean) SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION rotate_refresh_token(bytea, bytea, bytea, timestamptz, interval, interval, text, text) SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

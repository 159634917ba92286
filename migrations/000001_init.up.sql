-- Users. Emails are stored trimmed, as given, and unique case-insensitively.
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL CHECK (email <> '' AND length(email) <= 254),
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- Access tokens of this user issued (iat) before this second are revoked.
    logout_all_at timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- Admin listing pages by (created_at, id).
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

-- Sessions: one per login, a family of refresh tokens.
CREATE TABLE sessions (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    -- Absolute cap (SESSION_MAX_AGE), however often the session refreshes.
    expires_at      timestamptz NOT NULL,
    -- Expiry of the live refresh token (sliding REFRESH_TOKEN_TTL).
    idle_expires_at timestamptz NOT NULL,
    ended_at        timestamptz,
    user_agent      text        NOT NULL DEFAULT '',
    ip              text        NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_purge_idx ON sessions (coalesce(ended_at, expires_at));

-- Refresh tokens: only the SHA-256 of each token is kept. A spent token keeps
-- the hash of its successor and the successor sealed with a key derived from
-- the spent token itself, so that a retry within the grace window gets the
-- same successor while the database alone cannot produce a usable token.
CREATE TABLE refresh_tokens (
    hash             bytea       PRIMARY KEY CHECK (length(hash) = 32),
    session_id       uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    spent_at         timestamptz,
    successor_hash   bytea,
    successor_sealed bytea
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- Revoked access tokens, by jti, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);

-- Signing keys shared by every instance on this database.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    alg         text        NOT NULL,
    -- PKCS#8 DER, sealed with KEY_ENCRYPTION_KEY when sealed is true.
    private_key bytea       NOT NULL,
    sealed      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when a newer key takes over signing; the key still verifies for a while.
    retired_at  timestamptz
);
CREATE INDEX signing_keys_alg_idx ON signing_keys (alg, created_at);

-- Security events (never a password or a token).
CREATE TABLE audit_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    event      text        NOT NULL,
    user_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    session_id uuid,
    ip         text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT '',
    request_id text        NOT NULL DEFAULT '',
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, id);
CREATE INDEX audit_events_created_at_idx ON audit_events (created_at);

-- rotate_refresh_token settles one refresh in one round trip.
--
-- Outcomes: 'rotated' (the token was live: it is spent and p_new_hash is the
-- new live token, valid until expires_at, never past the session's cap),
-- 'grace' (the token was spent within p_grace and its successor is still
-- live: the sealed successor is returned), 'reuse' (any other spent token:
-- the session is ended), 'invalid' (unknown, expired, or its session has
-- ended or expired).
--
-- The session row is locked first, the same order as every statement that
-- ends sessions, so concurrent rotations and logouts cannot deadlock. Every
-- change to a session's tokens holds that lock, so concurrent rotations of
-- one session serialise on it, and the token read after it (a new snapshot:
-- READ COMMITTED, statement by statement) is the latest committed state.
CREATE FUNCTION rotate_refresh_token(
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
    IF v_sid IS NULL OR v_ended IS NOT NULL OR v_s_exp <= p_now THEN
        RETURN QUERY SELECT 'invalid'::text, v_sid, v_uid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT rt.spent_at, rt.expires_at, rt.successor_hash, rt.successor_sealed, u.role
      INTO v_spent, v_t_exp, v_succ, v_sealed, v_role
      FROM refresh_tokens rt JOIN users u ON u.id = v_uid
     WHERE rt.hash = p_hash;

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
         WHERE nx.hash = v_succ AND nx.spent_at IS NULL AND nx.expires_at > p_now;
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

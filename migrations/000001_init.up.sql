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
-- new live token, valid until expires_at, never past the session's cap), 'grace' (the token was spent within p_grace and its
-- successor is still live: the sealed successor is returned), 'reuse' (any
-- other spent token: the session is ended), 'invalid' (unknown, expired, or
-- its session has ended or expired).
--
-- Lock order is session row, then token rows, the same as every statement
-- that ends sessions, so concurrent rotations and logouts cannot deadlock.
-- Concurrent rotations of one session serialise on the session row lock, and
-- each statement in this READ COMMITTED function sees rows committed before it.
CREATE FUNCTION rotate_refresh_token(
    p_hash bytea, p_new_hash bytea, p_sealed bytea, p_now timestamptz,
    p_grace interval, p_ttl interval, p_ip text, p_user_agent text)
RETURNS TABLE (outcome text, session_id uuid, user_id uuid, role text, sealed bytea, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_sid  uuid;
    s      sessions%ROWTYPE;
    t      refresh_tokens%ROWTYPE;
    v_role text;
    v_next_exp timestamptz;
BEGIN
    SELECT rt.session_id INTO v_sid FROM refresh_tokens rt WHERE rt.hash = p_hash;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT * INTO s FROM sessions ss WHERE ss.id = v_sid FOR UPDATE;
    SELECT * INTO t FROM refresh_tokens rt WHERE rt.hash = p_hash FOR UPDATE;
    IF s.id IS NULL OR t.hash IS NULL OR s.ended_at IS NOT NULL OR s.expires_at <= p_now THEN
        RETURN QUERY SELECT 'invalid'::text, s.id, s.user_id, NULL::text, NULL::bytea, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT u.role INTO v_role FROM users u WHERE u.id = s.user_id;

    IF t.spent_at IS NULL THEN
        IF t.expires_at <= p_now THEN
            RETURN QUERY SELECT 'invalid'::text, s.id, s.user_id, NULL::text, NULL::bytea, NULL::timestamptz;
            RETURN;
        END IF;
        v_next_exp := least(p_now + p_ttl, s.expires_at);
        UPDATE refresh_tokens rt
           SET spent_at = p_now, successor_hash = p_new_hash, successor_sealed = p_sealed
         WHERE rt.hash = p_hash;
        INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
        VALUES (p_new_hash, s.id, p_now, v_next_exp);
        UPDATE sessions ss
           SET last_used_at = p_now, idle_expires_at = v_next_exp, ip = p_ip, user_agent = p_user_agent
         WHERE ss.id = s.id;
        RETURN QUERY SELECT 'rotated'::text, s.id, s.user_id, v_role, NULL::bytea, v_next_exp;
        RETURN;
    END IF;

    -- Spent. Within the grace window, and only while its successor is the
    -- live token, the holder gets that same successor again.
    IF p_grace > interval '0' AND t.spent_at > p_now - p_grace AND EXISTS (
        SELECT 1 FROM refresh_tokens nx
         WHERE nx.hash = t.successor_hash AND nx.spent_at IS NULL AND nx.expires_at > p_now)
    THEN
        UPDATE sessions ss SET last_used_at = p_now, ip = p_ip, user_agent = p_user_agent
         WHERE ss.id = s.id;
        RETURN QUERY SELECT 'grace'::text, s.id, s.user_id, v_role, t.successor_sealed,
            (SELECT least(nx.expires_at, s.expires_at) FROM refresh_tokens nx WHERE nx.hash = t.successor_hash);
        RETURN;
    END IF;

    -- Reuse: end the whole session.
    UPDATE sessions ss SET ended_at = p_now WHERE ss.id = s.id;
    UPDATE refresh_tokens rt SET spent_at = p_now
     WHERE rt.session_id = s.id AND rt.spent_at IS NULL;
    RETURN QUERY SELECT 'reuse'::text, s.id, s.user_id, v_role, NULL::bytea, NULL::timestamptz;
END
$$;

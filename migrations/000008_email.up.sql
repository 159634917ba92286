-- Email: verification, password reset, email change and the "this wasn't
-- me" notices, sent through an outbox.

ALTER TABLE users
    -- When the address was verified (a verification, a reset, a confirmed change).
    ADD COLUMN email_verified_at timestamptz,
    -- The address an email change waits to be confirmed by.
    ADD COLUMN pending_email text CHECK (pending_email IS NFC NORMALIZED AND length(pending_email) <= 254),
    -- A keyed hash (HMAC, the email key below) of the address, lower-cased:
    -- how the outbox's sender finds the account a request named. Filled by
    -- the service (it holds the key), for rows of earlier releases too.
    ADD COLUMN email_key bytea,
    -- Created while EMAIL_VERIFICATION=required: deleted by the purge when
    -- not verified within 7 days (no other account ever is).
    ADD COLUMN must_verify boolean NOT NULL DEFAULT false,
    -- Set by "this wasn't me": the password stops working until a reset.
    ADD COLUMN password_disabled_at timestamptz;
CREATE INDEX users_email_key_idx ON users (email_key) WHERE email_key IS NOT NULL;
CREATE INDEX users_email_key_missing_idx ON users (id) WHERE email_key IS NULL;
CREATE INDEX users_unverified_idx ON users (created_at) WHERE must_verify AND email_verified_at IS NULL;

-- Secrets the service keeps like its signing keys (sealed with
-- KEY_ENCRYPTION_KEY when set): "email", the key of the keyed hashes of
-- addresses and one-time codes.
CREATE TABLE secret_keys (
    name       text        PRIMARY KEY,
    secret     bytea       NOT NULL,
    sealed     boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per mail the service may send. A request records only
-- the intent (kind, the keyed hash of the address or the signed-in user, the
-- client's IP, the time); a sender in every instance claims due rows (FOR
-- UPDATE SKIP LOCKED, with a lease), resolves the account, applies the caps,
-- makes the one-time token and sends. message_id is the same on every retry.
CREATE TABLE email_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('verification', 'reset', 'email_change',
                                    'password_changed', 'email_changed', 'account_denied')),
    address_key     bytea,
    user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
    -- What a notice's "this wasn't me" link undoes (an email change: the
    -- address before it); an email change's new address.
    detail          jsonb       NOT NULL DEFAULT '{}',
    ip              text        NOT NULL DEFAULT '',
    request_id      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'skipped', 'failed', 'expired')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    message_id      text        NOT NULL,
    -- The one-time token the last attempt made (a retry spends it).
    token_id        bigint,
    finished_at     timestamptz,
    outcome         text        NOT NULL DEFAULT ''
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_finished_idx ON email_outbox (finished_at) WHERE status <> 'pending';

-- One-time tokens: a link token and an 8-digit code per issuance; only the
-- link token's SHA-256 and the code's keyed hash are kept. An issuance is
-- bound to its user, its purpose and the address it was mailed to.
CREATE TABLE one_time_tokens (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify', 'reset', 'email_change', 'deny')),
    address     text        NOT NULL,
    link_hash   bytea       NOT NULL UNIQUE,
    code_hash   bytea,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    wrong_codes integer     NOT NULL DEFAULT 0,
    -- deny: what the notice's event was, to undo it.
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX one_time_tokens_live_idx ON one_time_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX one_time_tokens_address_idx ON one_time_tokens (lower(address), purpose) WHERE used_at IS NULL;
CREATE INDEX one_time_tokens_purge_idx ON one_time_tokens ((coalesce(used_at, expires_at)));

-- What /v1/me shows changed: every instance drops its cached copy.
DROP TRIGGER users_changed_notify ON users;
CREATE TRIGGER users_changed_notify
    AFTER UPDATE OF logout_all_at, role, email, email_verified_at, pending_email, password_disabled_at ON users
    FOR EACH ROW WHEN (OLD.logout_all_at IS DISTINCT FROM NEW.logout_all_at
                       OR OLD.role IS DISTINCT FROM NEW.role OR OLD.email IS DISTINCT FROM NEW.email
                       OR OLD.email_verified_at IS DISTINCT FROM NEW.email_verified_at
                       OR OLD.pending_email IS DISTINCT FROM NEW.pending_email
                       OR OLD.password_disabled_at IS DISTINCT FROM NEW.password_disabled_at)
    EXECUTE FUNCTION notify_revocation();

-- A new intent wakes the senders (once per statement: a burst is one wake-up).
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('accounts_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER email_outbox_notify AFTER INSERT ON email_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION notify_outbox() SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;

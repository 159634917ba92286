-- OAuth 2.0 clients (RFC 6749 §2): the built-in public client "accounts",
-- to which every session of /v1/login belongs, and the clients an operator
-- adds with `server clients add`. A confidential client's secret is kept
-- as its SHA-256 (the secret is 256 random bits).
CREATE TABLE oauth_clients (
    id           text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$'),
    confidential boolean     NOT NULL,
    secret_hash  bytea       CHECK ((secret_hash IS NOT NULL) = confidential),
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO oauth_clients (id, confidential) VALUES ('accounts', false);

-- Every session (and so every refresh token) belongs to one client; the
-- sessions of earlier releases, and of /v1/login, to "accounts". No
-- foreign key: removing a client ends its sessions, which stay as rows
-- until the purge.
ALTER TABLE sessions ADD COLUMN client_id text NOT NULL DEFAULT 'accounts';
CREATE INDEX sessions_client_live_idx ON sessions (client_id) WHERE ended_at IS NULL AND client_id <> 'accounts';

-- Chains of refresh tokens for pgbench: one user, session and live token per
-- (run, client). Token k of a chain is sha256('bench-<run>-<client>-<k>').
INSERT INTO users (email, password_hash)
SELECT 'pgbench-' || r || '-' || c || '@example.com', 'x'
  FROM generate_series(1, :runs) r, generate_series(0, :clients - 1) c;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, idle_expires_at)
SELECT gen_random_uuid(), id, now(), now(), now() + interval '90 days', now() + interval '30 days'
  FROM users WHERE email LIKE 'pgbench-%';
INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at)
SELECT sha256(convert_to('bench-' || split_part(u.email, '-', 2) || '-' || split_part(split_part(u.email, '-', 3), '@', 1) || '-0', 'UTF8')),
       s.id, now(), now() + interval '30 days'
  FROM users u JOIN sessions s ON s.user_id = u.id WHERE u.email LIKE 'pgbench-%';

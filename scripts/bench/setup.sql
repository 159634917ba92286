-- pgbench's data: one user and one session per (run, client), each session
-- with its state on its row (format 2). Runs 1 and 2 are the rotation
-- function's chains, 3 and 4 the one-row ceiling's rows. A session's id is
-- md5('bench-<run>-<client>')::uuid; token k of a chain has the hash
-- sha256('bench-<run>-<client>-<k>').
INSERT INTO users (email, password_hash)
SELECT 'pgbench-' || r || '-' || c || '@example.com', 'x'
  FROM generate_series(1, :runs) r, generate_series(0, :clients - 1) c;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, idle_expires_at, user_agent, ip, rt_hash)
SELECT md5('bench-' || r || '-' || c)::uuid, u.id, now(), now(), now() + interval '90 days', now() + interval '30 days',
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36', '127.0.0.1',
       sha256(convert_to('bench-' || r || '-' || c || '-0', 'UTF8'))
  FROM generate_series(1, :runs) r CROSS JOIN generate_series(0, :clients - 1) c
  JOIN users u ON u.email = 'pgbench-' || r || '-' || c || '@example.com';

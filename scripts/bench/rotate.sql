-- One refresh rotation, exactly the statement the service sends
-- (internal/store/sessions.go, rotateSessionToken), with a 72-byte sealed
-- successor. Each client follows its own chain: k is kept per client by \gset.
SELECT (outcome = 'rotated')::int AS rotated, :k + 1 AS k
  FROM rotate_session_token(
    md5('bench-' || :run || '-' || :client_id)::uuid,
    sha256(convert_to('bench-' || :run || '-' || :client_id || '-' || :k, 'UTF8')),
    sha256(convert_to('bench-' || :run || '-' || :client_id || '-' || (:k + 1), 'UTF8')),
    decode(repeat('ab', 72), 'hex'), now(), interval '10 seconds', interval '720 hours', '127.0.0.1',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36') \gset
\if :rotated = 0
SELECT 1 / 0; -- a chain that stopped rotating fails the run (pgbench counts it)
\endif

-- One refresh rotation, exactly the statement the service sends
-- (internal/store/sessions.go), with a 72-byte sealed successor. Each
-- client follows its own chain: k is kept per client by \gset.
SELECT outcome, :k + 1 AS k
  FROM rotate_refresh_token(
    sha256(convert_to('bench-' || :run || '-' || :client_id || '-' || :k, 'UTF8')),
    sha256(convert_to('bench-' || :run || '-' || :client_id || '-' || (:k + 1), 'UTF8')),
    decode(repeat('ab', 72), 'hex'), now(), interval '10 seconds', interval '720 hours', '127.0.0.1', 'pgbench') \gset
\if :k < 0
\endif

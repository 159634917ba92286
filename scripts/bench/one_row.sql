-- The ceiling for a refresh on this database: the cheapest transaction a
-- rotation could be, one HOT update of one session-shaped row by primary
-- key, writing what a rotation writes (no function, no checks).
UPDATE sessions
   SET rt_spent = substring(substring(rt_prev_hash for 16) || coalesce(rt_spent, ''::bytea) for 112),
       rt_prev_hash = rt_hash, rt_prev_spent_at = now(), rt_prev_sealed = decode(repeat('ab', 72), 'hex'),
       rt_hash = sha256(rt_hash), last_used_at = now(), idle_expires_at = now() + interval '720 hours'
 WHERE id = md5('bench-' || :run || '-' || :client_id)::uuid;

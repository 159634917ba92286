-- Emails are stored in Unicode NFC from now on, so that an address typed
-- precomposed ("rené", U+00E9) and decomposed ("rene" + U+0301) is one
-- account. Rows that normalise to the same address are never merged
-- silently: the migration stops, naming them, for an operator to resolve
-- (delete one, or give it another address) before migrating again.
DO $$
DECLARE
    v_collisions text;
BEGIN
    SELECT string_agg(accounts, '; ') INTO v_collisions FROM (
        SELECT string_agg(id::text || ' <' || email || '>', ', ' ORDER BY created_at) AS accounts
          FROM users
         GROUP BY lower(normalize(email, NFC))
        HAVING count(*) > 1) c;
    IF v_collisions IS NOT NULL THEN
        RAISE EXCEPTION 'accounts whose emails differ only in Unicode normalisation: %', v_collisions
            USING HINT = 'Keep one account of each group (delete the others or change their email), then migrate again.';
    END IF;
END
$$;
UPDATE users SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED;

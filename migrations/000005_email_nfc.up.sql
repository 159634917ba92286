-- Emails are stored in Unicode NFC from now on, so that an address typed
-- precomposed ("rené", U+00E9) and decomposed ("rene" + U+0301) is one
-- account, and the schema holds them to it (users_email_nfc). Rows are
-- never merged or mangled silently: the migration stops, naming them, for
-- an operator to resolve (delete one, or give it another address) before
-- migrating again, when two rows normalise to one address, or when a row's
-- NFC form is no address the service accepts (NFC can lengthen an address
-- past 254 bytes or its local part past 64, or turn a character into a
-- forbidden one: U+037E becomes ';').
DO $$
DECLARE
    v_collisions text;
    v_invalid    text;
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
    SELECT string_agg(id::text || ' <' || email || '>', ', ' ORDER BY created_at) INTO v_invalid
      FROM (SELECT id, email, created_at, normalize(email, NFC) AS nfc FROM users) u
     WHERE octet_length(nfc) > 254
        OR octet_length(substring(nfc FROM '^(.*)@')) > 64
        OR nfc ~ '[[:space:][:cntrl:]"<>()\[\]\\,;:`]';
    IF v_invalid IS NOT NULL THEN
        RAISE EXCEPTION 'accounts whose emails are no valid address once in Unicode NFC: %', v_invalid
            USING HINT = 'Give these accounts another email (or delete them), then migrate again.';
    END IF;
END
$$;
UPDATE users SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED;
-- Every instance of this release stores NFC; one of an earlier release
-- (during a rolling deploy) storing anything else now fails loudly rather
-- than making an account nobody can find.
ALTER TABLE users ADD CONSTRAINT users_email_nfc CHECK (email IS NFC NORMALIZED);

-- The original forms are not kept: NFC addresses stay, only the constraint goes.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_nfc;

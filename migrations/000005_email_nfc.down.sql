-- Nothing to undo: NFC addresses are valid addresses; the original forms are not kept.
SELECT 1;

-- The transfer journal of the embedded store (transfers.db), used when
-- transfers run as a process (TRANSFERS=process): each transfer's records in
-- order, and the transfers still open.

-- One row per record of a transfer; `sequence` is 1 for the intent and grows
-- by one, so "append after n records" is a conflict when another writer
-- appended first.
CREATE TABLE transfer_records (
    transfer_id TEXT    NOT NULL,
    sequence    INTEGER NOT NULL CHECK (sequence >= 1),
    record      TEXT    NOT NULL,           -- JSON of the record
    PRIMARY KEY (transfer_id, sequence)
) WITHOUT ROWID;

-- Transfers initiated and not yet finished, oldest first: what start-up
-- resumes. Written in the same transaction as the record that opens or
-- finishes the transfer, so finding them never scans the history.
CREATE TABLE open_transfers (
    opened      INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id TEXT    NOT NULL UNIQUE
);

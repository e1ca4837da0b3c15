-- The greatest event-log position (events.db) of a wallet event a record of
-- this journal says is stored. At start it is compared with the log's head:
-- a log that ends before it is older than the journal (restored from an
-- older copy, or cut short), and the server refuses to start on it rather
-- than answer retries of transfers the log lacks. One row; 0 until a record
-- written by this version follows a stored event.
CREATE TABLE log_position (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    position  INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO log_position (singleton, position) VALUES (1, 0);

-- A stream's events are found through a word of a full-text table instead of
-- the B-tree index of UNIQUE (stream_id, version), which wrote one random leaf
-- page for every event appended: half of the file's writes (bench/README.md,
-- "Which B-tree each WAL frame writes"). FTS5 is log-structured: a commit
-- appends one segment holding every word of its events, in order.
--
-- The version's uniqueness is the writer's: one thread appends, and it reads
-- a stream's newest event through its word before every append
-- (crates/event-store/src/embedded.rs, `stream_head`). SQLite cannot drop a
-- table's UNIQUE, so the table is built again, positions kept.
CREATE TABLE events_next (
    position     INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL
);
INSERT INTO events_next (position, event_id, stream_id, version, event_type, payload, recorded_at)
    SELECT position, event_id, stream_id, version, event_type, payload, recorded_at
    FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_next RENAME TO events;

-- One word per event, rowid = its position: 's' and the stream id's UTF-8
-- bytes in hexadecimal (embedded_sqlite::identifier_word). Contentless,
-- without positions: only which events a stream holds is asked, in rowid
-- order either way.
CREATE VIRTUAL TABLE event_streams USING fts5 (
    stream,
    content = '',
    detail = none,
    columnsize = 0,
    tokenize = 'ascii'
);
INSERT INTO event_streams (rowid, stream)
    SELECT position, 's' || lower(hex(stream_id)) FROM events;

-- Every event gets its word in the statement that stores it, and loses it
-- with it (an event is never deleted but by tests that simulate a lost
-- commit), whoever writes the row.
CREATE TRIGGER events_stream_word AFTER INSERT ON events BEGIN
    INSERT INTO event_streams (rowid, stream)
        VALUES (new.position, 's' || lower(hex(new.stream_id)));
END;
CREATE TRIGGER events_stream_word_deleted AFTER DELETE ON events BEGIN
    INSERT INTO event_streams (event_streams, rowid, stream)
        VALUES ('delete', old.position, 's' || lower(hex(old.stream_id)));
END;

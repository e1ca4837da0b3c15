-- The stream index leaves the events table (crates/event-store/src/embedded/stream_index.rs).
-- `UNIQUE (stream_id, version)` wrote one random leaf of its B-tree for every
-- event: 59 % of the log's WAL frames on the benchmark's mix (bench/README.md).
-- `stream_index` holds the same entries, written a stream at a time by the
-- single writer, which keeps the newest ones in memory until then and keeps
-- versions unique itself. SQLite cannot drop a table's UNIQUE: the table is
-- built again, positions kept.
CREATE TABLE events_rebuilt (
    position     INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL
);
INSERT INTO events_rebuilt (position, event_id, stream_id, version, event_type, payload, recorded_at)
    SELECT position, event_id, stream_id, version, event_type, payload, recorded_at
    FROM events ORDER BY position;

-- Where each event of a stream lies in the log.
CREATE TABLE stream_index (
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL CHECK (version >= 1),
    position  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
INSERT INTO stream_index (stream_id, version, position)
    SELECT stream_id, version, position FROM events ORDER BY stream_id, version;

DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;

-- Every event at or below `position` is in `stream_index`; the writer
-- indexes the events after it when it opens the file.
CREATE TABLE stream_index_through (
    only     INTEGER PRIMARY KEY CHECK (only = 1),
    position INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO stream_index_through (only, position)
    SELECT 1, COALESCE(MAX(position), 0) FROM events;

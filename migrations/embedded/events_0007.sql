-- The event id leaves the events table's UNIQUE (crates/event-store/src/embedded.rs,
-- `version_of_event`). SQLite balances an index's B-tree across three sibling
-- leaves and their parent at every split, also when each key lands at its end,
-- so the index of every event's id was 30 % of the log's WAL frames on the
-- benchmark's mix, 3.8 frames a commit (bench/README.md). Ids made by
-- `Uuid::now_v7` (version digit 7) are unique by construction: the process's
-- one generator makes each greater than the last (a millisecond, a counter
-- within it), and 32 more bits of each are random. The ids
-- derived from another (version 5: a transfer's or a capture's halves, a
-- hold's expiry) are what a step replayed after a crash looks up, and what
-- must not be stored twice: they stay in a unique index, which takes only
-- them. SQLite cannot drop a table's UNIQUE: the table is built again,
-- positions kept.
CREATE TABLE events_rebuilt (
    position     INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL
);
INSERT INTO events_rebuilt (position, event_id, stream_id, version, event_type, payload, recorded_at)
    SELECT position, event_id, stream_id, version, event_type, payload, recorded_at
    FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;

-- Every id but a time-ordered one (the text's 15th character is the UUID's version).
CREATE UNIQUE INDEX events_derived_event_id ON events (event_id)
    WHERE substr(event_id, 15, 1) <> '7';

-- Every snapshot a stream had, not only its newest (issue 13: a read as of a
-- moment costs the same however long the stream): one row per snapshot,
-- keyed by (stream, version), so that a read as of a version or a time starts
-- from the nearest snapshot at or before it. The newest is the one at the
-- highest version. `occurred_at_ns` is the time of the event at `version`,
-- in nanoseconds since the Unix epoch; rows kept from before this migration
-- have none and are found by version only. Still a cache of the events,
-- checked against them on every read; deleting every row is safe.
--
-- Rows of other types than the store writes (a damaged cache row) are not
-- copied: a reader would have read past them anyway.
CREATE TABLE snapshots_kept (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    last_event_id  TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    occurred_at_ns INTEGER,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;

INSERT INTO snapshots_kept (stream_id, version, last_event_id, state)
    SELECT stream_id, version, last_event_id, state FROM snapshots
    WHERE typeof(version) = 'integer' AND typeof(last_event_id) = 'text'
        AND typeof(state) = 'text';
DROP TABLE snapshots;
ALTER TABLE snapshots_kept RENAME TO snapshots;

CREATE INDEX snapshots_by_time ON snapshots (stream_id, occurred_at_ns);

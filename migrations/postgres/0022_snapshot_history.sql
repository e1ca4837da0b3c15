-- Every snapshot a stream had, not only its newest (issue 13: a read as of a
-- moment costs the same however long the stream): one row per snapshot,
-- keyed by (stream, version), so that a read as of a version or a time starts
-- from the nearest snapshot at or before it. The newest is the one at the
-- highest version. `occurred_at_ns` is the time of the event at `version`,
-- in nanoseconds since the Unix epoch; rows kept from before this migration
-- have none and are found by version only. Still a cache of the events,
-- checked against them on every read; deleting every row is safe.
ALTER TABLE snapshots DROP CONSTRAINT snapshots_pkey;
ALTER TABLE snapshots ADD CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, version);
ALTER TABLE snapshots ADD COLUMN occurred_at_ns BIGINT;
CREATE INDEX snapshots_by_time ON snapshots (stream_id, occurred_at_ns, version);

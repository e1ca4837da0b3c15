-- Where the outbox relay's checkpoint left each partition of its topic: the
-- offset after the last message it published there, written in the
-- transaction that moves its row of relay_checkpoints. A reader that wants
-- every write acknowledged before it (command-api's reads of the ledger, the
-- read model and the search index) waits until the relay's checkpoint is at
-- or past the event store's head and each consumer group's stored offsets
-- (consumer_offsets) reach these.
CREATE TABLE relay_published_offsets (
    name        TEXT    NOT NULL,  -- the relay's row of relay_checkpoints
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,  -- one past the last message published
    CONSTRAINT relay_published_offsets_pkey PRIMARY KEY (name, topic, partition),
    CONSTRAINT relay_published_offsets_partition_not_negative CHECK (partition >= 0),
    CONSTRAINT relay_published_offsets_next_offset_positive CHECK (next_offset >= 1)
);

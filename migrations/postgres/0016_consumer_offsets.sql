-- The Kafka consumers' offsets, kept beside what they write (see
-- crates/postgres-support/src/consumer_offsets.rs): a batch moves its
-- partitions' offsets in the transaction that applies it, on the condition
-- that each still holds the offset the consumer expects, so PostgreSQL losing
-- a transaction loses its offsets too and the consumer reads those messages
-- again. Kafka's committed offsets are kept for lag and tools only.
CREATE TABLE consumer_offsets (
    consumer_group TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition      INTEGER NOT NULL,
    next_offset    BIGINT  NOT NULL, -- the offset of the next message to apply
    CONSTRAINT consumer_offsets_pkey PRIMARY KEY (consumer_group, topic, partition),
    CONSTRAINT consumer_offsets_partition_not_negative CHECK (partition >= 0),
    CONSTRAINT consumer_offsets_next_offset_not_negative CHECK (next_offset >= 0)
);

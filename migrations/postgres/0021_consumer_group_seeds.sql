-- A consumer group started from another's stored offsets, once: the search
-- index's group (`<group>-search-index`) took over the search index from the
-- projection group, which stored its offsets only once both the read model
-- and the search index held a batch. Its first start copies those offsets
-- (see `consumer_offsets::seed_once`); this row says it was done, so a later
-- start never copies again (the read model's group may then be ahead of
-- what the search index holds).
CREATE TABLE consumer_group_seeds (
    consumer_group TEXT        NOT NULL,
    topic          TEXT        NOT NULL,
    seeded_from    TEXT        NOT NULL,
    seeded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT consumer_group_seeds_pkey PRIMARY KEY (consumer_group, topic)
);

-- Wallets as the list endpoints see them, projected from the event log
-- (projection-consumer). Ids sort byte-wise ("C"), as keyset paging and the
-- embedded read model expect, whatever the database's collation.
CREATE TABLE wallet_read_model (
    wallet_id  TEXT COLLATE "C" PRIMARY KEY,
    owner_id   TEXT COLLATE "C" NOT NULL,
    balance    NUMERIC     NOT NULL CHECK (balance >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    version    BIGINT      NOT NULL CHECK (version >= 1)   -- stream version of the last event applied
);
CREATE INDEX wallet_read_model_by_owner ON wallet_read_model (owner_id, wallet_id);

-- Global position of the last event projected, written with the projection.
CREATE TABLE read_model_checkpoint (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    position BIGINT   NOT NULL CHECK (position >= 0)
);
INSERT INTO read_model_checkpoint (id, position) VALUES (1, 0);

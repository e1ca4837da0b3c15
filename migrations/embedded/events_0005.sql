-- Where each hold's life lies in its wallet's stream: the version of its
-- HoldPlaced, written with the row, and of the event that settled it,
-- written in the transaction that settles it. `GET /holds/{holdId}` reads
-- the stream between the two instead of searching back from the newest
-- snapshot. NULL in rows entered before this migration (those are searched).
ALTER TABLE hold_directory ADD COLUMN placed_version INTEGER CHECK (placed_version >= 1);
ALTER TABLE hold_directory ADD COLUMN settled_version INTEGER CHECK (settled_version > placed_version);

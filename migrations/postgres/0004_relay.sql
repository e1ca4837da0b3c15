-- Where each relay to an external system (Kafka) has got to in the global
-- event log. A relay writes its row only after every event up to `position`
-- has been acknowledged by that system, so a restart resumes from here and
-- republishes at most one batch (consumers deduplicate by event id).
CREATE TABLE IF NOT EXISTS relay_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL CHECK (position >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

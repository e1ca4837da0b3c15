-- Idempotent responses expire (IDEMPOTENCY_RETENTION_HOURS): the purge finds the oldest by this index.
CREATE INDEX idempotency_keys_recorded_at ON idempotency_keys (recorded_at);

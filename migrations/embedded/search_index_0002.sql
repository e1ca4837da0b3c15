-- Who caused each event (the `sub` of its bearer token, from the event's
-- metadata): the audit trail admins see in the history. Absent for events
-- made without authentication or indexed before it was recorded.
ALTER TABLE search_transactions ADD COLUMN principal TEXT;

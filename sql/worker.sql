-- What the embedding worker (pgai-migrate-worker) records: one row per
-- failure of a key (or of a whole batch, key NULL), like pgai's
-- ai.vectorizer_errors.
--
-- Who may write and read is decided per vectorizer by row-level security,
-- evaluated as the calling role: a role that may INSERT into a
-- vectorizer's queue (a worker: grant_to roles, the source's owner) may
-- record errors for that vectorizer and no other; a role that may SELECT
-- the queue may read them. Only the listed columns are insertable, so
-- recorded_at and recorded_by cannot be forged. No function is involved,
-- so there is nothing to execute with raised privileges.
-- Errors are operational history, not schema: they are not dumped, and a
-- vectorizer's errors go with it when it is dropped.

CREATE TABLE migrate.vectorizer_errors (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vectorizer_id int NOT NULL REFERENCES migrate.vectorizer (id) ON DELETE CASCADE,
    -- the key's primary-key columns as an object, NULL for a batch failure
    key           jsonb,
    message       text NOT NULL,
    -- {"step": "loading"|"parsing"|"chunking"|"formatting"|"embedding"|"batch",
    --  "attempt": n, "moved_to_failed_queue": bool}
    details       jsonb NOT NULL DEFAULT '{}',
    recorded_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by   name NOT NULL DEFAULT CURRENT_USER
);
CREATE INDEX ON migrate.vectorizer_errors (vectorizer_id, recorded_at);

ALTER TABLE migrate.vectorizer_errors ENABLE ROW LEVEL SECURITY;

CREATE POLICY vectorizer_errors_read ON migrate.vectorizer_errors FOR SELECT
USING (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id = vectorizer_errors.vectorizer_id),
    'SELECT'));

CREATE POLICY vectorizer_errors_record ON migrate.vectorizer_errors FOR INSERT
WITH CHECK (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id = vectorizer_errors.vectorizer_id),
    'INSERT'));

GRANT SELECT ON migrate.vectorizer_errors TO PUBLIC;
GRANT INSERT (vectorizer_id, key, message, details) ON migrate.vectorizer_errors TO PUBLIC;

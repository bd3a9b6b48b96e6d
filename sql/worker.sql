-- What the embedding worker (pgai-migrate-worker) records: one row per
-- failure of a key (or of a whole batch, key NULL). The rows live in the
-- table migrate._vectorizer_errors; the view migrate.vectorizer_errors shows
-- them with pgai's columns first (ai.vectorizer_errors: id — the
-- vectorizer's —, message, details, recorded, name) and ours after, and is
-- where workers INSERT.
--
-- Who may write and read is decided per vectorizer by row-level security,
-- evaluated as the calling role (the view is security_invoker, so the same
-- holds through it): a role that may INSERT into a vectorizer's queue (a
-- worker: grant_to roles, the source's owner) may record errors for that
-- vectorizer and no other; a role that may SELECT the queue may read them.
-- Only the listed columns are insertable, so recorded_at and recorded_by
-- cannot be forged. No function is involved, so there is nothing to
-- execute with raised privileges.
-- Errors are operational history, not schema: they are not dumped, and a
-- vectorizer's errors go with it when it is dropped.

CREATE TABLE migrate._vectorizer_errors (
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
CREATE INDEX ON migrate._vectorizer_errors (vectorizer_id, recorded_at);

ALTER TABLE migrate._vectorizer_errors ENABLE ROW LEVEL SECURITY;

CREATE POLICY vectorizer_errors_read ON migrate._vectorizer_errors FOR SELECT
USING (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id OPERATOR(pg_catalog.=) _vectorizer_errors.vectorizer_id),
    'SELECT'));

CREATE POLICY vectorizer_errors_record ON migrate._vectorizer_errors FOR INSERT
WITH CHECK (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id OPERATOR(pg_catalog.=) _vectorizer_errors.vectorizer_id),
    'INSERT'));

GRANT SELECT ON migrate._vectorizer_errors TO PUBLIC;
GRANT INSERT (vectorizer_id, key, message, details) ON migrate._vectorizer_errors TO PUBLIC;

-- Automatically updatable: every column but name is a plain column of the
-- table (name, a scalar subquery, is read-only), so INSERT INTO
-- migrate.vectorizer_errors (vectorizer_id, key, message, details) lands in
-- the table, with its defaults and its row-level security applied to the
-- caller.
CREATE VIEW migrate.vectorizer_errors WITH (security_invoker = true) AS
SELECT e.vectorizer_id AS id,
       e.message,
       e.details,
       e.recorded_at AS recorded,
       (SELECT v.name FROM migrate.vectorizer v
        WHERE v.id OPERATOR(pg_catalog.=) e.vectorizer_id) AS name,
       e.id AS error_id,
       e.vectorizer_id,
       e.key,
       e.recorded_by
FROM migrate._vectorizer_errors e;

GRANT SELECT ON migrate.vectorizer_errors TO PUBLIC;
GRANT INSERT (vectorizer_id, key, message, details) ON migrate.vectorizer_errors TO PUBLIC;

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

-- How far each vectorizer is: exact counts of the queue and the failed
-- queue, the error rows recorded, and the oldest queued key. Exact counts
-- read whole queues, so this is for a person or a progress display, not
-- for a dashboard polling every second. Like vectorizer_queue_pending it
-- runs as the extension owner and finds the queues by OID: anyone may see
-- the numbers, no one reads the rows through it, and no code of a queue's
-- owner runs.
CREATE FUNCTION migrate.vectorizer_backlog(vectorizer_id int4,
    OUT pending_items int8, OUT failed_items int8, OUT error_count int8, OUT oldest_queued_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q regclass;
    f regclass;
BEGIN
    IF vectorizer_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT cq.oid::regclass, cf.oid::regclass INTO q, f
    FROM migrate.vectorizer v
    LEFT JOIN pg_class cq ON cq.oid = v.queue_relid
    LEFT JOIN pg_class cf ON cf.oid = v.queue_failed_relid
    WHERE v.id = vectorizer_backlog.vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object',
            HINT = 'SELECT id, name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    IF q IS NOT NULL THEN
        EXECUTE format('SELECT count(*), min(queued_at) FROM %s', q) INTO pending_items, oldest_queued_at;
    END IF;
    IF f IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', f) INTO failed_items;
    END IF;
    SELECT count(*) INTO error_count FROM migrate._vectorizer_errors e
    WHERE e.vectorizer_id = vectorizer_backlog.vectorizer_id;
END
$$;

CREATE VIEW migrate.vectorizer_progress AS
SELECT v.id,
       v.name,
       b.pending_items,
       b.failed_items,
       b.error_count,
       b.oldest_queued_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_queued_at AS oldest_queued_age,
       v.disabled
FROM migrate.vectorizer v,
     LATERAL migrate.vectorizer_backlog(v.id) b;

GRANT SELECT ON migrate.vectorizer_progress TO PUBLIC;

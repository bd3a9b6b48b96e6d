-- Read-side API: what the extension manages, and how far behind each
-- vectorizer's queue is.


-- Runs as the extension owner so that anyone may see queue depth without
-- being able to read the queue itself.
CREATE FUNCTION migrate.vectorizer_queue_pending(vectorizer_id int)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q regclass;
    n bigint;
BEGIN
    SELECT c.oid::regclass INTO q
    FROM migrate.vectorizer v JOIN pg_class c ON c.oid = v.queue_relid
    WHERE v.id = vectorizer_queue_pending.vectorizer_id;
    IF q IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', q) INTO n;
    RETURN n;
END
$$;

CREATE VIEW migrate.vectorizer_status AS
SELECT v.id,
       v.name,
       v.source,
       CASE WHEN v.target_table IS NOT NULL THEN format('%I.%I', v.target_schema, v.target_table) END AS target_table,
       CASE WHEN v.view_name IS NOT NULL THEN format('%I.%I', v.view_schema, v.view_name) END AS view,
       v.embedding_column,
       migrate.vectorizer_queue_pending(v.id) AS pending_items
FROM migrate.vectorizer v;

GRANT SELECT ON migrate.vectorizer_status TO PUBLIC;

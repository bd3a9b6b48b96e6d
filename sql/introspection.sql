-- Read-side API: what the extension manages, and how far behind each
-- vectorizer's queue is.

CREATE FUNCTION migrate.managed_tables()
RETURNS TABLE (
    vectorizer_id   int,
    vectorizer_name text,
    kind            text,
    schema_name     name,
    table_name      name,
    relid           regclass
)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- Current names by OID (renames are followed); the recorded name and a
    -- NULL relid if the relation was dropped by hand.
    SELECT v.id, v.name, k.kind,
           COALESCE(n.nspname, k.schema_name), COALESCE(c.relname, k.table_name),
           c.oid::regclass
    FROM migrate.vectorizer v
    CROSS JOIN LATERAL (VALUES
        (1, 'store',        v.store_relid,        v.target_schema, v.target_table),
        (2, 'view',         v.view_relid,         v.view_schema,   v.view_name),
        (3, 'queue',        v.queue_relid,        v.queue_schema,  v.queue_table),
        (4, 'failed_queue', v.queue_failed_relid, v.queue_schema,  v.queue_failed_table)
    ) AS k(ord, kind, relid, schema_name, table_name)
    LEFT JOIN pg_class c ON c.oid = k.relid
    LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE k.relid IS NOT NULL
    ORDER BY v.id, k.ord
$$;

COMMENT ON FUNCTION migrate.managed_tables() IS
'One row per relation a vectorizer manages (store, view, queue, failed_queue): exclude these from schema-diff tools';

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

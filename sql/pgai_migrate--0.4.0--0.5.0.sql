-- pgai_migrate 0.4.0 -> 0.5.0.

-- vectorizer_status starts with pgai's columns in pgai's order (id,
-- source_table, target_table, view, embedding_column, pending_items,
-- disabled), so `SELECT *` reads as it does in pgai; ours (name, source)
-- follow. A view's columns cannot be reordered in place: it is created
-- again, and a view of your own over it must be dropped first (the update
-- then fails with 2BP01, changing nothing).
DROP VIEW migrate.vectorizer_status;
CREATE VIEW migrate.vectorizer_status AS
SELECT v.id,
       pg_catalog.format('%I.%I', n.nspname, c.relname) AS source_table,
       CASE WHEN v.target_table IS NOT NULL
            THEN pg_catalog.format('%I.%I', v.target_schema, v.target_table) END AS target_table,
       CASE WHEN v.view_name IS NOT NULL
            THEN pg_catalog.format('%I.%I', v.view_schema, v.view_name) END AS view,
       CASE WHEN v.embedding_column IS NOT NULL
            THEN pg_catalog.format('%I', v.embedding_column) ELSE 'embedding' END AS embedding_column,
       migrate.vectorizer_queue_pending(v.id) AS pending_items,
       v.disabled,
       v.name,
       v.source
FROM migrate.vectorizer v
LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) v.source
LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;

GRANT SELECT ON migrate.vectorizer_status TO PUBLIC;

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

-- migrate.vectorizer_embed (sql/embed.sql): a query's embedding in SQL.
CREATE FUNCTION migrate.vectorizer_embed_text(name text, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_by_name_wrapper';

CREATE FUNCTION migrate.vectorizer_embed_text(vectorizer_id int4, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_by_id_wrapper';

CREATE FUNCTION migrate.vectorizer_embed_config_text(embedding_config text, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_with_config_wrapper';

CREATE FUNCTION migrate.vectorizer_embed(name text, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_text(name, input_text, input_type)::@extschema:vector@.vector
$$;

CREATE FUNCTION migrate.vectorizer_embed(vectorizer_id int4, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_text(vectorizer_id, input_text, input_type)::@extschema:vector@.vector
$$;

CREATE FUNCTION migrate.vectorizer_embed(embedding_config jsonb, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_config_text(embedding_config::pg_catalog.text, input_text, input_type)::@extschema:vector@.vector
$$;

-- The worker builds a vectorizer's vector index through this entry point
-- (src/worker_api.rs): it checks the caller's worker rights, then decides
-- and builds as the source's owner, security-restricted.
CREATE FUNCTION migrate.worker_index(vectorizer_id int4) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_index_wrapper';

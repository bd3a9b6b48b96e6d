-- Read-side API: what the extension manages, and how far behind each
-- vectorizer's queue is. pgai's names, arguments and meanings
-- (ai.vectorizer_queue_pending, ai.vectorizer_status).


-- How many keys wait in a vectorizer's queue. Like pgai: without
-- exact_count it counts at most 10001 rows and returns the largest bigint
-- (9223372036854775807) when there are more, so it stays cheap on a long
-- queue. Unlike pgai, it runs as the extension owner, so anyone may see a
-- queue's depth (a number, not a secret) without being able to read the
-- queue itself; pgai needs SELECT on the queue.
CREATE FUNCTION migrate.vectorizer_queue_pending(vectorizer_id int4, exact_count bool DEFAULT false)
RETURNS int8
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q regclass;
    n int8;
BEGIN
    IF vectorizer_id IS NULL OR exact_count IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN vectorizer_id IS NULL THEN 'vectorizer_id' ELSE 'exact_count' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.oid::regclass INTO q
    FROM migrate.vectorizer v LEFT JOIN pg_class c ON c.oid = v.queue_relid
    WHERE v.id = vectorizer_queue_pending.vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object',
            HINT = 'SELECT id, name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    IF q IS NULL THEN
        RETURN NULL;  -- the queue is gone (dropped by hand)
    END IF;
    IF exact_count THEN
        EXECUTE format('SELECT count(*) FROM %s', q) INTO n;
    ELSE
        EXECUTE format('SELECT count(*) FROM (SELECT FROM %s LIMIT 10001) AS q', q) INTO n;
        IF n = 10001 THEN
            n := 9223372036854775807;
        END IF;
    END IF;
    RETURN n;
END
$$;

-- pgai's by-name form. Unlike pgai (NULL for an unknown name), an unknown
-- name is an error.
CREATE FUNCTION migrate.vectorizer_queue_pending(name text, exact_count bool DEFAULT false)
RETURNS int8
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _id int4;
BEGIN
    IF name IS NULL OR exact_count IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN name IS NULL THEN 'name' ELSE 'exact_count' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.id INTO _id FROM migrate.vectorizer v WHERE v.name = vectorizer_queue_pending.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer "%" does not exist', name USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    RETURN migrate.vectorizer_queue_pending(_id, exact_count);
END
$$;

-- pgai's columns first, in pgai's order and with its meanings; ours after.
-- Names are read live: the source's from pg_class, the others from the
-- catalog's name columns, which the DDL event trigger keeps in step with
-- renames.
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

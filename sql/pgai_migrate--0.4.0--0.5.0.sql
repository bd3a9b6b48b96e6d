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

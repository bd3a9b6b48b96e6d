-- The other ways to call create/drop. Defined after the Rust functions they
-- wrap.

-- The jsonb form. The Rust function reads the document's text itself, so a
-- document nested too deeply for it is a config error like any other.
CREATE FUNCTION migrate.create_vectorizer(config jsonb) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate._create_vectorizer(config::pg_catalog.text) $$;

-- pgai's named-argument form. Builds the JSON document and hands it to
-- migrate.create_vectorizer(jsonb), so both forms store the same config.
CREATE FUNCTION migrate.create_vectorizer(
    source regclass,
    name text DEFAULT NULL,
    destination jsonb DEFAULT migrate.destination_table(),
    loading jsonb DEFAULT NULL,
    parsing jsonb DEFAULT migrate.parsing_auto(),
    embedding jsonb DEFAULT NULL,
    chunking jsonb DEFAULT migrate.chunking_recursive_character_text_splitter(),
    indexing jsonb DEFAULT migrate.indexing_default(),
    formatting jsonb DEFAULT migrate.formatting_python_template(),
    scheduling jsonb DEFAULT migrate.scheduling_default(),
    processing jsonb DEFAULT migrate.processing_default(),
    queue_schema name DEFAULT NULL,
    queue_table name DEFAULT NULL,
    grant_to name[] DEFAULT migrate.grant_to(),
    enqueue_existing bool DEFAULT true,
    if_not_exists bool DEFAULT false
) RETURNS int4
LANGUAGE sql VOLATILE
AS $$
    -- regclass::text is the name as the caller's search_path sees it, so
    -- the jsonb form resolves it to the same table.
    SELECT migrate.create_vectorizer(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'source', source::pg_catalog.text,
        'name', name,
        'destination', destination,
        'loading', loading,
        'parsing', parsing,
        'embedding', embedding,
        'chunking', chunking,
        'indexing', indexing,
        'formatting', formatting,
        'scheduling', scheduling,
        'processing', processing,
        'queue_schema', queue_schema,
        'queue_table', queue_table,
        'grant_to', pg_catalog.to_jsonb(grant_to),
        'enqueue_existing', enqueue_existing,
        'if_not_exists', if_not_exists)))
$$;

-- With both the jsonb and the regclass form, an untyped literal such as
-- migrate.create_vectorizer('{"source": …}') would be ambiguous; PostgreSQL
-- prefers a text parameter for unknown literals, so this form catches it.
CREATE FUNCTION migrate.create_vectorizer(config text) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate._create_vectorizer(config::pg_catalog.jsonb::pg_catalog.text) $$;

-- pgai's drop by id.
CREATE FUNCTION migrate.drop_vectorizer(vectorizer_id int4, drop_all bool DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    _name text;
BEGIN
    SELECT v.name INTO _name FROM migrate.vectorizer v WHERE v.id = vectorizer_id;
    IF _name IS NULL THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM migrate.drop_vectorizer(_name, drop_all);
END
$$;

-- managed_tables() with the column types tools expect; the rows come from
-- migrate._managed_tables() (Rust: current names by OID via the syscache).
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
AS $$
    SELECT m.vectorizer_id, m.vectorizer_name, m.kind, m.schema_name::pg_catalog.name,
           m.table_name::pg_catalog.name, m.relid::pg_catalog.regclass
    FROM migrate._managed_tables() AS m
$$;

COMMENT ON FUNCTION migrate.managed_tables() IS
'One row per relation a vectorizer manages (store, view, queue, failed_queue): exclude these from schema-diff tools';

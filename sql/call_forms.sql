-- The other ways to call create/drop. Defined after the Rust functions they
-- wrap.

-- The jsonb form. migrate.create_vectorizer(text) (Rust) reads the
-- document's text itself, so a document nested too deeply for it is a
-- config error like any other.
CREATE FUNCTION migrate.create_vectorizer(config jsonb, label text DEFAULT NULL) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.create_vectorizer(config::pg_catalog.text, label) $$;

-- The jsonb forms of alter and plan, likewise: migrate.alter_vectorizer(…,
-- text, …) and migrate.plan_vectorizer(text) (Rust) read the text
-- themselves. No fixed search_path: `source` in the document resolves
-- with the caller's, as for create.
CREATE FUNCTION migrate.alter_vectorizer(name text, changes jsonb, reembed bool DEFAULT false, label text DEFAULT NULL) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.alter_vectorizer(name, changes::pg_catalog.text, reembed, label) $$;

CREATE FUNCTION migrate.plan_vectorizer(config jsonb)
RETURNS TABLE (path text, old_value jsonb, new_value jsonb, action text, queued_rows int8)
LANGUAGE sql VOLATILE
AS $$ SELECT * FROM migrate.plan_vectorizer(config::pg_catalog.text) $$;

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
    if_not_exists bool DEFAULT false,
    label text DEFAULT NULL
) RETURNS int4
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- regclass::text under this function's search_path is the
    -- schema-qualified name, so the jsonb form resolves it to the same
    -- table whatever the caller's search_path.
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
        'if_not_exists', if_not_exists)), label)
$$;

-- pgai's drop by id.
-- No label argument: a third positional argument would make
-- drop_vectorizer('name', false, NULL) ambiguous with the by-name form
-- (the setting migrate.revision_label labels it).
CREATE FUNCTION migrate.drop_vectorizer(vectorizer_id int4, drop_all bool DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _name text;
BEGIN
    IF vectorizer_id IS NULL OR drop_all IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN vectorizer_id IS NULL THEN 'vectorizer_id' ELSE 'drop_all' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.name INTO _name FROM migrate.vectorizer v WHERE v.id = vectorizer_id;
    IF _name IS NULL THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM migrate.drop_vectorizer(_name, drop_all);
END
$$;

COMMENT ON FUNCTION migrate.managed_tables() IS
'One row per relation a vectorizer manages (store, view, queue, failed_queue): exclude these from schema-diff tools';

-- The trigger function behind every vectorizer's triggers: only the
-- extension's own create (running as the extension owner) attaches it.
REVOKE ALL ON FUNCTION migrate._vectorizer_trigger() FROM PUBLIC;

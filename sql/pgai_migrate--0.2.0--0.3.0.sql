-- pgai_migrate 0.2.0 -> 0.3.0: changing vectorizers over time.
--
-- New: alter_vectorizer, plan_vectorizer, restore_vectorizer; a label
-- argument on create, drop and restore; migrate.revision.restored_from.
-- The C entry points of create and drop take the label, so they have new
-- symbol names (0.2.0's SQL bound to this library finds no symbol instead
-- of calling code with another argument list).

ALTER TABLE migrate.revision ADD COLUMN restored_from bigint;

-- create: text and jsonb forms, and pgai's named-argument form, gain label.
DROP FUNCTION migrate.create_vectorizer(jsonb);
DROP FUNCTION migrate.create_vectorizer(text);
DROP FUNCTION migrate.create_vectorizer(regclass, text, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, name, name, name[], bool, bool);

CREATE FUNCTION migrate."create_vectorizer"(
	"config" TEXT,
	"label" TEXT DEFAULT NULL
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_vectorizer_labelled_wrapper';

CREATE FUNCTION migrate.create_vectorizer(config jsonb, label text DEFAULT NULL) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.create_vectorizer(config::pg_catalog.text, label) $$;

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

-- drop: by name and by id, with label.
DROP FUNCTION migrate.drop_vectorizer(int4, bool);
DROP FUNCTION migrate.drop_vectorizer(text, bool, bool);

CREATE FUNCTION migrate."drop_vectorizer"(
	"name" TEXT,
	"drop_all" bool DEFAULT false,
	"if_exists" bool DEFAULT false,
	"label" TEXT DEFAULT NULL
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'drop_vectorizer_labelled_wrapper';

CREATE FUNCTION migrate.drop_vectorizer(vectorizer_id int4, drop_all bool DEFAULT false, label text DEFAULT NULL) RETURNS void
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
    PERFORM migrate.drop_vectorizer(_name, drop_all, label => label);
END
$$;

-- Changing vectorizers.
CREATE FUNCTION migrate."alter_vectorizer"(
	"name" TEXT,
	"changes" jsonb,
	"reembed" bool DEFAULT false,
	"label" TEXT DEFAULT NULL
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'alter_vectorizer_named_wrapper';

CREATE FUNCTION migrate."plan_vectorizer"(
	"config" jsonb
) RETURNS TABLE (
	"path" TEXT,
	"old_value" jsonb,
	"new_value" jsonb,
	"action" TEXT,
	"queued_rows" bigint
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'plan_vectorizer_config_wrapper';

CREATE FUNCTION migrate."restore_vectorizer"(
	"name" TEXT,
	"revision_id" bigint DEFAULT NULL,
	"label" TEXT DEFAULT NULL
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'restore_vectorizer_named_wrapper';

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

-- drop by name, with label (pgai's by-id form stays as it was: a third
-- positional argument would make it ambiguous with this one).
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

-- pgai's operations API: brings a 0.2.0 database to what
-- sql/introspection.sql, sql/worker.sql and sql/operations.sql create on a
-- fresh install; the definitions below are those files' text.

-- vectorizer_queue_pending gains exact_count and a by-name form (one
-- function with a default instead of the old one-argument form, which
-- would make calls ambiguous); vectorizer_status, which calls it, gains
-- pgai's columns, in pgai's order. Both are dropped and created again
-- (without CASCADE: a user's view over them makes the update fail rather
-- than disappear).
DROP VIEW migrate.vectorizer_status;
DROP FUNCTION migrate.vectorizer_queue_pending(int4);

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
       v.name,
       pg_catalog.format('%I.%I', n.nspname, c.relname) AS source_table,
       CASE WHEN v.target_table IS NOT NULL
            THEN pg_catalog.format('%I.%I', v.target_schema, v.target_table) END AS target_table,
       CASE WHEN v.view_name IS NOT NULL
            THEN pg_catalog.format('%I.%I', v.view_schema, v.view_name) END AS view,
       CASE WHEN v.embedding_column IS NOT NULL
            THEN pg_catalog.format('%I', v.embedding_column) ELSE 'embedding' END AS embedding_column,
       migrate.vectorizer_queue_pending(v.id) AS pending_items,
       v.disabled,
       v.source
FROM migrate.vectorizer v
LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) v.source
LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;

GRANT SELECT ON migrate.vectorizer_status TO PUBLIC;

-- The errors table becomes migrate._vectorizer_errors behind the view
-- migrate.vectorizer_errors (pgai's columns first). Its rows, row-level
-- security policies and privileges go with the rename; the names of its
-- sequence, index and constraints follow the table's, as a fresh install
-- names them.
ALTER TABLE migrate.vectorizer_errors RENAME TO _vectorizer_errors;
ALTER SEQUENCE migrate.vectorizer_errors_id_seq RENAME TO _vectorizer_errors_id_seq;
ALTER INDEX migrate.vectorizer_errors_vectorizer_id_recorded_at_idx
    RENAME TO _vectorizer_errors_vectorizer_id_recorded_at_idx;
DO $do$
DECLARE
    c text;
BEGIN
    -- the primary key (and its index), the foreign key and, on PostgreSQL
    -- 18, the named NOT NULL constraints
    FOR c IN
        SELECT conname FROM pg_catalog.pg_constraint
        WHERE conrelid OPERATOR(pg_catalog.=) 'migrate._vectorizer_errors'::pg_catalog.regclass
          AND conname OPERATOR(pg_catalog.~~) 'vectorizer\_errors\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE migrate._vectorizer_errors RENAME CONSTRAINT %I TO %I', c, '_' OPERATOR(pg_catalog.||) c);
    END LOOP;
END
$do$;

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

-- The one column of the catalog that a vectorizer's owner may write
-- directly: `disabled`, for the rows whose source the caller owns (has the
-- privileges of its owner; superusers pass). A plain view (not
-- security_invoker): the catalog is written with the view owner's (the
-- extension owner's) rights, while pg_has_role in its WHERE clause is
-- evaluated as the calling role, so the check cannot be skipped by
-- updating the view instead of calling the functions below. security_barrier
-- keeps that check ahead of any condition the caller adds.
CREATE VIEW migrate._vectorizer_disabled WITH (security_barrier = true) AS
SELECT v.id, v.disabled
FROM migrate.vectorizer v
WHERE pg_catalog.pg_has_role(
    COALESCE(
        (SELECT s.relowner FROM pg_catalog.pg_class s WHERE s.oid OPERATOR(pg_catalog.=) v.source),
        -- the source is gone (not reachable: its drop drops the vectorizer)
        (SELECT q.relowner FROM pg_catalog.pg_class q WHERE q.oid OPERATOR(pg_catalog.=) v.queue_relid),
        '10'::pg_catalog.oid),  -- the bootstrap superuser
    'USAGE');

GRANT SELECT (id), UPDATE (disabled) ON migrate._vectorizer_disabled TO PUBLIC;

-- The functions run as the caller (not SECURITY DEFINER, which would hide
-- the caller from pg_has_role): they name the refusal clearly, then write
-- through the view above, which checks again.
CREATE FUNCTION migrate.disable_vectorizer_schedule(vectorizer_id int4) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _name text;
    _owner oid;
BEGIN
    IF vectorizer_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.name, COALESCE(s.relowner, q.relowner, '10'::oid) INTO _name, _owner
    FROM migrate.vectorizer v
    LEFT JOIN pg_class s ON s.oid = v.source
    LEFT JOIN pg_class q ON q.oid = v.queue_relid
    WHERE v.id = disable_vectorizer_schedule.vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object',
            HINT = 'SELECT id, name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    IF NOT pg_has_role(_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of the source table of vectorizer "%" to disable it', _name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE migrate._vectorizer_disabled d SET disabled = true WHERE d.id = disable_vectorizer_schedule.vectorizer_id;
    IF NOT FOUND THEN  -- dropped since
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

CREATE FUNCTION migrate.enable_vectorizer_schedule(vectorizer_id int4) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _name text;
    _owner oid;
BEGIN
    IF vectorizer_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.name, COALESCE(s.relowner, q.relowner, '10'::oid) INTO _name, _owner
    FROM migrate.vectorizer v
    LEFT JOIN pg_class s ON s.oid = v.source
    LEFT JOIN pg_class q ON q.oid = v.queue_relid
    WHERE v.id = enable_vectorizer_schedule.vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object',
            HINT = 'SELECT id, name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    IF NOT pg_has_role(_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of the source table of vectorizer "%" to enable it', _name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE migrate._vectorizer_disabled d SET disabled = false WHERE d.id = enable_vectorizer_schedule.vectorizer_id;
    IF NOT FOUND THEN  -- dropped since
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

-- The by-name forms. Unlike pgai (which does nothing for an unknown name),
-- an unknown name is an error.
CREATE FUNCTION migrate.disable_vectorizer_schedule(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _id int4;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.id INTO _id FROM migrate.vectorizer v WHERE v.name = disable_vectorizer_schedule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer "%" does not exist', name USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    PERFORM migrate.disable_vectorizer_schedule(_id);
END
$$;

CREATE FUNCTION migrate.enable_vectorizer_schedule(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _id int4;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.id INTO _id FROM migrate.vectorizer v WHERE v.name = enable_vectorizer_schedule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer "%" does not exist', name USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    PERFORM migrate.enable_vectorizer_schedule(_id);
END
$$;

-- pgai's set_scheduling: replaces the scheduling and indexing configs and
-- returns the vectorizer's config afterwards. Done by
-- migrate.alter_vectorizer (an in-place change: validated, checked for
-- ownership, recorded as an 'alter' revision). PL/pgSQL, so it is bound to
-- alter_vectorizer when called, not when created.
CREATE FUNCTION migrate.set_scheduling(
    vectorizer_id int4,
    scheduling jsonb DEFAULT migrate.scheduling_default(),
    indexing jsonb DEFAULT migrate.indexing_default()
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    _name text;
    _config jsonb;
BEGIN
    IF vectorizer_id IS NULL OR scheduling IS NULL OR indexing IS NULL THEN
        RAISE EXCEPTION '% must not be NULL',
            CASE WHEN vectorizer_id IS NULL THEN 'vectorizer_id' WHEN scheduling IS NULL THEN 'scheduling' ELSE 'indexing' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT v.name INTO _name FROM migrate.vectorizer v WHERE v.id = set_scheduling.vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = 'undefined_object',
            HINT = 'SELECT id, name FROM migrate.vectorizer lists the vectorizers';
    END IF;
    PERFORM migrate.alter_vectorizer(_name,
        jsonb_build_object('scheduling', set_scheduling.scheduling, 'indexing', set_scheduling.indexing));
    SELECT v.config INTO _config FROM migrate.vectorizer v WHERE v.id = set_scheduling.vectorizer_id;
    RETURN _config;
END
$$;

-- What a role needs to use vectorizers here: USAGE on schema migrate (every
-- function is executable by PUBLIC and checks the caller's rights itself;
-- the catalog and status are readable by everyone; workers get the rest
-- from grant_to). With admin, WITH GRANT OPTION, so the role may run this
-- for others. pgai's also grants CREATE on its schema and write access to
-- its catalog, which here only the extension's functions write. Runs as the
-- caller, who must hold USAGE WITH GRANT OPTION on schema migrate.
CREATE FUNCTION migrate.grant_vectorizer_usage(to_user name, admin bool DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_user IS NULL OR admin IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN to_user IS NULL THEN 'to_user' ELSE 'admin' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF to_user <> 'public' AND NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = to_user) THEN
        RAISE EXCEPTION 'role "%" does not exist', to_user USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT has_schema_privilege('migrate', 'USAGE WITH GRANT OPTION') THEN
        RAISE EXCEPTION 'permission denied to grant usage of vectorizers to "%"', to_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'It needs USAGE WITH GRANT OPTION on schema migrate.',
                  HINT = 'A superuser or the extension''s owner can run it, or a role it was run for with admin => true.';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA migrate TO %s%s',
        CASE WHEN to_user = 'public' THEN 'PUBLIC' ELSE quote_ident(to_user) END,
        CASE WHEN admin THEN ' WITH GRANT OPTION' ELSE '' END);
END
$$;

-- Every existing vectorizer gains its statement-level trigger
-- (_vectorizer_src_trg_<id>_stmt: AFTER INSERT OR DELETE OR UPDATE OF the
-- read columns, FOR EACH STATEMENT), with which its row triggers collect
-- the keys of a multi-row statement and the statement writes them at once.
-- Until this runs, the new library writes their rows one by one, as 0.2.0
-- did. Vectorizers made by this version have it already.
CREATE FUNCTION migrate._upgrade_add_statement_triggers() RETURNS void LANGUAGE c
AS 'MODULE_PATHNAME', 'upgrade_add_statement_triggers_wrapper';
SELECT migrate._upgrade_add_statement_triggers();
DROP FUNCTION migrate._upgrade_add_statement_triggers();

-- pgai_migrate 0.1.0 -> 0.2.0 (ALTER EXTENSION pgai_migrate UPDATE).
--
-- * One trigger function, in C, for every vectorizer: each 0.1.0
--   vectorizer's generated PL/pgSQL function and triggers are replaced by
--   triggers calling migrate._vectorizer_trigger('<id>').
-- * The catalog loses its regprocedure column (pg_upgrade refused it) and
--   gains read_columns, grants and disabled.
-- * The C entry points have new symbols; the SQL wrappers fix their
--   search_path and refuse NULLs; event triggers follow DDL.
-- Privileges 0.1.0 gave grant_to roles were not recorded, so dropping a
-- vectorizer made by 0.1.0 does not take them back.
\echo Use "ALTER EXTENSION pgai_migrate UPDATE" to load this file. \quit

-- 0.2.0's install script creates schema migrate itself, as a member of
-- the extension (pg_dump then leaves it to CREATE EXTENSION, so a restore
-- into a database that already has the extension does not fail on CREATE
-- SCHEMA); 0.1.0 was installed into it instead. An updated install is made
-- the same: the extension is recorded in the schema of the extension it
-- requires (vector), and migrate becomes one of its members.
DO $$
DECLARE
    ext pg_catalog.oid := (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pgai_migrate');
    home pg_catalog.oid := (SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'vector');
    nsp pg_catalog.oid := 'migrate'::pg_catalog.regnamespace;
BEGIN
    UPDATE pg_catalog.pg_extension SET extnamespace = home WHERE oid = ext;
    UPDATE pg_catalog.pg_depend SET refobjid = home
     WHERE classid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND objid = ext
       AND refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND refobjid = nsp;
    INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
    VALUES ('pg_catalog.pg_namespace'::pg_catalog.regclass, nsp, 0, 'pg_catalog.pg_extension'::pg_catalog.regclass, ext, 0, 'e');
END
$$;

-- 0.1.0's C entry points (their symbols are gone from the library).
DROP FUNCTION migrate.managed_tables();
DROP FUNCTION migrate._managed_tables();
DROP FUNCTION migrate.create_vectorizer(text);
DROP FUNCTION migrate._create_vectorizer(text);
DROP FUNCTION migrate.drop_vectorizer(text, bool, bool);

ALTER TABLE migrate.vectorizer
    ADD COLUMN read_columns text[] NOT NULL DEFAULT '{}',
    ADD COLUMN grants jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN disabled boolean NOT NULL DEFAULT false;

CREATE FUNCTION migrate.create_vectorizer(config text) RETURNS int4
VOLATILE PARALLEL UNSAFE LANGUAGE c
AS 'MODULE_PATHNAME', 'create_vectorizer_text_wrapper';

CREATE FUNCTION migrate.drop_vectorizer(name text, drop_all bool DEFAULT false, if_exists bool DEFAULT false)
RETURNS void VOLATILE PARALLEL UNSAFE LANGUAGE c
AS 'MODULE_PATHNAME', 'drop_vectorizer_by_name_wrapper';

CREATE FUNCTION migrate.managed_tables() RETURNS TABLE (
    vectorizer_id int, vectorizer_name text, kind text, schema_name name, table_name name, relid regclass)
STRICT STABLE PARALLEL SAFE LANGUAGE c
AS 'MODULE_PATHNAME', 'list_managed_tables_wrapper';

CREATE FUNCTION migrate._vectorizer_trigger() RETURNS trigger LANGUAGE c
AS 'MODULE_PATHNAME', '_vectorizer_trigger_wrapper';

CREATE FUNCTION migrate._vectorizer_sync(relids oid[]) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c
AS 'MODULE_PATHNAME', '_vectorizer_sync_wrapper';

CREATE FUNCTION migrate._vectorizer_ddl_start() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c
AS 'MODULE_PATHNAME', '_vectorizer_ddl_start_wrapper';

CREATE FUNCTION migrate._vectorizer_partitions() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c
AS 'MODULE_PATHNAME', '_vectorizer_partitions_wrapper';

-- The jsonb form. migrate.create_vectorizer(text) (Rust) reads the
-- document's text itself, so a document nested too deeply for it is a
-- config error like any other.
CREATE OR REPLACE FUNCTION migrate.create_vectorizer(config jsonb) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.create_vectorizer(config::pg_catalog.text) $$;

-- pgai's named-argument form. Builds the JSON document and hands it to
-- migrate.create_vectorizer(jsonb), so both forms store the same config.
CREATE OR REPLACE FUNCTION migrate.create_vectorizer(
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
        'if_not_exists', if_not_exists)))
$$;

-- pgai's drop by id.
CREATE OR REPLACE FUNCTION migrate.drop_vectorizer(vectorizer_id int4, drop_all bool DEFAULT false) RETURNS void
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

-- Existing vectorizers onto the new trigger function.
CREATE FUNCTION migrate._upgrade_from_0_1_0() RETURNS void LANGUAGE c
AS 'MODULE_PATHNAME', 'upgrade_from_0_1_0_wrapper';
SELECT migrate._upgrade_from_0_1_0();
DROP FUNCTION migrate._upgrade_from_0_1_0();

ALTER TABLE migrate.vectorizer
    DROP COLUMN trigger_schema,
    DROP COLUMN trigger_function,
    DROP COLUMN trigger_function_oid;

-- What the embedding worker (pgai-migrate-worker) records: one row per
-- failure of a key (or of a whole batch, key NULL), like pgai's
-- ai.vectorizer_errors.
--
-- Who may write and read is decided per vectorizer by row-level security,
-- evaluated as the calling role: a role that may INSERT into a
-- vectorizer's queue (a worker: grant_to roles, the source's owner) may
-- record errors for that vectorizer and no other; a role that may SELECT
-- the queue may read them. Only the listed columns are insertable, so
-- recorded_at and recorded_by cannot be forged. No function is involved,
-- so there is nothing to execute with raised privileges.
-- Errors are operational history, not schema: they are not dumped, and a
-- vectorizer's errors go with it when it is dropped.

CREATE TABLE migrate.vectorizer_errors (
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
CREATE INDEX ON migrate.vectorizer_errors (vectorizer_id, recorded_at);

ALTER TABLE migrate.vectorizer_errors ENABLE ROW LEVEL SECURITY;

CREATE POLICY vectorizer_errors_read ON migrate.vectorizer_errors FOR SELECT
USING (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id = vectorizer_errors.vectorizer_id),
    'SELECT'));

CREATE POLICY vectorizer_errors_record ON migrate.vectorizer_errors FOR INSERT
WITH CHECK (pg_catalog.has_table_privilege(
    (SELECT v.queue_relid FROM migrate.vectorizer v WHERE v.id = vectorizer_errors.vectorizer_id),
    'INSERT'));

GRANT SELECT ON migrate.vectorizer_errors TO PUBLIC;
GRANT INSERT (vectorizer_id, key, message, details) ON migrate.vectorizer_errors TO PUBLIC;

-- Event triggers: PostgreSQL's DDL reaches the vectorizers.
--
-- They run for every role's DDL, so they are SECURITY DEFINER (the
-- extension owner reads and writes the catalog; the role running the DDL
-- may not even have USAGE on schema migrate), with a fixed search_path and
-- every name qualified. They run no code another role chose: catalog reads
-- and the extension's own functions only.

-- After DROP: a dropped source takes its vectorizer along (its queues,
-- store and view; recorded as a drop revision); a queue, store, view or
-- trigger of a live vectorizer dropped by hand (DROP TABLE store, DROP
-- SCHEMA … CASCADE, DROP COLUMN … CASCADE taking the UPDATE trigger) is
-- refused: the DROP rolls back with an error that says what to do.
CREATE FUNCTION migrate._vectorizer_on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    -- DROP EXTENSION … CASCADE: the catalog itself is gone.
    IF pg_catalog.to_regclass('migrate.vectorizer') IS NULL THEN
        RETURN;
    END IF;
    FOR v IN
        SELECT vz.name FROM migrate.vectorizer vz
        WHERE vz.source::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (
            SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d
            WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objsubid OPERATOR(pg_catalog.=) 0)
        ORDER BY vz.id
    LOOP
        PERFORM migrate.drop_vectorizer(v.name, drop_all => true);
    END LOOP;

    -- The source's primary key dropped (and not replaced in the same
    -- command): the vectorizer identifies rows by it.
    SELECT vz.name, vz.source::pg_catalog.text AS source,
           (SELECT pg_catalog.string_agg((k OPERATOR(pg_catalog.->>) 'attname') OPERATOR(pg_catalog.||) ' '
                                         OPERATOR(pg_catalog.||) (k OPERATOR(pg_catalog.->>) 'typname'), ', ')
            FROM pg_catalog.jsonb_array_elements(vz.source_pk) k) AS key INTO v
    FROM pg_catalog.pg_event_trigger_dropped_objects() d
    JOIN migrate.vectorizer vz
      ON d.object_type OPERATOR(pg_catalog.=) 'table constraint'
     AND pg_catalog.to_regclass(pg_catalog.quote_ident(d.address_names[1]) OPERATOR(pg_catalog.||) '.'
                                OPERATOR(pg_catalog.||) pg_catalog.quote_ident(d.address_names[2]))::pg_catalog.oid
         OPERATOR(pg_catalog.=) vz.source::pg_catalog.oid
    WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_index i
                      WHERE i.indrelid OPERATOR(pg_catalog.=) vz.source::pg_catalog.oid AND i.indisprimary)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot change the primary key of %: vectorizer "%" identifies rows by (%)', v.source, v.name, v.key
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The primary key would become ().',
                  HINT = 'drop the vectorizer (migrate.drop_vectorizer), change the key, then create the vectorizer again';
    END IF;

    SELECT vz.name, d.object_type, d.object_identity INTO v
    FROM pg_catalog.pg_event_trigger_dropped_objects() d
    JOIN migrate.vectorizer vz
      ON (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.objsubid OPERATOR(pg_catalog.=) 0
          AND d.objid OPERATOR(pg_catalog.=) ANY (ARRAY[vz.queue_relid, vz.queue_failed_relid,
                                                        vz.store_relid, vz.view_relid]::pg_catalog.oid[]))
      OR (d.object_type OPERATOR(pg_catalog.=) 'trigger'
          AND d.address_names[3] OPERATOR(pg_catalog.~) ('^_vectorizer_src_trg_' OPERATOR(pg_catalog.||) vz.id OPERATOR(pg_catalog.||) '(_upd|_truncate)?$')
          AND pg_catalog.to_regclass(pg_catalog.quote_ident(d.address_names[1]) OPERATOR(pg_catalog.||) '.'
                                     OPERATOR(pg_catalog.||) pg_catalog.quote_ident(d.address_names[2]))::pg_catalog.oid
              OPERATOR(pg_catalog.=) vz.source::pg_catalog.oid)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot drop % %: it belongs to vectorizer "%"', v.object_type, v.object_identity, v.name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = pg_catalog.format('Drop the vectorizer first: SELECT migrate.drop_vectorizer(%L) (with drop_all => true to drop its store and view too).', v.name);
    END IF;
END
$$;

-- Before ALTER TABLE / CREATE TABLE / DROP TABLE: remember the partitions
-- of partitioned sources (migrate._vectorizer_ddl_start), so the end of the
-- command can tell which were attached, detached or dropped.
CREATE FUNCTION migrate._vectorizer_on_ddl_start() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass('migrate.vectorizer') IS NOT NULL
       AND EXISTS (SELECT FROM migrate.vectorizer) THEN
        PERFORM migrate._vectorizer_ddl_start();
    END IF;
END
$$;

-- After ALTER TABLE / SCHEMA / VIEW: follow renames, refuse a changed
-- primary key (migrate._vectorizer_sync); after any command that may have
-- attached, detached or dropped a partition of a source, follow that too
-- (migrate._vectorizer_partitions).
CREATE FUNCTION migrate._vectorizer_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relids pg_catalog.oid[];
BEGIN
    IF pg_catalog.to_regclass('migrate.vectorizer') IS NULL
       OR NOT EXISTS (SELECT FROM migrate.vectorizer) THEN
        RETURN;
    END IF;
    PERFORM migrate._vectorizer_partitions();
    IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
               WHERE c.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_class'::pg_catalog.regclass) THEN
        relids := NULL;  -- a schema renamed: look at every vectorizer
    ELSE
        SELECT pg_catalog.array_agg(c.objid) INTO relids FROM pg_catalog.pg_event_trigger_ddl_commands() c;
        IF relids IS NULL THEN
            RETURN;
        END IF;
    END IF;
    PERFORM migrate._vectorizer_sync(relids);
END
$$;

CREATE EVENT TRIGGER pgai_migrate_on_drop ON sql_drop
    EXECUTE FUNCTION migrate._vectorizer_on_drop();
CREATE EVENT TRIGGER pgai_migrate_on_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'DROP TABLE')
    EXECUTE FUNCTION migrate._vectorizer_on_ddl_start();
CREATE EVENT TRIGGER pgai_migrate_on_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'ALTER VIEW', 'CREATE TABLE', 'DROP TABLE')
    EXECUTE FUNCTION migrate._vectorizer_on_ddl();

REVOKE ALL ON FUNCTION migrate._vectorizer_on_drop(), migrate._vectorizer_on_ddl(),
    migrate._vectorizer_on_ddl_start(), migrate._vectorizer_sync(pg_catalog.oid[]),
    migrate._vectorizer_ddl_start(), migrate._vectorizer_partitions() FROM PUBLIC;

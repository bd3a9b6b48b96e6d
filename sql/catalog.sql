-- The extension's schema, created by the install script so it is a member
-- of the extension: pg_dump leaves it to CREATE EXTENSION (a restore into a
-- database where the extension already exists does not fail on CREATE
-- SCHEMA), and DROP EXTENSION … CASCADE removes it with the queues in it.
-- Every object of the extension is created in it by name.
CREATE SCHEMA migrate;

-- The extension-owned catalog. Both tables and their sequences are
-- registered with pg_extension_config_dump so pg_dump carries their rows
-- and a restore continues the id sequences instead of reusing ids.

CREATE SEQUENCE migrate.vectorizer_id_seq AS int;

CREATE TABLE migrate.vectorizer (
    id                 int PRIMARY KEY DEFAULT nextval('migrate.vectorizer_id_seq'),
    name               text NOT NULL UNIQUE,
    -- By OID: renaming the source table keeps the vectorizer working.
    source             regclass NOT NULL,
    -- [{"attname": …, "typname": …}, …] in key order
    source_pk          jsonb NOT NULL,
    queue_schema       name NOT NULL,
    queue_table        name NOT NULL,
    queue_failed_table name NOT NULL,
    target_schema      name,
    target_table       name,
    view_schema        name,
    view_name          name,
    embedding_column   name,
    -- The objects themselves, by OID (regclass, which dump/restore and
    -- pg_upgrade carry): drop removes exactly what create made, even if a
    -- name now belongs to something else, and renames are followed. The
    -- name columns above are kept in step by the DDL event trigger. The
    -- triggers are found in pg_trigger: they call
    -- migrate._vectorizer_trigger() with the id.
    queue_relid        regclass NOT NULL,
    queue_failed_relid regclass NOT NULL,
    store_relid        regclass,
    view_relid         regclass,
    config             jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         name NOT NULL,
    -- Since 0.2.0 (at the end, as ALTER EXTENSION UPDATE adds them):
    -- The trigger's UPDATE OF column list at create (key, loading column,
    -- template columns), in order: a rename is followed from it.
    read_columns       text[] NOT NULL DEFAULT '{}',
    -- Privileges create gave grant_to roles on shared objects (schemas,
    -- the source), [{"on": "source"|"schema", "schema": …, "privilege": …,
    -- "role": …}, …]: only those the role lacked, so drop takes back
    -- exactly these (unless another vectorizer recorded the same).
    grants             jsonb NOT NULL DEFAULT '[]',
    -- A disabled vectorizer's queue is still maintained; workers skip it.
    disabled           boolean NOT NULL DEFAULT false
);

CREATE SEQUENCE migrate.revision_id_seq AS bigint;

CREATE TABLE migrate.revision (
    id              bigint PRIMARY KEY DEFAULT nextval('migrate.revision_id_seq'),
    vectorizer_id   int NOT NULL,
    vectorizer_name text NOT NULL,
    operation       text NOT NULL CHECK (operation IN ('create', 'drop', 'alter')),
    config          jsonb NOT NULL,
    drop_all        boolean,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    applied_by      name NOT NULL,
    label           text,
    -- Since 0.3.0: the revision a restore_vectorizer re-created this from.
    restored_from   bigint
);
CREATE INDEX ON migrate.revision (vectorizer_id);

SELECT pg_catalog.pg_extension_config_dump('migrate.vectorizer', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.vectorizer_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.revision', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.revision_id_seq', '');

-- Readable like a system catalog; only the extension's functions write.
GRANT SELECT ON migrate.vectorizer, migrate.revision TO PUBLIC;

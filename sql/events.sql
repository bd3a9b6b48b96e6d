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

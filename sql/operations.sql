-- pgai's operations API (ai.enable_vectorizer_schedule,
-- ai.disable_vectorizer_schedule, ai.set_scheduling,
-- ai.grant_vectorizer_usage) with pgai's names, arguments and return types.
-- Deliberate differences are in the README's table "Deliberate differences
-- from pgai": an unknown vectorizer is an error (42704), NULL arguments are
-- errors (22004), only the source's owner may change a vectorizer, and
-- there are no timescaledb jobs to switch.


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

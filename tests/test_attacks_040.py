"""Defects of 0.3.0 found by using it as an attacker or a DBA would, each
fixed in 0.4.0: revision labels of no-ops, deep JSON through every jsonb
entry point, USAGE on schema migrate handed out by grant_to, names
squatted in schema migrate, colliding keys in the statement trigger, and
re-queueing that loses rows (REPEATABLE READ, FORCE ROW LEVEL SECURITY)."""

import json
import time

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued

pytestmark = pytest.mark.usefixtures("server_watch")

NAME = BLOG_CONFIG["name"]


def labels(conn):
    return conn.execute("SELECT operation, vectorizer_name, label FROM migrate.revision ORDER BY id").fetchall()


# --- revision labels: a no-op consumes the label too ---------------------------


NO_OPS = {
    "drop-if-exists": "SELECT migrate.drop_vectorizer('no_such_vectorizer', if_exists => true)",
    "create-if-not-exists": "SELECT migrate.create_vectorizer(%s::jsonb)" % psycopg.sql.quote(json.dumps({**BLOG_CONFIG, "if_not_exists": True})),
    "alter-same-config": "SELECT migrate.alter_vectorizer(%s, '{}'::jsonb)" % psycopg.sql.quote(NAME),
}


@pytest.mark.parametrize("no_op", list(NO_OPS))
def test_a_no_op_consumes_the_revision_label_so_the_next_migration_does_not_carry_it(db, no_op):
    """A runner that applies several migrations in one transaction: the
    first sets its label and turns out to be a no-op, the second sets none.
    The second's revision must not carry the first's label."""
    create_blog(db)
    create_blog(db, table="post")
    create_vectorizer(db, BLOG_CONFIG)
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = 'm1_noop'")
        db.execute(NO_OPS[no_op])
        assert db.execute("SELECT current_setting('migrate.revision_label')").fetchone()[0] == ""
        # migration 2: no label set
        create_vectorizer(db, {**BLOG_CONFIG, "source": "post", "name": "post_embedder",
                               "destination": {"implementation": "table", "destination": "post_embeddings"}})
    assert labels(db) == [("create", NAME, None), ("create", "post_embedder", None)]


def test_a_rolled_back_no_op_gives_the_label_back(db):
    db.execute("SET migrate.revision_label = 'kept'")
    with pytest.raises(psycopg.errors.UndefinedObject):
        with db.transaction():
            db.execute("SELECT migrate.drop_vectorizer('no_such_vectorizer', if_exists => true)")
            db.execute("SELECT migrate.drop_vectorizer('no_such_vectorizer')")
    assert db.execute("SELECT current_setting('migrate.revision_label')").fetchone()[0] == "kept"


# --- deep JSON through every jsonb entry point ------------------------------------


DEEP = "[" * 200 + "1" + "]" * 200
# A value for each other argument type, so that the call gets as far as
# reading the deep document.
ARGUMENT_VALUES = {
    "text": NAME, "name": "x", "int4": "1", "int8": "1", "bool": "false",
    "regclass": "blog", "name[]": "{}", "jsonb": "{}",
}


def jsonb_functions(conn):
    """Every function in schema migrate with a jsonb argument: (signature,
    argument types)."""
    return conn.execute(
        "SELECT p.oid::regprocedure::text, "
        "ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) t) "
        "FROM pg_proc p WHERE p.pronamespace = 'migrate'::regnamespace AND p.prokind = 'f' "
        "AND 'jsonb'::regtype = ANY (p.proargtypes::oid[]) ORDER BY 1"
    ).fetchall()


def short_type(t):
    return {"text": "text", "name": "name", "integer": "int4", "bigint": "int8", "boolean": "bool",
            "regclass": "regclass", "name[]": "name[]", "jsonb": "jsonb"}[t]


def test_every_jsonb_entry_point_answers_a_200_deep_document_without_an_internal_error(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    functions = jsonb_functions(db)
    signatures = {f for f, _ in functions}
    for expected in ("migrate.create_vectorizer(jsonb,text)", "migrate.alter_vectorizer(text,jsonb,boolean,text)",
                     "migrate.plan_vectorizer(jsonb)", "migrate.set_scheduling(integer,jsonb,jsonb)"):
        assert expected in signatures
    internal = []
    for signature, types in functions:
        function = signature.split("(")[0]
        types = [short_type(t) for t in types]
        for deep_at in [i for i, t in enumerate(types) if t == "jsonb"]:
            args = [DEEP if i == deep_at else ARGUMENT_VALUES[t] for i, t in enumerate(types)]
            call = "SELECT * FROM {}({})".format(function, ", ".join(f"%s::{t}" for t in types))
            try:
                with db.transaction():
                    db.execute(call, args)
                    outcome = "ok"
            except psycopg.Error as e:
                outcome = e.sqlstate
                if outcome.startswith("XX"):
                    internal.append((signature, deep_at, outcome, e.diag.message_primary))
                    continue
            # A clean answer: success, or an error of the caller's making.
            assert outcome == "ok" or outcome[:2] in ("22", "42", "55", "3F", "0A"), (signature, deep_at, outcome)
    assert internal == []


@pytest.mark.parametrize("call, message", [
    ("SELECT migrate.alter_vectorizer(%s, %s::jsonb)", "the changes are nested more than 128 levels deep"),
    ("SELECT migrate.alter_vectorizer(%s, %s)", "the changes are nested more than 128 levels deep"),
    ("SELECT * FROM migrate.plan_vectorizer(%s::jsonb)", "the config is nested more than 128 levels deep"),
])
def test_deep_changes_and_plans_are_config_errors(db, call, message):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    doc = json.dumps({"processing": "@"}).replace('"@"', DEEP)
    args = (NAME, doc) if "alter" in call else (json.dumps({**BLOG_CONFIG, "x": "@"}).replace('"@"', DEEP),)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute(call, args)
    assert e.value.diag.message_primary == message


def ollama_options(depth):
    return {"implementation": "ollama", "model": "m", "dimensions": 3, "options": {"o": json.loads("[" * depth + "1" + "]" * depth)}}


@pytest.mark.parametrize("depth", [98, 123])
def test_a_config_too_deep_to_read_back_is_refused_so_no_vectorizer_is_left_undroppable(db, depth):
    """The catalog reads a config back wrapped in a few more levels; one
    the parser took at create could then never be altered or dropped."""
    create_blog(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(db, {**BLOG_CONFIG, "embedding": ollama_options(depth)})
    assert e.value.diag.message_primary.startswith("embedding.options.o[0]")
    assert e.value.diag.message_primary.endswith(": the config is nested more than 100 levels deep here")
    create_vectorizer(db, {**BLOG_CONFIG, "embedding": ollama_options(90)})
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb)", (NAME, json.dumps({"embedding": {"options": {"o": ollama_options(depth)["options"]["o"]}}})))
    db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (NAME,))


# --- grant_to and USAGE on schema migrate --------------------------------------------


@pytest.fixture
def tenant(dbname, roles):
    """alice owns blog and may use schema migrate (without the grant
    option, as grant_vectorizer_usage gives it); eve has nothing."""
    alice, eve = roles("alice"), roles("eve")
    with connect(dbname) as admin:
        admin.execute(f"SELECT migrate.grant_vectorizer_usage('{alice}')")
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}"')
        create_blog(admin)
        create_blog(admin, table="post")
        admin.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
        admin.execute(f'ALTER TABLE post OWNER TO "{alice}"')
    yield alice, eve
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{alice}", "{eve}" CASCADE')


def eve_may_use_migrate(dbname, eve):
    with connect(dbname) as admin:
        return admin.execute("SELECT has_schema_privilege(%s, 'migrate', 'USAGE')", (eve,)).fetchone()[0]


@pytest.mark.parametrize("how", ["create", "alter"])
def test_grant_to_does_not_hand_out_usage_on_migrate_the_caller_could_not_grant(dbname, tenant, how):
    alice, eve = tenant
    with connect(dbname, user=alice) as c:
        assert not c.execute("SELECT has_schema_privilege('migrate', 'USAGE WITH GRANT OPTION')").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            if how == "create":
                create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [eve]})
            else:
                create_vectorizer(c, BLOG_CONFIG)
                c.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb)", (NAME, json.dumps({"grant_to": [eve]})))
        assert e.value.diag.message_primary == f'grant_to: permission denied to grant USAGE on schema "migrate" to role "{eve}"'
        assert f"migrate.grant_vectorizer_usage('{eve}')" in e.value.diag.message_hint
    assert not eve_may_use_migrate(dbname, eve)
    # So eve cannot create vectorizers on a table of her own.
    with connect(dbname) as admin:
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{eve}"')
    with connect(dbname, user=eve) as c:
        c.execute("CREATE TABLE evil (id int PRIMARY KEY, content text)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            create_vectorizer(c, {**BLOG_CONFIG, "source": "evil", "name": "evil", "formatting": {"implementation": "chunk_value"},
                                  "destination": {"implementation": "table", "destination": "evil_e"}})


def test_grant_to_a_role_an_admin_let_use_migrate_works_and_drop_leaves_that_usage(dbname, tenant):
    alice, eve = tenant
    with connect(dbname) as admin:
        admin.execute(f"SELECT migrate.grant_vectorizer_usage('{eve}')")
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [eve]})
    with connect(dbname, user=eve) as c:
        assert c.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0] == 3
    with connect(dbname, user=alice) as c:
        c.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (NAME,))
    assert eve_may_use_migrate(dbname, eve)


def test_a_superuser_still_gives_usage_on_migrate_through_grant_to_and_drop_takes_it_back(dbname, tenant):
    _, eve = tenant
    with connect(dbname) as admin:
        create_vectorizer(admin, {**BLOG_CONFIG, "source": "post", "grant_to": [eve]})
        assert eve_may_use_migrate(dbname, eve)
        admin.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (NAME,))
    assert not eve_may_use_migrate(dbname, eve)


# --- names in schema migrate ------------------------------------------------------------


SQUAT = "_vectorizer_next_release"


def relation_in_migrate(conn, name):
    return conn.execute("SELECT to_regclass(format('migrate.%%I', %s::text)) IS NOT NULL", (name,)).fetchone()[0]


@pytest.mark.parametrize("how", ["create", "alter", "plan"])
def test_a_tenant_cannot_put_a_queue_of_any_name_in_schema_migrate(dbname, tenant, how):
    """A name a later version creates, taken by a tenant's queue, would
    make ALTER EXTENSION … UPDATE fail for everyone."""
    alice, _ = tenant
    squat = {"queue_schema": "migrate", "queue_table": SQUAT}
    with connect(dbname, user=alice) as c:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            if how == "create":
                create_vectorizer(c, {**BLOG_CONFIG, **squat})
            elif how == "plan":
                c.execute("SELECT * FROM migrate.plan_vectorizer(%s::jsonb)", (json.dumps({**BLOG_CONFIG, **squat}),))
            else:
                create_vectorizer(c, {**BLOG_CONFIG, "queue_schema": "public", "queue_table": "blog_queue"})
                c.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb)", (NAME, json.dumps(squat)))
        expected = "_vectorizer_q_<id>" if how == "plan" else "_vectorizer_q_1"
        assert e.value.diag.message_primary == f'queue_table: expected the default name "{expected}" in schema "migrate", got "{SQUAT}"'
        assert e.value.diag.message_hint
        assert not relation_in_migrate(c, SQUAT)


def test_the_queue_may_still_be_named_elsewhere_or_by_its_default_name_in_migrate(dbname, tenant):
    alice, _ = tenant
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, {**BLOG_CONFIG, "queue_table": "_vectorizer_q_1"})
        create_vectorizer(c, {**BLOG_CONFIG, "source": "post", "name": "post_embedder", "queue_schema": "public",
                              "queue_table": SQUAT, "destination": {"implementation": "table", "destination": "post_embeddings"}})
        assert queued(c) == [1, 2, 3] and queued(c, "post_embedder") == [1, 2, 3]
        # A re-run with the stored config (its default queue name) is a no-op.
        config = c.execute("SELECT config FROM migrate.vectorizer WHERE id = 1").fetchone()[0]
        assert create_vectorizer(c, {**config, "if_not_exists": True}) == 1
        assert c.execute("SELECT count(*) FROM migrate.plan_vectorizer(%s::jsonb) WHERE action <> 'none'",
                         (json.dumps(config),)).fetchone()[0] == 0


def test_the_owner_of_a_queue_in_migrate_cannot_rename_it_or_index_it_there(dbname, tenant):
    """PostgreSQL asks CREATE on the schema for both, which tenants lack."""
    alice, _ = tenant
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
        for ddl in (f"ALTER TABLE migrate._vectorizer_q_1 RENAME TO {SQUAT}",
                    f"CREATE INDEX {SQUAT} ON migrate._vectorizer_q_1 (queued_at)",
                    f"ALTER TABLE migrate._vectorizer_q_1 ADD CONSTRAINT {SQUAT} UNIQUE (id, queued_at)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(ddl)
        assert not relation_in_migrate(c, SQUAT)


# --- the statement trigger with keys chosen to collide ---------------------------------------


def insert_million(conn, table, key):
    started = time.monotonic()
    conn.execute(f"INSERT INTO {table} (id, content) SELECT {key}, 'x' FROM generate_series(1, 1000000) g")
    return time.monotonic() - started


def test_a_million_bigint_keys_that_are_multiples_of_2_32_insert_in_linear_time(db):
    """One multi-row INSERT collects every key for the statement-level
    trigger. Keys that differ only in their high 32 bits must not all land
    in one bucket of the set that tells them apart: the same statement
    with consecutive keys sets the pace, and three times that (plus slack)
    is the bound."""
    for table in ("consecutive", "colliding"):
        db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, content text)")
        create_vectorizer(db, {**BLOG_CONFIG, "source": table, "name": table, "formatting": {"implementation": "chunk_value"},
                               "destination": {"implementation": "table", "destination": f"{table}_e"}})
    linear = insert_million(db, "consecutive", "g::bigint")
    bound = 3 * linear + 5
    db.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(bound * 1000)}ms",))
    try:
        insert_million(db, "colliding", "g::bigint << 32")
    except psycopg.errors.QueryCanceled:
        pytest.fail(f"the colliding keys took more than {bound:.1f} s (consecutive ones: {linear:.1f} s)")
    finally:
        db.execute("RESET statement_timeout")
    assert db.execute("SELECT count(*), min(id), max(id) FROM migrate._vectorizer_q_2").fetchone() == (1000000, 1 << 32, 1000000 << 32)


# --- re-queueing under REPEATABLE READ ---------------------------------------------------


def test_reembed_in_a_repeatable_read_transaction_is_refused_and_loses_no_row(dbname, db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("DELETE FROM migrate._vectorizer_q_1")  # a worker took everything
    with connect(dbname) as other:
        for level, inserted in (("REPEATABLE READ", 99), ("SERIALIZABLE", 98)):
            db.execute(f"BEGIN ISOLATION LEVEL {level}")
            db.execute("SELECT count(*) FROM blog").fetchone()  # the snapshot
            other.execute("INSERT INTO blog VALUES (%s, 'late', 'committed while the migration ran')", (inserted,))
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
                db.execute("SELECT migrate.alter_vectorizer(%s, '{\"embedding\": {\"dimensions\": 512}}', reembed => true)", (NAME,))
            assert e.value.diag.message_primary == (
                f'cannot queue the rows of vectorizer "{NAME}" again in a {level} transaction: '
                "rows committed after its snapshot would be missed")
            assert "READ COMMITTED" in e.value.diag.message_hint
            db.execute("ROLLBACK")
    assert queued(db) == [98, 99]
    # In place changes need no re-queueing: allowed.
    db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    db.execute("SELECT migrate.alter_vectorizer(%s, '{\"processing\": {\"batch_size\": 7}}')", (NAME,))
    db.execute("COMMIT")
    # And in READ COMMITTED the re-embed queues every row.
    db.execute("SELECT migrate.alter_vectorizer(%s, '{\"embedding\": {\"dimensions\": 512}}', reembed => true)", (NAME,))
    assert queued(db) == [1, 2, 3, 98, 99]


def test_restore_in_a_repeatable_read_transaction_is_refused(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("SELECT migrate.drop_vectorizer(%s)", (NAME,))
    db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        db.execute("SELECT migrate.restore_vectorizer(%s)", (NAME,))
    assert "in a REPEATABLE READ transaction: rows committed after its snapshot would be missed" in e.value.diag.message_primary
    db.execute("ROLLBACK")


def partitioned(conn, table="docs"):
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, content text) PARTITION BY RANGE (id)")
    conn.execute(f"CREATE TABLE {table}_1 PARTITION OF {table} FOR VALUES FROM (0) TO (100)")
    conn.execute(f"INSERT INTO {table} SELECT g, 'c' FROM generate_series(1, 30) g")


def docs_config(**extra):
    return {**BLOG_CONFIG, "source": "docs", "name": "docs_v", "formatting": {"implementation": "chunk_value"},
            "destination": {"implementation": "table", "destination": "docs_e"}, **extra}


def test_attaching_a_partition_in_a_repeatable_read_transaction_is_refused(dbname, db):
    partitioned(db)
    create_vectorizer(db, docs_config())
    db.execute("CREATE TABLE docs_2 (id int PRIMARY KEY, content text)")
    with connect(dbname) as other:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        db.execute("SELECT count(*) FROM docs").fetchone()
        other.execute("INSERT INTO docs_2 VALUES (150, 'late')")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            db.execute("ALTER TABLE docs ATTACH PARTITION docs_2 FOR VALUES FROM (100) TO (200)")
        assert e.value.diag.message_primary == (
            "cannot queue the rows of partition public.docs_2 in a REPEATABLE READ transaction: rows committed after its snapshot would be missed")
        db.execute("ROLLBACK")
    # A partition made in the same transaction has no rows to miss.
    db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    db.execute("CREATE TABLE docs_3 PARTITION OF docs FOR VALUES FROM (200) TO (300)")
    db.execute("COMMIT")
    db.execute("ALTER TABLE docs ATTACH PARTITION docs_2 FOR VALUES FROM (100) TO (200)")
    assert 150 in queued(db, "docs_v")


# --- re-queueing under FORCE ROW LEVEL SECURITY ------------------------------------------------


@pytest.fixture
def forced(dbname, db, roles):
    """alice's blog of 30 rows, FORCE ROW LEVEL SECURITY with a policy that
    hides every row from her; a vectorizer with stored embeddings."""
    alice = roles("alice")
    db.execute(f"SELECT migrate.grant_vectorizer_usage('{alice}')")
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}"')
    create_blog(db, rows=30)
    db.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
    with connect(dbname, user=alice) as c:
        c.execute("CREATE POLICY hidden ON blog USING (id > 1000)")
        c.execute("ALTER TABLE blog ENABLE ROW LEVEL SECURITY")
        c.execute("ALTER TABLE blog FORCE ROW LEVEL SECURITY")
        assert c.execute("SELECT count(*) FROM blog").fetchone()[0] == 0
        create_vectorizer(c, BLOG_CONFIG)
    db.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) "
               "SELECT g, 0, 'c', array_fill(0, ARRAY[768])::vector FROM generate_series(1, 30) g")
    yield alice
    db.execute(f'DROP OWNED BY "{alice}" CASCADE')


def test_create_queues_every_row_whatever_the_row_security(db, forced):
    assert queued(db) == list(range(1, 31))


@pytest.mark.parametrize("change", [{"embedding": {"dimensions": 512}}, {"embedding": {"model": "text-embedding-3-large"}}],
                         ids=["dimensions", "model"])
def test_reembed_under_force_row_level_security_is_refused_before_anything_is_emptied(dbname, db, forced, change):
    db.execute("DELETE FROM migrate._vectorizer_q_1 WHERE id > 10")
    with connect(dbname, user=forced) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb, reembed => true)", (NAME, json.dumps(change)))
        assert e.value.diag.message_primary == 'query would be affected by row-level security policy for table "blog"'
    assert db.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 30
    assert queued(db) == list(range(1, 11))
    # With NO FORCE ROW LEVEL SECURITY (what PostgreSQL's HINT says), it works.
    with connect(dbname, user=forced) as c:
        c.execute("ALTER TABLE blog NO FORCE ROW LEVEL SECURITY")
        c.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb, reembed => true)", (NAME, json.dumps(change)))
    assert queued(db) == list(range(1, 31))


def test_restore_under_force_row_level_security_queues_every_row(dbname, db, forced):
    with connect(dbname, user=forced) as c:
        c.execute("SELECT migrate.drop_vectorizer(%s)", (NAME,))
        c.execute("SELECT migrate.restore_vectorizer(%s)", (NAME,))
    assert queued(db) == list(range(1, 31))
    assert db.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 30


@pytest.fixture
def forced_partitioned(dbname, db, roles):
    alice = roles("alice")
    db.execute(f"SELECT migrate.grant_vectorizer_usage('{alice}')")
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}"')
    partitioned(db)
    db.execute("CREATE TABLE docs_2 PARTITION OF docs FOR VALUES FROM (100) TO (200)")
    db.execute("INSERT INTO docs VALUES (150, 'c')")
    for t in ("docs", "docs_1", "docs_2"):
        db.execute(f'ALTER TABLE {t} OWNER TO "{alice}"')
    with connect(dbname, user=alice) as c:
        c.execute("CREATE POLICY hidden ON docs USING (id > 20)")
        c.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        c.execute("ALTER TABLE docs FORCE ROW LEVEL SECURITY")
    yield alice
    db.execute(f'DROP OWNED BY "{alice}" CASCADE')


def test_create_on_a_partitioned_source_under_force_row_level_security_is_refused(dbname, db, forced_partitioned):
    with connect(dbname, user=forced_partitioned) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            create_vectorizer(c, docs_config())
        assert e.value.diag.message_primary == 'query would be affected by row-level security policy for table "docs"'
        c.execute("ALTER TABLE docs NO FORCE ROW LEVEL SECURITY")
        create_vectorizer(c, docs_config())
    assert queued(db, "docs_v") == list(range(1, 31)) + [150]


def test_truncating_a_partition_under_force_row_level_security_forgets_no_hidden_rows_embeddings(dbname, db, forced_partitioned):
    with connect(dbname, user=forced_partitioned) as c:
        c.execute("ALTER TABLE docs NO FORCE ROW LEVEL SECURITY")
        create_vectorizer(c, docs_config())
        c.execute("ALTER TABLE docs FORCE ROW LEVEL SECURITY")
    db.execute("INSERT INTO docs_e_store (id, chunk_seq, chunk, embedding) "
               "SELECT id, 0, 'c', array_fill(0, ARRAY[768])::vector FROM docs")
    with connect(dbname, user=forced_partitioned) as c:
        try:
            c.execute("TRUNCATE docs_2")
        except psycopg.errors.InsufficientPrivilege:
            pass  # refusing is what row_security = off does
    # The rows of docs_1 (hidden from alice by the policy) keep their embeddings.
    assert db.execute("SELECT count(*) FROM docs_e_store WHERE id < 100").fetchone()[0] == 30


def test_a_table_owners_code_cannot_leave_the_caller_with_its_search_path(db):
    """The source's key is a domain whose CHECK (the owner's code, run while
    create queues the existing rows as the owner) sets search_path for the
    whole session. The caller's own search_path is back afterwards, so a
    superuser running create or alter is not left resolving names in a
    schema the table owner chose."""
    db.execute("CREATE SCHEMA planted")
    db.execute("""CREATE FUNCTION public.plant(int) RETURNS bool LANGUAGE sql
                  AS $$ SELECT pg_catalog.set_config('search_path', 'planted, public', false) IS NOT NULL $$""")
    db.execute("CREATE DOMAIN planted_key AS int CHECK (public.plant(VALUE))")
    db.execute("CREATE TABLE blog (id planted_key PRIMARY KEY, title text, content text)")
    db.execute("INSERT INTO blog VALUES (1, 't', 'c')")
    db.execute("SET search_path = public")
    create_vectorizer(db, BLOG_CONFIG)
    assert db.execute("SHOW search_path").fetchone()[0] == "public"
    assert queued(db) == [1]
    db.execute("SELECT migrate.alter_vectorizer('blog_content_embedder', '{\"loading\": {\"retries\": 2}}', reembed => true)")
    assert db.execute("SHOW search_path").fetchone()[0] == "public"

"""Attacks by another role, written as that role would run them: mallory has
USAGE on schema migrate (what every table owner is told to hold) and owns
a schema of her own. The victim is a superuser, the worst case: anything
of mallory's that runs as the victim runs as a superuser.

Each attack leaves evidence if it works: mallory's functions write to
mal.log, which records current_user."""

import json
import subprocess

import psycopg
import pytest

from conftest import BLOG_CONFIG, client_env, connect, create_blog, create_vectorizer, pg_tool, queued

pytestmark = pytest.mark.usefixtures("server_watch")

ZERO = "array_fill(0, ARRAY[768])::vector"


@pytest.fixture
def mallory(dbname, roles):
    name = roles("mallory")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{name}"')
        admin.execute(f'CREATE SCHEMA mal AUTHORIZATION "{name}"')
        # Evidence: anyone may write here, so a hijacked call by any role
        # leaves a row.
        admin.execute("CREATE TABLE mal.log (who text, what text)")
        admin.execute(f'ALTER TABLE mal.log OWNER TO "{name}"')
        admin.execute("GRANT INSERT, SELECT ON mal.log TO PUBLIC")
    yield name
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{name}" CASCADE')


def evidence(conn):
    return conn.execute("SELECT who, what FROM mal.log").fetchall()


def victim_state(conn):
    store = conn.execute("SELECT id, chunk_seq FROM blog_embeddings_store ORDER BY 1, 2").fetchall()
    return store, queued(conn)


@pytest.fixture
def victim(db):
    """The superuser's blog with a vectorizer, stored embeddings and queued work."""
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', {ZERO}), (2, 0, 'd', {ZERO})")
    return db


def mallory_table(c):
    """mallory's table whose key is her own type, with an ASSIGNMENT cast to
    integer: a trigger that copies the key into an integer column runs her
    cast function as whoever owns that trigger function."""
    c.execute("CREATE TYPE mal.key AS (v int)")
    c.execute(
        "CREATE FUNCTION mal.key_to_int(mal.key) RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO mal.log VALUES (current_user, 'cast'); RETURN ($1).v; END $$"
    )
    c.execute("CREATE CAST (mal.key AS int) WITH FUNCTION mal.key_to_int(mal.key) AS ASSIGNMENT")
    c.execute("CREATE TABLE mal.t (id mal.key PRIMARY KEY, content text)")


def test_borrowing_a_trigger_function_is_refused(dbname, victim, mallory):
    before = victim_state(victim)
    with connect(dbname, user=mallory) as c:
        mallory_table(c)
        for when in ["AFTER INSERT OR DELETE ON mal.t FOR EACH ROW", "AFTER TRUNCATE ON mal.t FOR EACH STATEMENT"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                c.execute(f"CREATE TRIGGER borrowed {when} EXECUTE FUNCTION migrate._vectorizer_trigger('1')")
            assert e.value.diag.message_primary == "permission denied for function migrate._vectorizer_trigger"
        assert not c.execute("SELECT has_function_privilege('migrate._vectorizer_trigger()', 'EXECUTE')").fetchone()[0]
        assert evidence(c) == []
    assert victim_state(victim) == before


def test_borrowed_trigger_function_refuses_to_act_for_another_table(dbname, victim, mallory):
    """Even when EXECUTE reaches mallory (a DBA's GRANT by mistake), the
    function fired from her table refuses before touching a row: no
    deleted embeddings, no truncated store, no flooded queue, and her cast
    never runs as the victim."""
    victim.execute(f'GRANT EXECUTE ON FUNCTION migrate._vectorizer_trigger() TO "{mallory}"')
    before = victim_state(victim)
    with connect(dbname, user=mallory) as c:
        mallory_table(c)
        c.execute("CREATE TRIGGER b AFTER INSERT OR DELETE ON mal.t FOR EACH ROW EXECUTE FUNCTION migrate._vectorizer_trigger('1')")
        c.execute("CREATE TRIGGER b_t AFTER TRUNCATE ON mal.t FOR EACH STATEMENT EXECUTE FUNCTION migrate._vectorizer_trigger('1')")
        c.execute("ALTER TABLE mal.t DISABLE TRIGGER USER")
        c.execute("INSERT INTO mal.t VALUES (ROW(1), 'x'), (ROW(2), 'y')")
        c.execute("ALTER TABLE mal.t ENABLE TRIGGER USER")
        for statement in ["INSERT INTO mal.t VALUES (ROW(999), 'flood')", "DELETE FROM mal.t", "TRUNCATE mal.t"]:
            with pytest.raises(psycopg.errors.TriggeredActionException) as e:
                c.execute(statement)
            assert e.value.diag.message_primary == 'vectorizer 1 serves only its source table, not "mal"."t"'
    with connect(dbname) as admin:
        assert evidence(admin) == []
    assert victim_state(victim) == before


@pytest.fixture
def planted_varchar_eq(dbname, mallory):
    """mallory's `=` for varchar, in her own schema: pg_catalog has none
    (varchar uses text's), so a lookup by name across schemas finds hers."""
    with connect(dbname, user=mallory) as c:
        c.execute(
            "CREATE FUNCTION mal.eq(varchar, varchar) RETURNS bool LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO mal.log VALUES (current_user, 'eq'); RETURN $1::text = $2::text; END $$"
        )
        c.execute("CREATE OPERATOR mal.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = mal.eq)")


def operators_used_by(conn, view):
    """Schemas of the non-built-in operators a view's query is bound to
    (built-in objects are pinned: pg_depend does not list them)."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT o.oprnamespace::regnamespace::text FROM pg_rewrite w "
            "JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_operator'::regclass "
            "JOIN pg_operator o ON o.oid = d.refobjid WHERE w.ev_class = %s::regclass",
            (view,),
        ).fetchall()
    }


def test_planted_operator_for_a_varchar_key_is_never_used(db, planted_varchar_eq):
    db.execute("CREATE TABLE docs (id varchar(20) PRIMARY KEY, title text, content text)")
    db.execute("INSERT INTO docs VALUES ('a', 't', 'x'), ('b', 't', 'y'), ('c', 't', 'z')")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "docs", "destination": {"implementation": "table", "destination": "docs_emb"}})
    db.execute(f"INSERT INTO docs_emb_store (id, chunk_seq, chunk, embedding) VALUES ('a', 0, 'c', {ZERO}), ('b', 0, 'c', {ZERO})")
    # The DBA's everyday statements: delete, change a key, read the view.
    db.execute("DELETE FROM docs WHERE id = 'a'")
    db.execute("UPDATE docs SET id = 'bb' WHERE id = 'b'")
    assert db.execute("SELECT count(*) FROM docs_emb").fetchone()[0] == 0
    assert evidence(db) == []
    assert db.execute("SELECT id FROM docs_emb_store").fetchall() == []
    assert queued(db) == ["bb", "c"]
    # What was generated names pg_catalog's operator (text's, the key
    # index's operator class), with both sides cast to text.
    assert operators_used_by(db, "docs_emb") == set()
    pk = db.execute("SELECT source_pk FROM migrate.vectorizer").fetchone()[0]
    assert pk == [{"attname": "id", "typname": "character varying(20)", "eq_schema": "pg_catalog", "eq_name": "=", "eq_type": "pg_catalog.text"}]


def test_planted_operator_in_a_type_schema_never_runs_from_the_update_trigger(dbname, db, mallory, roles):
    """A shared schema of types (here `ext`, where mallory may create) holds
    the type of a column the vectorizer reads. Her `=` for varchar there
    would bind in the WHEN clause if it were parsed with that schema on
    the search_path, and run as every role that updates the table."""
    writer = roles("writer")
    db.execute("CREATE SCHEMA ext")
    db.execute("CREATE DOMAIN ext.label AS text")
    db.execute(f'GRANT USAGE, CREATE ON SCHEMA ext TO "{mallory}"')
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title ext.label, content varchar(200))")
    db.execute("INSERT INTO notes VALUES (1, 't', 'x')")
    with connect(dbname, user=mallory) as c:
        c.execute(
            "CREATE FUNCTION mal.eq(varchar, varchar) RETURNS bool LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO mal.log VALUES (current_user, 'when'); RETURN $1::text = $2::text; END $$"
        )
        c.execute("CREATE OPERATOR ext.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = mal.eq)")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "notes", "destination": {"implementation": "table", "destination": "notes_emb"},
                           "enqueue_existing": False})
    db.execute(f'GRANT UPDATE, SELECT ON notes TO "{writer}"')
    with connect(dbname, user=writer) as c:
        c.execute("UPDATE notes SET content = 'changed' WHERE id = 1")
        c.execute("UPDATE notes SET content = 'changed' WHERE id = 1")  # same value: nothing queued anew
    db.execute("UPDATE notes SET title = 'other'")
    assert evidence(db) == []
    assert queued(db) == [1]
    db.execute(f'REVOKE ALL ON notes FROM "{writer}"')
    when = db.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND tgname LIKE '%_upd'"
    ).fetchone()[0]
    assert "record_image_eq" in when and "ext.=" not in when, when


def test_unchanged_values_queue_nothing_and_types_without_equality_work(db):
    """The WHEN clause compares values by binary image: a json column in
    the template (json has no `=`) is fine; an assignment that keeps every
    read value queues nothing."""
    db.execute("CREATE TABLE j (id int PRIMARY KEY, meta json, content text, views int)")
    db.execute("""INSERT INTO j VALUES (1, '{"a": 1}', 'x', 0)""")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "j", "destination": {"implementation": "table", "destination": "j_emb"},
                           "formatting": {"implementation": "python_template", "template": "$meta $chunk"},
                           "enqueue_existing": False})
    db.execute("UPDATE j SET content = content, meta = meta, views = 5")
    assert queued(db) == []
    db.execute("""UPDATE j SET meta = '{"a": 2}'""")
    assert queued(db) == [1]


def test_internal_functions_are_not_executable_by_public(db):
    """Every function in schema migrate that PUBLIC may execute is part of
    the documented API (docs/security.md); the rest, and every
    vectorizer's trigger function, only their owner."""
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    public = {
        r[0]
        for r in db.execute(
            "SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
            "WHERE p.pronamespace = 'migrate'::regnamespace AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'"
        ).fetchall()
    }
    assert not [f for f in public if f.startswith("_")], public
    with open(__file__.replace("tests/test_attacks.py", "docs/security.md")) as f:
        documented = f.read()
    for name in public:
        assert f"`migrate.{name}(" in documented, f"migrate.{name} is executable by PUBLIC but not documented"
    acl = db.execute("SELECT proacl::text FROM pg_proc WHERE proname = '_vectorizer_trigger'").fetchone()[0]
    assert acl == "{postgres=X/postgres}", acl


def test_grant_to_is_taken_back_by_drop(dbname, db, roles):
    """Drop revokes exactly what create granted: not what the DBA granted
    by hand, not what another vectorizer still needs; afterwards DROP ROLE
    succeeds."""
    worker = roles("worker")
    db.execute("CREATE SCHEMA app")
    create_blog(db, table="app.blog")
    create_blog(db, table="app.post")
    db.execute(f'GRANT SELECT ON app.post TO "{worker}"')  # by hand, before
    privileges = (
        "SELECT has_schema_privilege(%(r)s, 'app', 'USAGE'), has_schema_privilege(%(r)s, 'migrate', 'USAGE'), "
        "has_table_privilege(%(r)s, 'app.blog', 'SELECT'), has_table_privilege(%(r)s, 'app.post', 'SELECT')"
    )
    assert db.execute(privileges, {"r": worker}).fetchone() == (False, False, False, True)
    make = lambda table, name, dest: create_vectorizer(db, {  # noqa: E731
        **BLOG_CONFIG, "source": table, "name": name, "grant_to": [worker],
        "destination": {"implementation": "table", "destination": dest}})
    make("app.blog", "b1", "b1")
    make("app.blog", "b2", "b2")
    make("app.post", "p1", "p1")
    assert db.execute(privileges, {"r": worker}).fetchone() == (True, True, True, True)
    assert db.execute("SELECT has_table_privilege(%s, 'app.b1_store', 'INSERT')", (worker,)).fetchone()[0]

    db.execute("SELECT migrate.drop_vectorizer('b1')")  # keeps b1's store and view
    assert db.execute(privileges, {"r": worker}).fetchone() == (True, True, True, True)
    assert db.execute(
        "SELECT has_table_privilege(%(r)s, 'app.b1_store', 'SELECT'), has_table_privilege(%(r)s, 'app.b1', 'SELECT')",
        {"r": worker},
    ).fetchone() == (False, False)
    db.execute("SELECT migrate.drop_vectorizer('b2', drop_all => true)")
    assert db.execute(privileges, {"r": worker}).fetchone() == (True, True, False, True)
    db.execute("SELECT migrate.drop_vectorizer('p1', drop_all => true)")
    # The hand-made grant stays; nothing of ours does.
    assert db.execute(privileges, {"r": worker}).fetchone() == (False, False, False, True)
    db.execute(f'REVOKE SELECT ON app.post FROM "{worker}"')
    with connect("postgres") as admin:
        admin.execute(f'DROP ROLE "{worker}"')


def test_grant_to_already_held_is_not_recorded(db, roles):
    worker = roles("worker")
    create_blog(db)
    db.execute(f'GRANT SELECT ON blog TO "{worker}"')
    create_vectorizer(db, {**BLOG_CONFIG, "grant_to": [worker]})
    grants = db.execute("SELECT grants FROM migrate.vectorizer").fetchone()[0]
    # public: USAGE through PUBLIC already; blog: granted by hand.
    assert grants == [{"on": "schema", "schema": "migrate", "privilege": "USAGE", "role": worker}]
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    assert db.execute("SELECT has_table_privilege(%s, 'blog', 'SELECT')", (worker,)).fetchone()[0]
    assert db.execute("SELECT has_schema_privilege(%s, 'migrate', 'USAGE')", (worker,)).fetchone()[0] is False
    db.execute(f'REVOKE SELECT ON blog FROM "{worker}"')


@pytest.mark.parametrize(
    "call,message",
    [
        ("SELECT migrate.create_vectorizer(NULL::jsonb)", "config must not be NULL"),
        ("SELECT migrate.create_vectorizer(NULL::text)", "config must not be NULL"),
        ("SELECT migrate.drop_vectorizer(NULL::text)", "name must not be NULL"),
        ("SELECT migrate.drop_vectorizer('blog_content_embedder', NULL)", "drop_all must not be NULL"),
        ("SELECT migrate.drop_vectorizer('blog_content_embedder', false, NULL)", "if_exists must not be NULL"),
        ("SELECT migrate.drop_vectorizer(NULL::int)", "vectorizer_id must not be NULL"),
        ("SELECT migrate.drop_vectorizer(1, NULL)", "drop_all must not be NULL"),
    ],
)
def test_null_arguments_are_errors(db, call, message):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    with pytest.raises(psycopg.errors.NullValueNotAllowed) as e:
        db.execute(call)
    assert e.value.diag.message_primary == message
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 1


def test_temporary_table_is_not_a_source(db):
    db.execute("CREATE TEMP TABLE scratch (id int PRIMARY KEY, title text, content text)")
    before = db.execute("SELECT count(*) FROM pg_class").fetchone()[0]
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        create_vectorizer(db, {**BLOG_CONFIG, "source": "scratch"})
    assert e.value.diag.message_primary == 'source: "scratch" is a temporary table'
    assert db.execute("SELECT count(*) FROM pg_class").fetchone()[0] == before
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


def test_dump_and_restore_keep_the_pinned_bindings(planted_varchar_eq, db, dbname, new_database, tmp_path):
    """pg_dump writes the view, the WHEN clause and the function as
    generated; restored, they bind to the same operators (not mallory's)."""
    db.execute("CREATE TABLE docs (id varchar(20) PRIMARY KEY, title text, content text)")
    db.execute("INSERT INTO docs VALUES ('a', 't', 'x')")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "docs", "destination": {"implementation": "table", "destination": "docs_emb"}})
    bindings = (
        "SELECT pg_get_viewdef('docs_emb'::regclass), "
        "(SELECT array_agg(pg_get_triggerdef(oid) ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'docs'::regclass), "
        "(SELECT source_pk::text FROM migrate.vectorizer)"
    )
    before = db.execute(bindings).fetchone()
    dump = tmp_path / "db.dump"
    env = client_env()
    subprocess.run([pg_tool("pg_dump"), "-Fc", "-f", str(dump), dbname], check=True, env=env)
    target = new_database(empty=True)
    subprocess.run([pg_tool("pg_restore"), "--exit-on-error", "-d", target, str(dump)], check=True, env=env)
    with connect(target) as c:
        assert c.execute(bindings).fetchone() == before
        assert operators_used_by(c, "docs_emb") == set()
        c.execute("DELETE FROM docs WHERE id = 'a'")
        assert evidence(c) == []
        c.execute("INSERT INTO docs VALUES ('z', 't', 'x')")
        assert queued(c) == ["z"]


def test_grant_to_for_a_column_destination_lets_the_worker_write_the_column_only_while_it_exists(db, roles):
    worker = roles("worker")
    create_blog(db)
    create_vectorizer(db, {**BLOG_CONFIG, "grant_to": [worker], "chunking": {"implementation": "none"},
                           "destination": {"implementation": "column", "embedding_column": "emb"}})
    can = "SELECT has_column_privilege(%s, 'blog', 'emb', 'UPDATE'), has_column_privilege(%s, 'blog', 'content', 'UPDATE')"
    assert db.execute(can, (worker, worker)).fetchone() == (True, False)
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder')")
    # The column stays (it is part of the table); the privilege goes.
    assert db.execute(can, (worker, worker)).fetchone() == (False, False)

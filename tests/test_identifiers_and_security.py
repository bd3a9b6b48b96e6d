"""Names that need quoting work; only the table owner may create or drop;
what gets created belongs to the owner; the trigger cannot be hijacked."""

import json

import psycopg
import pytest
from psycopg import sql

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued


@pytest.mark.parametrize(
    "schema,table,column,destination",
    [
        ("My Schema", "Blog Posts", "Body Text", "Embeddings Ü"),
        ("sch\"ema", "ta'ble", "co\"l'umn", "x\"; DROP TABLE t; --"),
        ("ünïcødé", "表", "内容", "埋め込み"),
        ("public", "$$", "a\\b", "dollar$$quote"),
    ],
)
def test_identifiers_needing_quotes(db, schema, table, column, destination):
    q = sql.Identifier
    db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(q(schema)))
    db.execute(sql.SQL("CREATE TABLE {}.{} (\"ID\" int PRIMARY KEY, {} text)").format(q(schema), q(table), q(column)))
    db.execute(sql.SQL("INSERT INTO {}.{} VALUES (1, 'x'), (2, 'y')").format(q(schema), q(table)))
    source = sql.SQL("{}.{}").format(q(schema), q(table)).as_string(db)
    config = {
        **BLOG_CONFIG,
        "name": f"v {table}",
        "source": source,
        "loading": {"implementation": "column", "column_name": column},
        "destination": {"implementation": "table", "destination": destination, "target_schema": schema, "view_schema": schema},
        "formatting": {"implementation": "python_template", "template": "$ID: $chunk"},
    }
    create_vectorizer(db, config)
    assert queued(db, f"v {table}") == [1, 2]
    kinds = db.execute("SELECT kind, schema_name, table_name, relid IS NOT NULL FROM migrate.managed_tables()").fetchall()
    assert kinds[:2] == [("store", schema, destination + "_store", True), ("view", schema, destination, True)]
    db.execute(sql.SQL("UPDATE {}.{} SET {} = 'z' WHERE \"ID\" = 2").format(q(schema), q(table), q(column)))
    db.execute(sql.SQL("INSERT INTO {}.{} VALUES (3, 'w')").format(q(schema), q(table)))
    assert queued(db, f"v {table}") == [1, 2, 3]
    db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (f"v {table}",))
    assert db.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0
    # The hostile name did not drop anything.
    assert db.execute("SELECT to_regclass(%s) IS NOT NULL", (source,)).fetchone()[0]


@pytest.fixture
def owner_setup(dbname, roles):
    """alice owns blog and may use schema migrate; mallory is another role."""
    alice, mallory = roles("alice"), roles("mallory")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{alice}", "{mallory}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}", "{mallory}"')
        create_blog(admin)
        admin.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
    yield alice, mallory
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{alice}", "{mallory}" CASCADE')


def test_non_superuser_owner_can_create_and_drop(dbname, owner_setup):
    alice, _ = owner_setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
        owners = c.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM migrate.managed_tables() m JOIN pg_class c ON c.oid = m.relid"
        ).fetchall()
        assert owners == [(alice,)]
        assert c.execute("SELECT applied_by FROM migrate.revision").fetchone()[0] == alice
        c.execute("INSERT INTO blog (id, content) VALUES (9, 'x')")
        assert queued(c) == [1, 2, 3, 9]
        c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")


def test_non_owner_cannot_create(dbname, owner_setup):
    _, mallory = owner_setup
    with connect(dbname, user=mallory) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            create_vectorizer(c, BLOG_CONFIG)
        assert e.value.diag.message_primary == "source: must be owner of table blog to create a vectorizer on it"
        assert c.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


def test_non_owner_cannot_drop(dbname, owner_setup):
    alice, mallory = owner_setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
    with connect(dbname, user=mallory) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
        assert "must be owner" in e.value.diag.message_primary
        assert c.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 1


def test_catalog_is_not_writable_by_users(dbname, owner_setup):
    alice, _ = owner_setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("DELETE FROM migrate.revision")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE migrate.vectorizer SET name = 'x'")


def test_owner_needs_create_on_target_schema(dbname, owner_setup):
    alice, _ = owner_setup
    with connect(dbname) as admin:
        admin.execute("CREATE SCHEMA locked")
    with connect(dbname, user=alice) as c:
        config = {**BLOG_CONFIG, "destination": {"implementation": "table", "destination": "e", "target_schema": "locked"}}
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            create_vectorizer(c, config)
        assert e.value.diag.message_primary == 'destination.target_schema: permission denied to create objects in schema "locked"'


def test_insert_only_role_still_queues(dbname, owner_setup, roles):
    alice, _ = owner_setup
    writer = roles("writer")
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
        c.execute(f'GRANT INSERT ON blog TO "{writer}"')
    with connect(dbname, user=writer) as c:
        c.execute("INSERT INTO public.blog (id, content) VALUES (77, 'x')")
    with connect(dbname) as admin:
        assert 77 in queued(admin)


def test_search_path_cannot_hijack_the_trigger(dbname, owner_setup):
    """A function or table planted early on the writer's search_path is
    never used by the trigger."""
    alice, mallory = owner_setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
        c.execute(f'GRANT INSERT, UPDATE, SELECT ON blog TO "{mallory}"')
    with connect(dbname) as admin:
        admin.execute(f'CREATE SCHEMA evil AUTHORIZATION "{mallory}"')
    with connect(dbname, user=mallory) as c:
        c.execute("CREATE TABLE evil.log (who text)")
        c.execute(
            "CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS "
            "$$ INSERT INTO evil.log VALUES (current_user) RETURNING '2000-01-01'::timestamptz $$"
        )
        c.execute("CREATE TABLE evil._vectorizer_q_1 (id int)")
        c.execute("SET search_path = evil, public, pg_catalog")
        c.execute("INSERT INTO public.blog (id, content) VALUES (55, 'x')")
        assert c.execute("SELECT count(*) FROM evil.log").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM evil._vectorizer_q_1").fetchone()[0] == 0
    with connect(dbname) as admin:
        assert 55 in queued(admin)
        assert admin.execute("SELECT queued_at > '2001-01-01' FROM migrate._vectorizer_q_1 WHERE id = 55").fetchone()[0]


def test_create_with_planted_search_path_uses_real_operators(db):
    """Creating a vectorizer while the session's search_path starts with a
    schema that shadows pg_catalog objects builds the same, correct SQL."""
    create_blog(db)
    db.execute("CREATE SCHEMA shadow")
    db.execute("CREATE FUNCTION shadow.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$")
    db.execute("SET search_path = shadow, public")
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', array_fill(0, ARRAY[768])::vector)")
    db.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (2, 0, 'c', array_fill(0, ARRAY[768])::vector)")
    assert db.execute("SELECT count(DISTINCT embedding_uuid) FROM blog_embeddings_store").fetchone()[0] == 2
    assert db.execute("SHOW search_path").fetchone()[0] == "shadow, public"

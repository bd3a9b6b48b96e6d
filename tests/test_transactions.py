"""create_vectorizer and drop_vectorizer are fully transactional: a ROLLBACK,
a failing migration or a ROLLBACK TO SAVEPOINT leaves the database exactly as
it was (catalog rows, relations, triggers, functions, types, dependencies,
ACLs, history), ids are never reused, and the caller's role and search_path
come back intact."""

import json

import psycopg
import pytest
from psycopg import sql

from conftest import (
    BLOG_CONFIG,
    catalog_snapshot,
    connect,
    create_blog,
    create_vectorizer,
    queued,
    trigger_count,
)

# The server neither restarts nor logs a crash during this module.
pytestmark = pytest.mark.usefixtures("server_watch")


def test_create_then_rollback_leaves_nothing(db):
    create_blog(db)
    before = catalog_snapshot(db)
    db.execute("BEGIN")
    vid = create_vectorizer(db, BLOG_CONFIG)
    # Inside the transaction everything exists and works ...
    assert trigger_count(db) == 4
    db.execute("INSERT INTO blog (id, content) VALUES (10, 'x')")
    assert queued(db) == [1, 2, 3, 10]
    assert db.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 1
    db.execute("ROLLBACK")
    # ... and afterwards nothing does, down to pg_depend and pg_shdepend.
    assert catalog_snapshot(db) == before
    assert db.execute("SELECT count(*) FROM blog").fetchone()[0] == 3
    assert db.execute("SELECT to_regclass(%s)", (f"migrate._vectorizer_q_{vid}",)).fetchone()[0] is None
    # No advisory lock outlives the transaction.
    assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").fetchone()[0] == 0


def test_rolled_back_id_is_not_reused(db):
    create_blog(db)
    db.execute("BEGIN")
    first = create_vectorizer(db, BLOG_CONFIG)
    db.execute("ROLLBACK")
    second = create_vectorizer(db, BLOG_CONFIG)
    assert second > first
    assert db.execute("SELECT queue_table FROM migrate.vectorizer").fetchone()[0] == f"_vectorizer_q_{second}"
    assert queued(db) == [1, 2, 3]


def test_failing_migration_leaves_nothing(db):
    """A migration file run in one transaction: it creates its table and
    vectorizer, labels the revision, then fails in a later statement (here
    the extension itself refuses a second vectorizer on the same store)."""
    before = catalog_snapshot(db)
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        with db.transaction():
            db.execute("SET LOCAL migrate.revision_label = '0002_failing'")
            create_blog(db)
            create_vectorizer(db, BLOG_CONFIG)
            db.execute("INSERT INTO blog (id, content) VALUES (4, 'four')")
            create_vectorizer(db, {**BLOG_CONFIG, "name": "second"})
    assert e.value.diag.message_primary == 'destination.destination: relation "public.blog_embeddings_store" already exists'
    assert catalog_snapshot(db) == before
    assert db.execute("SELECT to_regclass('blog')").fetchone()[0] is None
    assert db.execute("SELECT current_setting('migrate.revision_label', true)").fetchone()[0] in (None, "")


def test_failing_migration_with_plain_sql_error_after_create(db):
    """The same with an ordinary SQL error after a successful create, sent as
    one multi-statement string the way migration tools send a file."""
    create_blog(db)
    before = catalog_snapshot(db)
    script = (
        "BEGIN;"
        f"SELECT migrate.create_vectorizer({sql.Literal(json.dumps(BLOG_CONFIG)).as_string(db)}::jsonb);"
        "ALTER TABLE blog ADD COLUMN extra text;"
        "INSERT INTO blog (id, content) VALUES (5, 'five');"
        "SELECT no_such_function();"
        "COMMIT;"
    )
    with pytest.raises(psycopg.errors.UndefinedFunction):
        db.execute(script)
    db.execute("ROLLBACK")
    assert catalog_snapshot(db) == before


def test_savepoint_rollback_then_create_again_with_the_same_name(db):
    create_blog(db)
    before = catalog_snapshot(db)
    search_path = db.execute("SHOW search_path").fetchone()[0]
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = 'with-savepoint'")
        db.execute("SAVEPOINT s1")
        first = create_vectorizer(db, BLOG_CONFIG)
        db.execute("INSERT INTO blog (id, content) VALUES (7, 'seven')")
        assert queued(db) == [1, 2, 3, 7]
        db.execute("ROLLBACK TO SAVEPOINT s1")
        assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
        assert trigger_count(db) == 0
        assert db.execute("SHOW search_path").fetchone()[0] == search_path
        second = create_vectorizer(db, BLOG_CONFIG)
        db.execute("RELEASE SAVEPOINT s1")
    assert second != first and second > first
    rows = db.execute("SELECT id, name, queue_table FROM migrate.vectorizer").fetchall()
    assert rows == [(second, "blog_content_embedder", f"_vectorizer_q_{second}")]
    revisions = db.execute("SELECT vectorizer_id, operation, label FROM migrate.revision").fetchall()
    assert revisions == [(second, "create", "with-savepoint")]
    # The first attempt's objects are gone, the second's exist exactly once.
    assert db.execute("SELECT to_regclass(%s)", (f"migrate._vectorizer_q_{first}",)).fetchone()[0] is None
    assert db.execute("SELECT to_regclass(%s)", (f"migrate._vectorizer_q_failed_{first}",)).fetchone()[0] is None
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s", (f"_vectorizer_src_trg_{first}%",)).fetchone()[0] == 0
    assert trigger_count(db) == 4
    assert queued(db) == [1, 2, 3]  # row 7 was rolled back with the savepoint
    # Later vectorizers keep getting fresh ids: no collision with either.
    db.execute("CREATE TABLE other (id int PRIMARY KEY, content text)")
    third = create_vectorizer(db, {**BLOG_CONFIG, "source": "other", "name": "other", "destination": {"implementation": "table", "destination": "other_e"}, "formatting": "python_template"})
    assert third > second
    ids = [r[0] for r in db.execute("SELECT id FROM migrate.vectorizer ORDER BY id").fetchall()]
    assert ids == [second, third]
    after = catalog_snapshot(db)
    assert after["vectorizer"] != before["vectorizer"]


def test_failed_create_inside_savepoint_restores_search_path_and_role(dbname, roles):
    """A create that fails deep inside (while running as the extension owner
    and then as the table owner) and is rolled back to a savepoint gives the
    caller back their own role, security context and search_path."""
    alice = roles("alice")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{alice}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}"')
        # Partitioned, so the existing rows are queued as the table owner
        # (a plain table's are bulk-copied with the extension's rights).
        admin.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0) PARTITION BY RANGE (id)")
        admin.execute("CREATE TABLE blog_p PARTITION OF blog FOR VALUES FROM (0) TO (1000)")
        admin.execute("INSERT INTO blog SELECT g, 'title ' || g, 'content ' || g FROM generate_series(1, 3) g")
        admin.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
        admin.execute(f'ALTER TABLE blog_p OWNER TO "{alice}"')
    try:
        with connect(dbname, user=alice) as c:
            # The owner revoked their own SELECT: queueing the existing rows,
            # which runs as the owner, fails after all the DDL has run.
            c.execute(f'REVOKE SELECT ON blog FROM "{alice}"')
            c.execute("SET search_path = public, pg_catalog")
            with c.transaction():
                c.execute("SAVEPOINT s")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    create_vectorizer(c, BLOG_CONFIG)
                c.execute("ROLLBACK TO SAVEPOINT s")
                assert c.execute("SELECT current_user, session_user").fetchone() == (alice, alice)
                assert c.execute("SHOW search_path").fetchone()[0] == "public, pg_catalog"
                # Still an unprivileged role: the extension owner's rights are gone.
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute("SAVEPOINT t; CREATE TABLE migrate.planted (x int)")
                c.execute("ROLLBACK TO SAVEPOINT t")
                assert not c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
                # Not stuck in a security-restricted context either.
                c.execute("CREATE TEMP TABLE scratch (x int)")
                # And with SELECT back, the same call works in the same transaction.
                c.execute(f'GRANT SELECT ON blog TO "{alice}"')
                create_vectorizer(c, BLOG_CONFIG)
            assert queued(c) == [1, 2, 3]
            assert c.execute("SELECT current_user").fetchone()[0] == alice
    finally:
        with connect(dbname) as admin:
            admin.execute(f'DROP OWNED BY "{alice}" CASCADE')


def test_failed_create_inside_plpgsql_exception_block(db):
    """The same through a PL/pgSQL EXCEPTION block (an implicit savepoint),
    the way a DO-block migration would try and fall back."""
    create_blog(db)
    before = catalog_snapshot(db)
    bad = {**BLOG_CONFIG, "destination": {"implementation": "table", "destination": "blog_embeddings", "target_schema": "nope"}}
    db.execute(
        sql.SQL(
            "DO $$ BEGIN "
            "  PERFORM migrate.create_vectorizer({good}::jsonb); "
            "  PERFORM migrate.create_vectorizer({bad}::jsonb); "
            "EXCEPTION WHEN invalid_schema_name THEN "
            "  RAISE NOTICE 'caught %', SQLERRM; "
            "END $$"
        ).format(good=sql.Literal(json.dumps(BLOG_CONFIG)), bad=sql.Literal(json.dumps({**bad, "name": "bad"})))
    )
    # The whole block's work was undone by the exception handler.
    assert catalog_snapshot(db) == before
    assert db.execute("SHOW search_path").fetchone()[0] == '"$user", public'


def test_drop_then_rollback_restores_everything(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', array_fill(0, ARRAY[768])::vector)")
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    before = catalog_snapshot(db)
    for drop in (
        "SELECT migrate.drop_vectorizer('blog_content_embedder')",
        "SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)",
        "SELECT migrate.drop_vectorizer(1, true)",
    ):
        db.execute("BEGIN")
        db.execute(drop)
        assert trigger_count(db) == 0
        db.execute("INSERT INTO blog (id, content) VALUES (20, 'during')")
        db.execute("ROLLBACK")
        assert catalog_snapshot(db) == before, drop
    # The trigger still queues, deletes and empties after the rollbacks.
    assert trigger_count(db) == 4
    db.execute("INSERT INTO blog (id, content) VALUES (30, 'after')")
    db.execute("UPDATE blog SET content = 'changed' WHERE id = 2")
    db.execute("UPDATE blog SET views = 9 WHERE id = 3")
    assert queued(db) == [2, 30]
    db.execute("DELETE FROM blog WHERE id = 1")
    assert db.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM blog_embeddings").fetchone()[0] == 0
    # And a committed drop after all that works and records one drop.
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    ops = [r[0] for r in db.execute("SELECT operation FROM migrate.revision ORDER BY id").fetchall()]
    assert ops == ["create", "drop"]


def test_drop_and_recreate_in_one_transaction_then_rollback(db):
    """A migration that replaces a vectorizer (drop + create with a new
    config) and then fails restores the old one untouched, queue included."""
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("DELETE FROM migrate._vectorizer_q_1 WHERE id = 1")
    before = catalog_snapshot(db)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
            new = create_vectorizer(db, {**BLOG_CONFIG, "embedding": {**BLOG_CONFIG["embedding"], "dimensions": 1536}})
            assert new == 2
            db.execute("SELECT 1/0")
    assert catalog_snapshot(db) == before
    assert queued(db) == [2, 3]
    db.execute("INSERT INTO blog (id, content) VALUES (8, 'x')")
    assert queued(db) == [2, 3, 8]

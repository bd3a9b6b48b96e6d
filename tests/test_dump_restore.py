"""pg_dump of a database with vectorizers, restored into a fresh empty
database (plain format with psql, custom format with pg_restore): catalog,
objects, queued work, embeddings and history come back, the triggers keep
working and new vectorizers get fresh ids."""

import subprocess

import psycopg
import pytest

from conftest import (
    BLOG_CONFIG,
    client_env,
    connect,
    create_blog,
    create_vectorizer,
    managed,
    pg_tool,
    queued,
    schema_snapshot,
)

POST_CONFIG = {
    **BLOG_CONFIG,
    "source": "post",
    "name": "post_content_embedder",
    "destination": {"implementation": "table", "destination": "post_embeddings"},
}
ZERO = "array_fill(0, ARRAY[768])::vector"


def populate(conn):
    """post's vectorizer (id 1) is dropped keeping its store and view; blog's
    (id 2) is live with queued work, a failed item and stored embeddings."""
    create_blog(conn, rows=3)
    create_blog(conn, rows=2, table="post")
    with conn.transaction():
        conn.execute("SET LOCAL migrate.revision_label = 'm1'")
        assert create_vectorizer(conn, POST_CONFIG) == 1
    with conn.transaction():
        conn.execute("SET LOCAL migrate.revision_label = 'm2'")
        assert create_vectorizer(conn, BLOG_CONFIG) == 2
    conn.execute(f"INSERT INTO post_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'p', {ZERO})")
    conn.execute(
        f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES "
        f"(1, 0, 'c', {ZERO}), (1, 1, 'd', {ZERO}), (2, 0, 'e', {ZERO})"
    )
    with conn.transaction():
        conn.execute("SET LOCAL migrate.revision_label = 'm3'")
        conn.execute("SELECT migrate.drop_vectorizer('post_content_embedder', drop_all => false)")
    conn.execute("INSERT INTO blog VALUES (4, 'title 4', 'content 4')")
    conn.execute("INSERT INTO migrate._vectorizer_q_failed_2 (id, failure_step) VALUES (3, 'loading')")


def state(conn):
    """Everything a restore must bring back, comparable across databases."""
    rows = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
    return dict(
        schema=schema_snapshot(conn),
        catalog=rows("SELECT to_jsonb(v) FROM migrate.vectorizer v ORDER BY id"),
        managed=managed(conn),
        revisions=rows("SELECT to_jsonb(r) FROM migrate.revision r ORDER BY id"),
        status=rows("SELECT name, source::text, target_table, view, pending_items FROM migrate.vectorizer_status"),
        queue=rows("SELECT * FROM migrate._vectorizer_q_2 ORDER BY id"),
        failed=rows("SELECT * FROM migrate._vectorizer_q_failed_2 ORDER BY id"),
        blog_store=rows("SELECT embedding_uuid, id, chunk_seq, chunk, embedding::text FROM blog_embeddings_store ORDER BY 2, 3"),
        post_store=rows("SELECT embedding_uuid, id, chunk_seq, chunk, embedding::text FROM post_embeddings_store ORDER BY 2, 3"),
        view=rows("SELECT id, chunk_seq, chunk, title FROM blog_embeddings ORDER BY 1, 2"),
        sources=rows("SELECT 'blog', * FROM blog UNION ALL SELECT 'post', * FROM post ORDER BY 1, 2"),
        # trigger functions: body, SECURITY DEFINER, fixed search_path, owner
        functions=rows(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner) "
            "FROM pg_proc p WHERE p.pronamespace = 'migrate'::regnamespace "
            "AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1"
        ),
        owners=rows(
            "SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner), c.relacl::text FROM pg_class c "
            "WHERE c.relnamespace IN ('public'::regnamespace, 'migrate'::regnamespace) ORDER BY 1"
        ),
        sequences=rows("SELECT last_value FROM migrate.vectorizer_id_seq UNION ALL SELECT last_value FROM migrate.revision_id_seq"),
    )


def dump_and_restore(source_db, target_db, fmt, tmp_path):
    env = client_env()
    if fmt == "plain":
        path = tmp_path / "dump.sql"
        subprocess.run([pg_tool("pg_dump"), "-d", source_db, "-f", str(path)], env=env, check=True)
        restore = [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target_db, "-f", str(path)]
    else:
        path = tmp_path / "dump.custom"
        subprocess.run([pg_tool("pg_dump"), "-Fc", "-d", source_db, "-f", str(path)], env=env, check=True)
        restore = [pg_tool("pg_restore"), "--exit-on-error", "-d", target_db, str(path)]
    result = subprocess.run(restore, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "WARNING" not in result.stderr, result.stderr


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_dump_and_restore_into_a_fresh_database(fmt, db, dbname, new_database, tmp_path):
    populate(db)
    before = state(db)
    assert [r[1] for r in before["managed"]] == ["blog_content_embedder"] * 4
    assert [r[0] for r in before["queue"]] == [1, 2, 3, 4]
    assert len(before["revisions"]) == 3

    restored = new_database(empty=True)
    dump_and_restore(dbname, restored, fmt, tmp_path)

    with connect(restored) as conn:
        assert state(conn) == before

        # The live vectorizer's triggers still work.
        conn.execute("INSERT INTO blog VALUES (10, 'title 10', 'content 10')")
        conn.execute("UPDATE blog SET views = views + 1 WHERE id = 2")  # not a column it reads
        assert queued(conn) == [1, 2, 3, 4, 10]
        conn.execute("DELETE FROM blog WHERE id = 1")
        assert conn.execute("SELECT id, chunk_seq FROM blog_embeddings_store ORDER BY 1, 2").fetchall() == [(2, 0)]
        assert queued(conn) == [2, 3, 4, 10]

        # A new vectorizer gets a fresh id: not 2 (live) nor 1 (dropped, its
        # name reused here), and the history continues.
        with conn.transaction():
            conn.execute("SET LOCAL migrate.revision_label = 'm4'")
            new_id = create_vectorizer(
                conn, {**POST_CONFIG, "destination": {"implementation": "table", "destination": "post_embeddings_v2"}}
            )
        assert new_id == 3
        assert queued(conn, "post_content_embedder") == [1, 2]
        assert conn.execute("SELECT id, vectorizer_id, operation, label FROM migrate.revision ORDER BY id").fetchall() == [
            (1, 1, "create", "m1"),
            (2, 2, "create", "m2"),
            (3, 1, "drop", "m3"),
            (4, 3, "create", "m4"),
        ]
        assert [r[:3] for r in managed(conn)] == [
            (2, "blog_content_embedder", "store"),
            (2, "blog_content_embedder", "view"),
            (2, "blog_content_embedder", "queue"),
            (2, "blog_content_embedder", "failed_queue"),
            (3, "post_content_embedder", "store"),
            (3, "post_content_embedder", "view"),
            (3, "post_content_embedder", "queue"),
            (3, "post_content_embedder", "failed_queue"),
        ]


# --- every other dump form ---------------------------------------------------------


def run_restore(cmd):
    return subprocess.run(cmd, env=client_env(), capture_output=True, text=True)


def dump(source_db, tmp_path, *options, fmt="plain"):
    path = tmp_path / f"dump{len(list(tmp_path.iterdir()))}.{fmt}"
    flag = ["-Fc"] if fmt == "custom" else []
    subprocess.run([pg_tool("pg_dump"), *flag, *options, "-d", source_db, "-f", str(path)], env=client_env(), check=True)
    return path


def psql_file(target_db, path):
    return run_restore([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target_db, "-f", str(path)])


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_restore_into_a_database_with_the_extension_already_created(fmt, db, dbname, new_database, tmp_path):
    """The usual way to restore into a managed service: the extension is
    created first. The dump must not fail on the extension's schema."""
    populate(db)
    before = state(db)
    target = new_database()  # has pgai_migrate already
    path = dump(dbname, tmp_path, fmt=fmt)
    if fmt == "plain":
        r = psql_file(target, path)
    else:
        r = run_restore([pg_tool("pg_restore"), "--exit-on-error", "-d", target, str(path)])
    assert r.returncode == 0, r.stderr
    with connect(target) as conn:
        assert state(conn) == before
        conn.execute("INSERT INTO blog VALUES (10, 'title 10', 'content 10')")
        assert queued(conn) == [1, 2, 3, 4, 10]


def test_schema_only_restore_then_new_vectorizers_get_fresh_ids(db, dbname, new_database, tmp_path):
    populate(db)
    target = new_database(empty=True)
    r = psql_file(target, dump(dbname, tmp_path, "--schema-only"))
    assert r.returncode == 0, r.stderr
    with connect(target) as conn:
        # The catalog's rows are data: none here. The restored triggers
        # find no vectorizer and leave writes alone.
        assert conn.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
        conn.execute("INSERT INTO blog VALUES (10, 'title 10', 'content 10')")
        conn.execute("TRUNCATE blog")
        create_blog(conn, table="notes")
        new_id = create_vectorizer(conn, {**BLOG_CONFIG, "source": "notes", "name": "notes_v",
                                          "destination": {"implementation": "table", "destination": "notes_e"}})
        # Id 2 still names the restored queue and triggers, so it is
        # skipped; id 1's objects were dropped before the dump.
        assert new_id == 1
        new_id = create_vectorizer(conn, {**BLOG_CONFIG, "source": "notes", "name": "notes_w",
                                          "destination": {"implementation": "table", "destination": "notes_f"}})
        assert new_id == 3
        assert queued(conn, "notes_v") == [1, 2, 3]


def test_data_only_restore_into_a_schema_only_restore(db, dbname, new_database, tmp_path):
    populate(db)
    before = state(db)
    target = new_database(empty=True)
    assert psql_file(target, dump(dbname, tmp_path, "--schema-only")).returncode == 0
    r = psql_file(target, dump(dbname, tmp_path, "--data-only"))
    assert r.returncode == 0, r.stderr
    with connect(target) as conn:
        assert state(conn) == before
        conn.execute("INSERT INTO blog VALUES (10, 'title 10', 'content 10')")
        assert queued(conn) == [1, 2, 3, 4, 10]


def test_restore_into_a_database_with_its_own_vectorizers_never_crosses_them(db, dbname, new_database, tmp_path):
    """The target already has vectorizer 1 (on another table). The dump's
    catalog rows and queues collide: pg_restore reports errors; and the
    restored triggers (for id 1) refuse to act for the restored table, so
    they never write into the other vectorizer's store."""
    populate(db)
    target = new_database()
    with connect(target) as conn:
        create_blog(conn, table="other")
        assert create_vectorizer(conn, {**BLOG_CONFIG, "source": "other", "name": "other_v",
                                        "destination": {"implementation": "table", "destination": "other_e"}}) == 1
        conn.execute(f"INSERT INTO other_e_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'keep', {ZERO})")
    r = run_restore([pg_tool("pg_restore"), "-d", target, str(dump(dbname, tmp_path, fmt="custom"))])
    assert r.returncode != 0 and "ERROR" in r.stderr
    with connect(target) as conn:
        assert conn.execute("SELECT name FROM migrate.vectorizer ORDER BY id").fetchall()[0] == ("other_v",)
        for statement in ["TRUNCATE blog", "DELETE FROM blog WHERE id = 1", "INSERT INTO blog VALUES (99, 't', 'c')"]:
            try:
                conn.execute(statement)
            except psycopg.errors.TriggeredActionException as e:
                assert "serves only its source table" in e.diag.message_primary
        assert conn.execute("SELECT chunk FROM other_e_store").fetchall() == [("keep",)]
        assert queued(conn, "other_v") == [1, 2, 3]


def test_no_owner_restore_by_the_tables_owner_fails_loudly_and_leaves_tables_writable(dbname, db, new_database, roles, tmp_path):
    """A non-superuser cannot write the extension's catalog, create in
    schema migrate or attach its trigger function, so a `--no-owner`
    restore by the table's owner cannot bring the vectorizer back (the
    README says so and what to do). What it must not do is fail silently
    or leave a table that rejects writes."""
    owner = roles("owner")
    create_blog(db)
    db.execute(f'ALTER TABLE blog OWNER TO "{owner}"')
    db.execute(f'GRANT USAGE ON SCHEMA migrate TO "{owner}"')
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{owner}"')
    with connect(dbname, user=owner) as c:
        create_vectorizer(c, BLOG_CONFIG)
    path = dump(dbname, tmp_path, "--no-owner", "--no-privileges", fmt="custom")
    target = new_database()
    with connect(target) as admin:
        admin.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{owner}"')
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{owner}"')
    r = run_restore([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "-U", owner, "-d", target, str(path)])
    assert r.returncode != 0
    assert "permission denied for schema migrate" in r.stderr or "permission denied for table vectorizer" in r.stderr, r.stderr
    with connect(target, user=owner) as c:
        assert c.execute("SELECT count(*) FROM blog").fetchone()[0] == 3
        c.execute("INSERT INTO blog VALUES (10, 'title 10', 'content 10')")
        c.execute("DELETE FROM blog")
        c.execute("TRUNCATE blog")
    with connect(target) as admin:
        admin.execute(f'DROP OWNED BY "{owner}" CASCADE')
    db.execute(f"SELECT migrate.drop_vectorizer('{BLOG_CONFIG['name']}', drop_all => true)")
    db.execute(f'DROP OWNED BY "{owner}" CASCADE')

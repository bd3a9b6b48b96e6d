"""The dbmate example (examples/dbmate): plain SQL migrations run by the real
dbmate binary — up, rollback, up again — with the state checked each time."""

import os
import subprocess

from conftest import CONNINFO, PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed, queued, relations

EXAMPLE = os.path.join(ROOT, "examples", "dbmate")
DBMATE = os.environ.get("DBMATE", os.path.join(PGAI_MIGRATE_HOME, "npm", "node_modules", ".bin", "dbmate"))
VECTORIZER_MIGRATION = "20250601120100"


def dbmate(dbname, *args):
    assert os.access(DBMATE, os.X_OK), f"dbmate not found at {DBMATE}: run scripts/setup.sh"
    host, port, user = CONNINFO["host"], CONNINFO["port"], CONNINFO["user"]
    if host.startswith("/"):
        url = f"postgres://{user}@/{dbname}?sslmode=disable&host={host}&port={port}"
    else:
        url = f"postgres://{user}@{host}:{port}/{dbname}?sslmode=disable"
    result = subprocess.run(
        # --no-dump-schema: dbmate would otherwise write db/schema.sql into the example.
        [DBMATE, "--no-dump-schema", *args],
        cwd=EXAMPLE,
        env=client_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"dbmate {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def history(conn):
    return conn.execute(
        "SELECT vectorizer_id, operation, label, drop_all FROM migrate.revision ORDER BY id"
    ).fetchall()


def test_up_rollback_up(dbname):
    with connect(dbname) as conn:
        initial = relations(conn)

    out = dbmate(dbname, "up")
    assert "Applied: 20250601120000_create_blog.sql" in out
    assert f"Applied: {VECTORIZER_MIGRATION}_blog_vectorizer.sql" in out
    with connect(dbname) as conn:
        assert managed(conn) == [
            (1, "blog_content_embedder", "store", "public", "blog_embeddings_store", "blog_embeddings_store"),
            (1, "blog_content_embedder", "view", "public", "blog_embeddings", "blog_embeddings"),
            (1, "blog_content_embedder", "queue", "migrate", "_vectorizer_q_1", "migrate._vectorizer_q_1"),
            (1, "blog_content_embedder", "failed_queue", "migrate", "_vectorizer_q_failed_1", "migrate._vectorizer_q_failed_1"),
        ]
        conn.execute("INSERT INTO blog VALUES (1, 'one', 'first'), (2, 'two', 'second')")
        assert queued(conn) == [1, 2]
        assert history(conn) == [(1, "create", VECTORIZER_MIGRATION, None)]

    out = dbmate(dbname, "rollback")
    assert f"Rolled back: {VECTORIZER_MIGRATION}_blog_vectorizer.sql" in out
    with connect(dbname) as conn:
        assert managed(conn) == []
        # drop_all => true: store, view and queues are gone; blog and its rows stay.
        assert relations(conn) - initial == {
            ("blog",), ("blog_pkey",), ("schema_migrations",), ("schema_migrations_pkey",),
        }
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass").fetchone()[0] == 0
        conn.execute("INSERT INTO blog VALUES (3, 'three', 'third')")  # nothing to queue into
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
        ]

    out = dbmate(dbname, "up")
    assert f"Applied: {VECTORIZER_MIGRATION}_blog_vectorizer.sql" in out
    assert "20250601120000_create_blog.sql" not in out
    with connect(dbname) as conn:
        # A new vectorizer (new id); every existing row is queued, then new ones.
        assert [(r[0], r[2], r[5]) for r in managed(conn)] == [
            (2, "store", "blog_embeddings_store"),
            (2, "view", "blog_embeddings"),
            (2, "queue", "migrate._vectorizer_q_2"),
            (2, "failed_queue", "migrate._vectorizer_q_failed_2"),
        ]
        assert queued(conn) == [1, 2, 3]
        conn.execute("INSERT INTO blog VALUES (4, 'four', 'fourth')")
        conn.execute("UPDATE blog SET content = 'first, edited' WHERE id = 1")
        assert queued(conn) == [1, 2, 3, 4]
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
            (2, "create", VECTORIZER_MIGRATION, None),
        ]
        assert conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall() == [
            ("20250601120000",), (VECTORIZER_MIGRATION,),
        ]

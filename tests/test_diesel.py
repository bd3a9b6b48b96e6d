"""diesel_cli runs examples/diesel for real: `diesel migration run`, `list`,
`revert` and `redo`, with the vectorizer and its labelled history checked
(a failed redo keeps the vectorizer);
and `diesel print-schema`, whose `except_tables` filter (built from
migrate.managed_tables()) keeps the vectorizer's store out of the schema
diesel writes: without it the store is printed."""

import os
import shutil
import subprocess
from urllib.parse import quote

from conftest import CONNINFO, PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed, pg_tool, queued

DIESEL = os.path.join(PGAI_MIGRATE_HOME, "cargo-tools", "bin", "diesel")
VERSION = "2.3.14"
EXAMPLE = os.path.join(ROOT, "examples", "diesel")
TABLE_MIGRATION = "2025-06-01-120000_blog"
VECTORIZER_MIGRATION = "2025-06-01-120100_blog_vectorizer"
# The query docs/integrations.md gives for diesel.toml's filter line.
FILTER_QUERY = (
    "SELECT format('filter = { except_tables = [%s] }', "
    "string_agg(quote_literal('^' || table_name || '$'), ', ')) "
    "FROM migrate.managed_tables() WHERE schema_name = current_schema()"
)


def database_url(dbname):
    # libpq reads a socket directory from the `host` parameter.
    return (f"postgres://{CONNINFO['user']}@localhost:{CONNINFO['port']}/{dbname}"
            f"?host={quote(CONNINFO['host'], safe='')}")


def diesel(project, dbname, *args):
    assert os.access(DIESEL, os.X_OK), f"{DIESEL} is missing: run scripts/setup.sh"
    result = subprocess.run([DIESEL, *args], cwd=project, env=client_env(DATABASE_URL=database_url(dbname)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"diesel {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_example(tmp_path):
    project = tmp_path / "diesel"
    shutil.copytree(EXAMPLE, project)
    return project


def history(conn):
    return conn.execute(
        "SELECT vectorizer_id, operation, label, drop_all FROM migrate.revision ORDER BY id"
    ).fetchall()


def applied(conn):
    return conn.execute("SELECT version FROM __diesel_schema_migrations ORDER BY version").fetchall()


def check_up(conn, vectorizer_id):
    assert [(r[0], r[2], r[5]) for r in managed(conn)] == [
        (vectorizer_id, "store", "blog_embeddings_store"),
        (vectorizer_id, "view", "blog_embeddings"),
        (vectorizer_id, "queue", f"migrate._vectorizer_q_{vectorizer_id}"),
        (vectorizer_id, "failed_queue", f"migrate._vectorizer_q_failed_{vectorizer_id}"),
    ]
    assert applied(conn) == [("20250601120000",), ("20250601120100",)]


def check_down(conn):
    assert managed(conn) == []
    assert conn.execute("SELECT to_regclass('blog_embeddings'), to_regclass('blog_embeddings_store')").fetchone() == (None, None)
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass").fetchone()[0] == 0
    assert applied(conn) == [("20250601120000",)]


def test_installed_version():
    assert os.access(DIESEL, os.X_OK), f"{DIESEL} is missing: run scripts/setup.sh"
    out = subprocess.run([DIESEL, "--version"], capture_output=True, text=True, check=True).stdout
    assert f" Version: {VERSION}" in out.splitlines()


def test_migration_run_list_revert_redo(tmp_path, dbname):
    project = copy_example(tmp_path)

    out = diesel(project, dbname, "migration", "run")
    assert f"Running migration {TABLE_MIGRATION}" in out
    assert f"Running migration {VECTORIZER_MIGRATION}" in out
    with connect(dbname) as conn:
        check_up(conn, 1)
        conn.execute("INSERT INTO blog VALUES (1, 'one', 'first'), (2, 'two', 'second')")
        assert queued(conn) == [1, 2]
        assert history(conn) == [(1, "create", VECTORIZER_MIGRATION, None)]
    out = diesel(project, dbname, "migration", "list")
    assert f"[X] {TABLE_MIGRATION}" in out and f"[X] {VECTORIZER_MIGRATION}" in out

    out = diesel(project, dbname, "migration", "revert")
    assert f"Rolling back migration {VECTORIZER_MIGRATION}" in out
    assert TABLE_MIGRATION not in out
    with connect(dbname) as conn:
        check_down(conn)
        assert conn.execute("SELECT count(*) FROM blog").fetchone()[0] == 2
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
        ]
    out = diesel(project, dbname, "migration", "list")
    assert f"[X] {TABLE_MIGRATION}" in out and f"[ ] {VECTORIZER_MIGRATION}" in out

    diesel(project, dbname, "migration", "run")
    with connect(dbname) as conn:
        check_up(conn, 2)
        assert queued(conn) == [1, 2]

    # redo reverts and reapplies the newest migration, both in one
    # transaction: each call still gets its own label.
    out = diesel(project, dbname, "migration", "redo")
    assert f"Rolling back migration {VECTORIZER_MIGRATION}" in out
    assert f"Running migration {VECTORIZER_MIGRATION}" in out
    with connect(dbname) as conn:
        check_up(conn, 3)
        assert queued(conn) == [1, 2]
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
            (2, "create", VECTORIZER_MIGRATION, None),
            (2, "drop", VECTORIZER_MIGRATION, True),
            (3, "create", VECTORIZER_MIGRATION, None),
        ]


def test_print_schema_leaves_out_the_managed_tables(tmp_path, dbname):
    project = copy_example(tmp_path)
    diesel(project, dbname, "migration", "run")

    # diesel.toml's filter is the one the query builds from managed_tables().
    psql = subprocess.run([pg_tool("psql"), "-XAt", "-d", dbname, "-c", FILTER_QUERY], env=client_env(),
                          capture_output=True, text=True, check=True)
    filter_line = psql.stdout.strip()
    assert filter_line == "filter = { except_tables = ['^blog_embeddings_store$', '^blog_embeddings$'] }"
    with open(project / "diesel.toml") as f:
        assert filter_line in f.read().splitlines()

    # migration run wrote the schema file with that filter: the committed
    # example's file, the blog table and none of the vectorizer's relations.
    with open(project / "src" / "schema.rs") as f:
        written = f.read()
    with open(os.path.join(EXAMPLE, "src", "schema.rs")) as f:
        assert written == f.read()
    printed = diesel(project, dbname, "print-schema")
    assert printed == written
    assert "blog (id) {" in printed
    for name in ("blog_embeddings", "_vectorizer_q", "__diesel_schema_migrations"):
        assert name not in printed
    with connect(dbname) as conn:
        assert {r[4] for r in managed(conn)} == {
            "blog_embeddings_store", "blog_embeddings", "_vectorizer_q_1", "_vectorizer_q_failed_1",
        }

    # The same list on the command line.
    regexes = subprocess.run(
        [pg_tool("psql"), "-XAt", "-d", dbname, "-c",
         "SELECT '^' || table_name || '$' FROM migrate.managed_tables() WHERE schema_name = current_schema()"],
        env=client_env(), capture_output=True, text=True, check=True,
    ).stdout.split()
    bare = project / "bare.toml"
    bare.write_text("[print_schema]\n")
    assert diesel(project, dbname, "print-schema", "--config-file", str(bare), "--except-tables", *regexes) == printed

    # Without the filter diesel prints the store (and a type for its
    # vector column): the filter is what keeps it out.
    unfiltered = diesel(project, dbname, "print-schema", "--config-file", str(bare))
    assert "blog_embeddings_store (embedding_uuid) {" in unfiltered
    assert "embedding -> Vector," in unfiltered
    assert "blog (id) {" in unfiltered
    # The view and the queues are never printed: diesel reads base tables
    # of one schema (public by default).
    assert "blog_embeddings (" not in unfiltered and "_vectorizer_q" not in unfiltered


def test_a_failed_redo_keeps_the_vectorizer(tmp_path, dbname):
    project = copy_example(tmp_path)
    diesel(project, dbname, "migration", "run")
    up = project / "migrations" / VECTORIZER_MIGRATION / "up.sql"
    up.write_text(up.read_text().replace('"column_name": "content"', '"column_name": "no_such_column"'))

    # redo reverts and runs again in one transaction: when the run fails,
    # the drop is rolled back with it.
    result = subprocess.run([DIESEL, "migration", "redo"], cwd=project,
                            env=client_env(DATABASE_URL=database_url(dbname)), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'column "no_such_column" does not exist' in result.stdout + result.stderr
    with connect(dbname) as conn:
        check_up(conn, 1)
        assert history(conn) == [(1, "create", VECTORIZER_MIGRATION, None)]

"""sqlx-cli runs examples/sqlx for real: reversible migrations (`.up.sql` /
`.down.sql`), `sqlx migrate run`, `info`, `revert` and `run` again, with the
vectorizer, its labelled history and sqlx's `_sqlx_migrations` checked each
time; a failing vectorizer migration leaves nothing behind, and
`-- no-transaction` still labels."""

import os
import shutil
import subprocess
from urllib.parse import quote

from conftest import CONNINFO, PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed, queued

SQLX = os.path.join(PGAI_MIGRATE_HOME, "cargo-tools", "bin", "sqlx")
VERSION = "0.9.0"
VECTORIZER_MIGRATION = "20250601120100_blog_vectorizer"


def database_url(dbname):
    # sqlx reads a socket directory from the `host` parameter.
    return (f"postgres://{CONNINFO['user']}@localhost:{CONNINFO['port']}/{dbname}"
            f"?host={quote(CONNINFO['host'], safe='')}")


def sqlx(project, dbname, *args):
    assert os.access(SQLX, os.X_OK), f"{SQLX} is missing: run scripts/setup.sh"
    result = subprocess.run([SQLX, *args], cwd=project, env=client_env(DATABASE_URL=database_url(dbname)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"sqlx {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def history(conn):
    return conn.execute(
        "SELECT vectorizer_id, operation, label, drop_all FROM migrate.revision ORDER BY id"
    ).fetchall()


def applied(conn):
    return conn.execute(
        "SELECT version, description, success FROM _sqlx_migrations ORDER BY version"
    ).fetchall()


def test_installed_version():
    assert os.access(SQLX, os.X_OK), f"{SQLX} is missing: run scripts/setup.sh"
    out = subprocess.run([SQLX, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"sqlx-cli {VERSION}"


def test_migrate_run_info_revert_run(tmp_path, dbname):
    project = tmp_path / "sqlx"
    shutil.copytree(os.path.join(ROOT, "examples", "sqlx"), project)

    out = sqlx(project, dbname, "migrate", "run")
    assert "Applied 20250601120000/migrate blog" in out
    assert "Applied 20250601120100/migrate blog vectorizer" in out
    with connect(dbname) as conn:
        assert [(r[2], r[5]) for r in managed(conn)] == [
            ("store", "blog_embeddings_store"),
            ("view", "blog_embeddings"),
            ("queue", "migrate._vectorizer_q_1"),
            ("failed_queue", "migrate._vectorizer_q_failed_1"),
        ]
        conn.execute("INSERT INTO blog VALUES (1, 'one', 'first'), (2, 'two', 'second')")
        assert queued(conn) == [1, 2]
        assert history(conn) == [(1, "create", VECTORIZER_MIGRATION, None)]
        assert applied(conn) == [(20250601120000, "blog", True), (20250601120100, "blog vectorizer", True)]

    out = sqlx(project, dbname, "migrate", "info")
    assert "20250601120000/installed blog" in out
    assert "20250601120100/installed blog vectorizer" in out

    # revert undoes the newest migration only.
    out = sqlx(project, dbname, "migrate", "revert")
    assert "Applied 20250601120100/revert blog vectorizer" in out
    assert "20250601120000" not in out
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT to_regclass('blog_embeddings'), to_regclass('blog_embeddings_store')").fetchone() == (None, None)
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM blog").fetchone()[0] == 2
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
        ]
        assert applied(conn) == [(20250601120000, "blog", True)]
    assert "20250601120100/pending blog vectorizer" in sqlx(project, dbname, "migrate", "info")

    out = sqlx(project, dbname, "migrate", "run")
    assert "Applied 20250601120100/migrate blog vectorizer" in out
    assert "20250601120000" not in out
    with connect(dbname) as conn:
        # A new vectorizer (new id) that queued the existing rows.
        assert [(r[0], r[2]) for r in managed(conn)] == [(2, "store"), (2, "view"), (2, "queue"), (2, "failed_queue")]
        assert queued(conn) == [1, 2]
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
            (2, "create", VECTORIZER_MIGRATION, None),
        ]
        assert applied(conn) == [(20250601120000, "blog", True), (20250601120100, "blog vectorizer", True)]


def test_a_failed_vectorizer_migration_leaves_nothing(tmp_path, dbname):
    project = tmp_path / "sqlx"
    shutil.copytree(os.path.join(ROOT, "examples", "sqlx"), project)
    up = project / "migrations" / f"{VECTORIZER_MIGRATION}.up.sql"
    up.write_text(up.read_text().replace('"column_name": "content"', '"column_name": "no_such_column"'))

    result = subprocess.run([SQLX, "migrate", "run"], cwd=project, env=client_env(DATABASE_URL=database_url(dbname)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'column "no_such_column" does not exist' in result.stdout + result.stderr
    with connect(dbname) as conn:
        # The migration's transaction rolled back the vectorizer, its
        # history row and sqlx's record of the migration alike.
        assert managed(conn) == []
        assert history(conn) == []
        assert applied(conn) == [(20250601120000, "blog", True)]


def test_no_transaction_still_labels(tmp_path, dbname):
    # With `-- no-transaction` sqlx sends the file as one multi-statement
    # query, which PostgreSQL runs as one implicit transaction: SET LOCAL
    # still reaches the call.
    project = tmp_path / "sqlx"
    shutil.copytree(os.path.join(ROOT, "examples", "sqlx"), project)
    for direction in ("up", "down"):
        path = project / "migrations" / f"{VECTORIZER_MIGRATION}.{direction}.sql"
        path.write_text("-- no-transaction\n" + path.read_text())

    sqlx(project, dbname, "migrate", "run")
    sqlx(project, dbname, "migrate", "revert")
    with connect(dbname) as conn:
        assert history(conn) == [
            (1, "create", VECTORIZER_MIGRATION, None),
            (1, "drop", VECTORIZER_MIGRATION, True),
        ]

"""examples/quickstart.sql (the README's quick start) run with psql exactly as
the README says, into a database without the extension."""

import os
import re
import subprocess

from conftest import ROOT, client_env, connect, pg_tool

QUICKSTART = os.path.join(ROOT, "examples", "quickstart.sql")


def run_quickstart(dbname):
    result = subprocess.run(
        [pg_tool("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-f", QUICKSTART],
        env=client_env(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    # One line per output row, cells separated by single "|".
    return [re.sub(r"\s*\|\s*", "|", line.strip()) for line in result.stdout.splitlines()]


def section(lines, header):
    """The rows of the result whose header line is `header`."""
    start = lines.index(header) + 2  # skip the ----- line
    end = next(i for i in range(start, len(lines)) if re.fullmatch(r"\(\d+ rows?\)", lines[i]))
    return lines[start:end]


def test_quickstart_output(new_database):
    dbname = new_database(empty=True)
    lines = run_quickstart(dbname)
    assert lines[:3] == ["CREATE EXTENSION", "CREATE TABLE", "INSERT 0 3"]
    assert section(lines, "create_vectorizer") == ["1"]
    assert section(lines, "kind|schema_name|table_name") == [
        "store|public|blog_embeddings_store",
        "view|public|blog_embeddings",
        "queue|migrate|_vectorizer_q_1",
        "failed_queue|migrate|_vectorizer_q_failed_1",
    ]
    assert section(lines, "queued_id") == ["1", "2", "3", "4"]
    assert section(lines, "id|vectorizer_name|operation") == [
        "1|blog_content_embedder|create",
        "2|blog_content_embedder|drop",
    ]
    assert lines[-1] == "DROP TABLE"
    with connect(dbname) as conn:  # it cleans up after itself
        assert conn.execute("SELECT to_regclass('blog'), to_regclass('blog_embeddings_store')").fetchone() == (None, None)
        assert conn.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


def test_quickstart_runs_again_in_the_same_database(new_database):
    dbname = new_database(empty=True)
    run_quickstart(dbname)
    lines = run_quickstart(dbname)
    assert section(lines, "create_vectorizer") == ["2"]
    assert section(lines, "queued_id") == ["1", "2", "3", "4"]
    assert len(section(lines, "id|vectorizer_name|operation")) == 4


EVOLVE = os.path.join(ROOT, "examples", "evolve.sql")


def test_evolve_example_output(new_database):
    """The README's "Evolving a vectorizer" recipes, run by psql."""
    dbname = new_database(empty=True)
    result = subprocess.run(
        [pg_tool("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-f", EVOLVE],
        env=client_env(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = [re.sub(r"\s*\|\s*", "|", line.strip()) for line in result.stdout.splitlines()]
    assert section(lines, "path|old_value|new_value|action|queued_rows") == [
        "chunking.chunk_size|800|500|reembed|3",
        "processing.batch_size||100|in_place|0",
    ]
    assert section(lines, "queued_after_0002") == ["0"]
    assert section(lines, "queued_after_0003") == ["3"]
    assert section(lines, "operation|label|chunk_size|restored") == [
        "create|0001|800|f",
        "alter|0002|800|f",
        "alter|0003|500|f",
        "drop|0004|500|f",
        "create|0004 down|500|t",
    ]


def test_demo_migrations_up_and_down(new_database):
    """examples/demo as scripts/demo.sh applies it: 001, 002 up, 003 up and
    down, 002 down."""
    dbname = new_database(empty=True)
    with connect(dbname) as c:
        c.execute("CREATE EXTENSION pgai_migrate CASCADE")
    for f in ["001_blog.sql", "002_blog_vectorizer.up.sql", "003_smaller_chunks.up.sql",
              "003_smaller_chunks.down.sql", "002_blog_vectorizer.down.sql"]:
        result = subprocess.run(
            [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-f", os.path.join(ROOT, "examples", "demo", f)],
            env=client_env(), capture_output=True, text=True,
        )
        assert result.returncode == 0, (f, result.stderr)
    with connect(dbname) as c:
        rows = c.execute("SELECT operation, label, config->'chunking'->>'chunk_size', drop_all FROM migrate.revision ORDER BY id").fetchall()
        assert rows == [
            ("create", "002_blog_vectorizer", "800", None),
            ("alter", "003_smaller_chunks", "500", None),
            ("alter", "003_smaller_chunks", "800", None),
            # One convention: the migration's name, up and down alike.
            ("drop", "002_blog_vectorizer", "800", True),
        ]
        assert c.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0

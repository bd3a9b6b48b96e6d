"""The Alembic example (examples/alembic) run with the real `alembic` command
line: upgrade/downgrade round trip, autogenerate ignoring the vectorizer's
relations (and not ignoring them when the filter is off), and offline
--sql output applied with psql."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import (
    BLOG_CONFIG,
    CONNINFO,
    ROOT,
    client_env,
    connect,
    create_vectorizer,
    managed,
    pg_tool,
    schema_snapshot,
)

EXAMPLE = os.path.join(ROOT, "examples", "alembic")


def database_url(dbname):
    host, port, user = CONNINFO["host"], CONNINFO["port"], CONNINFO["user"]
    if host.startswith("/"):
        return f"postgresql+psycopg://{user}@/{dbname}?host={host}&port={port}"
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


@pytest.fixture
def project(tmp_path):
    """A copy of the example project, so generated revisions stay out of the
    repository."""
    dest = tmp_path / "alembic"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def alembic(project, dbname, *args, **env):
    """Run the alembic CLI of this Python environment; returns stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), *args],
        cwd=project,
        env=client_env(PGAI_MIGRATE_DATABASE_URL=database_url(dbname), **env),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def function_body(source, name):
    """The statements of a generated function, without comments."""
    match = re.search(rf"^def {name}\(\).*?:\n((?:    .*\n|\n)*)", source, re.M)
    assert match, f"no {name}() in:\n{source}"
    lines = [line.strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def autogenerate(project, dbname, **env):
    alembic(project, dbname, "revision", "--autogenerate", "-m", "check", "--rev-id", "0002", **env)
    return (project / "versions" / "0002_check.py").read_text()


def revisions(conn):
    return conn.execute(
        "SELECT vectorizer_name, operation, label, drop_all FROM migrate.revision ORDER BY id"
    ).fetchall()


def test_upgrade_then_downgrade_leaves_the_database_as_before(project, dbname):
    with connect(dbname) as conn:
        before = schema_snapshot(conn)

    alembic(project, dbname, "upgrade", "head")
    with connect(dbname) as conn:
        assert [(r[1], r[2]) for r in managed(conn)] == [
            ("blog_content_embedder", "store"),
            ("blog_content_embedder", "view"),
            ("blog_content_embedder", "queue"),
            ("blog_content_embedder", "failed_queue"),
        ]
        conn.execute("INSERT INTO blog VALUES (1, 'hello', 'first post')")
        assert conn.execute("SELECT id FROM migrate._vectorizer_q_1").fetchall() == [(1,)]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]

    alembic(project, dbname, "downgrade", "base")
    with connect(dbname) as conn:
        after = schema_snapshot(conn)
        # Alembic keeps its (now empty) version table; nothing else may remain.
        assert ("alembic_version",) in after["relations"]
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 0
        after["relations"] -= {("alembic_version",), ("alembic_version_pkc",)}
        assert after == before
        assert conn.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
        assert revisions(conn) == [
            ("blog_content_embedder", "create", "0001", None),
            ("blog_content_embedder", "drop", "0001", True),
        ]


def test_autogenerate_after_upgrade_proposes_nothing(project, dbname):
    alembic(project, dbname, "upgrade", "head")
    assert "No new upgrade operations detected." in alembic(project, dbname, "check")
    generated = autogenerate(project, dbname)
    assert function_body(generated, "upgrade") == ["pass"]
    assert function_body(generated, "downgrade") == ["pass"]


def test_autogenerate_without_the_filter_would_drop_the_managed_tables(project, dbname):
    """The negative control: the same run with include_name/include_object
    switched off sees the vectorizer's relations as strays."""
    alembic(project, dbname, "upgrade", "head")
    body = "\n".join(function_body(autogenerate(project, dbname, PGAI_MIGRATE_ALEMBIC_FILTER="off"), "upgrade"))
    assert "op.drop_table('blog_embeddings_store')" in body
    assert "op.drop_table('_vectorizer_q_1', schema='migrate')" in body
    assert "op.drop_table('_vectorizer_q_failed_1', schema='migrate')" in body
    # The extension's own catalog too.
    assert "op.drop_table('vectorizer', schema='migrate')" in body
    # The model that maps the view would be created as a table.
    assert "op.create_table('blog_embeddings'" in body


def test_offline_sql_applied_with_psql_gives_the_same_result(project, dbname, new_database):
    sql = alembic(project, dbname, "upgrade", "head", "--sql")
    assert "SET LOCAL migrate.revision_label = '0001';" in sql
    assert "SELECT migrate.create_vectorizer(" in sql

    offline_db = new_database()
    subprocess.run(
        [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", offline_db],
        input=sql, env=client_env(), capture_output=True, text=True, check=True,
    )
    alembic(project, dbname, "upgrade", "head")  # the same migration, online

    direct_db = new_database()  # and BLOG_CONFIG applied by hand, for reference
    with connect(direct_db) as conn:
        conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
        create_vectorizer(conn, BLOG_CONFIG)
        expected_config = conn.execute("SELECT config FROM migrate.vectorizer").fetchone()[0]

    results = []
    for name in (dbname, offline_db):
        with connect(name) as conn:
            results.append(
                dict(
                    managed=managed(conn),
                    catalog=conn.execute("SELECT id, name, source::text, config FROM migrate.vectorizer").fetchall(),
                    revisions=conn.execute("SELECT operation, label FROM migrate.revision").fetchall(),
                    version=conn.execute("SELECT version_num FROM alembic_version").fetchall(),
                )
            )
    online, offline = results
    assert offline == online
    assert len(online["managed"]) == 4
    assert online["catalog"] == [(1, "blog_content_embedder", "blog", expected_config)]
    assert online["revisions"] == [("create", "0001")]
    assert online["version"] == [("0001",)]

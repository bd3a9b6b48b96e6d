"""drizzle-kit (examples/drizzle) against a database with a vectorizer:
`migrate` applies the table and the custom vectorizer migration (labelled),
then `push`, `generate`, `check` and `pull` leave the vectorizer's relations
alone thanks to the documented schemaFilter/tablesFilter; without
tablesFilter, `pull` writes the store and view into the schema and `push`
tries to drop them (the extension refuses)."""

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed

EXAMPLE = os.path.join(ROOT, "examples", "drizzle")
NODE_MODULES = os.path.join(PGAI_MIGRATE_HOME, "npm-tools", "node_modules")
DRIZZLE_KIT = os.path.join(NODE_MODULES, ".bin", "drizzle-kit")


@pytest.fixture
def project(tmp_path):
    assert os.access(DRIZZLE_KIT, os.X_OK), f"{DRIZZLE_KIT} is missing: run scripts/setup.sh"
    dest = tmp_path / "drizzle"
    shutil.copytree(EXAMPLE, dest)
    os.symlink(NODE_MODULES, dest / "node_modules")
    return dest


def drizzle(project, dbname, *args, check=True):
    result = subprocess.run(
        [DRIZZLE_KIT, *args], cwd=project, env=client_env(PGDATABASE=dbname),
        capture_output=True, text=True, timeout=300,
    )
    out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stdout + result.stderr)
    if check:
        assert result.returncode == 0, f"drizzle-kit {' '.join(args)} failed:\n{out}"
    return result.returncode, out


def without_tables_filter(project):
    config = (project / "drizzle.config.ts").read_text()
    assert "tablesFilter" in config
    (project / "nofilter.config.ts").write_text(
        re.sub(r"^\s*tablesFilter:.*$", "", config, flags=re.M).replace('out: "./drizzle"', 'out: "./pulled"')
    )
    return "nofilter.config.ts"


def test_drizzle_kit_version():
    with open(os.path.join(NODE_MODULES, "drizzle-kit", "package.json")) as f:
        assert json.load(f)["version"] == "0.31.11"


def test_migrate_then_push_generate_check_and_pull_leave_the_vectorizer_alone(project, new_database):
    dbname = new_database(empty=True)  # the custom migration creates the extension
    drizzle(project, dbname, "migrate")
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
        assert conn.execute("SELECT vectorizer_name, operation, label FROM migrate.revision").fetchall() == [
            ("blog_content_embedder", "create", "0001_blog_vectorizer")
        ]
        before = managed(conn)

    _, out = drizzle(project, dbname, "push")
    assert "No changes detected" in out
    _, out = drizzle(project, dbname, "generate")
    assert "No schema changes" in out
    assert sorted(p.name for p in (project / "drizzle").glob("*.sql")) == ["0000_blog.sql", "0001_blog_vectorizer.sql"]
    drizzle(project, dbname, "check")

    pulled = project / "pulled"
    config = (project / "drizzle.config.ts").read_text().replace('out: "./drizzle"', 'out: "./pulled"')
    (project / "pull.config.ts").write_text(config)
    drizzle(project, dbname, "pull", "--config", "pull.config.ts")
    schema = (pulled / "schema.ts").read_text()
    assert 'pgTable("blog"' in schema
    assert "embedding" not in schema and "vectorizer" not in schema

    with connect(dbname) as conn:
        assert managed(conn) == before


def test_without_tables_filter_pull_sees_and_push_would_drop_the_store(project, new_database):
    dbname = new_database(empty=True)
    drizzle(project, dbname, "migrate")
    config = without_tables_filter(project)
    drizzle(project, dbname, "pull", "--config", config)
    schema = (project / "pulled" / "schema.ts").read_text()
    assert 'pgTable("blog_embeddings_store"' in schema
    assert 'pgView("blog_embeddings"' in schema

    # drizzle-kit exits 0 even when a statement fails: read its output.
    _, out = drizzle(project, dbname, "push", "--config", config, "--force", check=False)
    assert 'it belongs to vectorizer "blog_content_embedder"' in out  # the extension refuses (2BP01)
    with connect(dbname) as conn:
        assert len(managed(conn)) == 4

"""Node.js migration tools run for real on the examples: Knex
(examples/knex), node-pg-migrate (examples/node-pg-migrate), TypeORM
(examples/typeorm) and Sequelize (examples/sequelize, sequelize-cli). Each applies a table migration and a vectorizer
migration (labelled with the migration's name), and rolls both back; TypeORM's
schema:log then finds nothing to synchronize."""

import json
import os
import shutil
import subprocess
from urllib.parse import quote

import pytest

from conftest import CONNINFO, PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed

NODE_MODULES = os.path.join(PGAI_MIGRATE_HOME, "npm-tools", "node_modules")
VERSIONS = {"knex": "3.3.0", "node-pg-migrate": "9.0.0", "typeorm": "1.1.1", "pg": "8.23.1",
            "sequelize": "6.37.8", "sequelize-cli": "6.6.5"}


def tool(name):
    path = os.path.join(NODE_MODULES, ".bin", name)
    assert os.access(path, os.X_OK), f"{path} is missing: run scripts/setup.sh"
    return path


def copy_example(tmp_path, name):
    dest = tmp_path / name
    shutil.copytree(os.path.join(ROOT, "examples", name), dest)
    os.symlink(NODE_MODULES, dest / "node_modules")
    return dest


def run(cwd, dbname, *cmd):
    host = CONNINFO["host"]
    url = f"postgres://{CONNINFO['user']}@{quote(host, safe='')}:{CONNINFO['port']}/{dbname}"
    result = subprocess.run(
        cmd, cwd=cwd, env=client_env(PGDATABASE=dbname, DATABASE_URL=url), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def history(dbname):
    with connect(dbname) as conn:
        return conn.execute(
            "SELECT vectorizer_name, operation, label, drop_all FROM migrate.revision ORDER BY id"
        ).fetchall()


def check_up(dbname, label):
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
        conn.execute("INSERT INTO blog VALUES (1, 'hello', 'first post')")
        assert conn.execute("SELECT id FROM migrate._vectorizer_q_1").fetchall() == [(1,)]
    assert history(dbname) == [("blog_content_embedder", "create", label, None)]


def check_down(dbname, label):
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT to_regclass('blog'), to_regclass('blog_embeddings')").fetchone() == (None, None)
    assert history(dbname) == [
        ("blog_content_embedder", "create", label, None),
        ("blog_content_embedder", "drop", label, True),
    ]


@pytest.mark.parametrize("package", sorted(VERSIONS))
def test_installed_versions(package):
    with open(os.path.join(NODE_MODULES, package, "package.json")) as f:
        assert json.load(f)["version"] == VERSIONS[package]


def test_knex_migrate_latest_and_rollback(tmp_path, dbname):
    project = copy_example(tmp_path, "knex")
    run(project, dbname, tool("knex"), "migrate:latest")
    check_up(dbname, "20250601120100_blog_vectorizer")
    run(project, dbname, tool("knex"), "migrate:rollback", "--all")
    check_down(dbname, "20250601120100_blog_vectorizer")


def test_node_pg_migrate_up_and_down(tmp_path, dbname):
    project = copy_example(tmp_path, "node-pg-migrate")
    run(project, dbname, tool("node-pg-migrate"), "up")
    check_up(dbname, "1748779260000_blog-vectorizer")
    run(project, dbname, tool("node-pg-migrate"), "down", "2")
    check_down(dbname, "1748779260000_blog-vectorizer")


def test_typeorm_migration_run_schema_log_and_revert(tmp_path, dbname):
    project = copy_example(tmp_path, "typeorm")
    typeorm = tool("typeorm")
    run(project, dbname, typeorm, "migration:run", "-d", "data-source.js")
    check_up(dbname, "1748779260000-BlogVectorizer")
    assert "Your schema is up to date" in run(project, dbname, typeorm, "schema:log", "-d", "data-source.js")
    run(project, dbname, typeorm, "migration:revert", "-d", "data-source.js")
    run(project, dbname, typeorm, "migration:revert", "-d", "data-source.js")
    check_down(dbname, "1748779260000-BlogVectorizer")


def test_sequelize_cli_migrate_and_undo(tmp_path, dbname):
    """sequelize-cli runs each migration outside a transaction: the label is
    the functions' own argument. Its bookkeeping table is its own."""
    project = copy_example(tmp_path, "sequelize")
    run(project, dbname, tool("sequelize-cli"), "db:migrate")
    check_up(dbname, "20250601120100-blog-vectorizer")
    with connect(dbname) as conn:
        assert conn.execute('SELECT name FROM "SequelizeMeta" ORDER BY name').fetchall() == [
            ("20250601120000-blog.js",), ("20250601120100-blog-vectorizer.js",)]
    run(project, dbname, tool("sequelize-cli"), "db:migrate:undo")
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT to_regclass('blog') IS NOT NULL").fetchone()[0]
    run(project, dbname, tool("sequelize-cli"), "db:migrate:undo:all")
    check_down(dbname, "20250601120100-blog-vectorizer")

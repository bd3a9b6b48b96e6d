"""Prisma 6 run for real on examples/prisma: `prisma migrate deploy` applies
a table migration and a hand-written vectorizer migration (labelled with its
name), a later migration drops the vectorizer (Prisma has no down
migrations), and `prisma db pull` reads only the default schema.

Prisma runs with its JavaScript schema engine and @prisma/adapter-pg (see
the example's prisma.config.ts): the classic engine is a binary that the CLI
downloads from Prisma's own server at run time."""

import json
import os
import shutil
import subprocess
from urllib.parse import quote

import pytest

from conftest import CONNINFO, PGAI_MIGRATE_HOME, ROOT, client_env, connect, managed

NODE_MODULES = os.path.join(PGAI_MIGRATE_HOME, "npm-tools", "node_modules")
VERSIONS = {"prisma": "6.19.3", "@prisma/adapter-pg": "6.19.3"}
VECTORIZER_MIGRATION = "20250601120100_blog_vectorizer"
DROP_MIGRATION = "20250601120200_drop_blog_vectorizer"


def prisma(project, dbname, *args, check=True):
    path = os.path.join(NODE_MODULES, ".bin", "prisma")
    assert os.access(path, os.X_OK), f"{path} is missing: run scripts/setup.sh"
    url = f"postgres://{CONNINFO['user']}@{quote(CONNINFO['host'], safe='')}:{CONNINFO['port']}/{dbname}"
    # CHECKPOINT_DISABLE: no version check against Prisma's server.
    env = client_env(DATABASE_URL=url, CHECKPOINT_DISABLE="1", PRISMA_HIDE_UPDATE_MESSAGE="1")
    result = subprocess.run(
        [path, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, f"prisma {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "prisma"
    shutil.copytree(os.path.join(ROOT, "examples", "prisma"), dest)
    os.symlink(NODE_MODULES, dest / "node_modules")
    return dest


def history(dbname):
    with connect(dbname) as conn:
        return conn.execute(
            "SELECT vectorizer_name, operation, label, drop_all FROM migrate.revision ORDER BY id"
        ).fetchall()


def applied(dbname):
    with connect(dbname) as conn:
        return [r[0] for r in conn.execute(
            "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name"
        ).fetchall()]


def server_major(dbname):
    with connect(dbname) as conn:
        return conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0]


@pytest.mark.parametrize("package", sorted(VERSIONS))
def test_installed_versions(package):
    with open(os.path.join(NODE_MODULES, package, "package.json")) as f:
        assert json.load(f)["version"] == VERSIONS[package]


def test_prisma_migrate_deploy_creates_the_labelled_vectorizer(project, dbname):
    out = prisma(project, dbname, "migrate", "deploy").stdout
    assert "All migrations have been successfully applied." in out
    assert applied(dbname) == ["20250601120000_blog", VECTORIZER_MIGRATION]
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
        conn.execute("INSERT INTO blog VALUES (1, 'hello', 'first post')")
        assert conn.execute("SELECT id FROM migrate._vectorizer_q_1").fetchall() == [(1,)]
    assert history(dbname) == [("blog_content_embedder", "create", VECTORIZER_MIGRATION, None)]
    # Nothing left to do, and Prisma's bookkeeping agrees.
    assert "No pending migrations to apply." in prisma(project, dbname, "migrate", "deploy").stdout
    assert "Database schema is up to date!" in prisma(project, dbname, "migrate", "status").stdout


def test_prisma_new_migration_drops_the_vectorizer(project, dbname):
    """Prisma has no down migrations: undoing the vectorizer is a new
    migration that drops it."""
    prisma(project, dbname, "migrate", "deploy")
    drop = project / "prisma" / "migrations" / DROP_MIGRATION
    drop.mkdir()
    (drop / "migration.sql").write_text(
        "SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true,"
        f" label => '{DROP_MIGRATION}');\n"
    )
    prisma(project, dbname, "migrate", "deploy")
    assert applied(dbname) == ["20250601120000_blog", VECTORIZER_MIGRATION, DROP_MIGRATION]
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT to_regclass('blog') IS NOT NULL, to_regclass('blog_embeddings_store')").fetchone() == (True, None)
    assert history(dbname) == [
        ("blog_content_embedder", "create", VECTORIZER_MIGRATION, None),
        ("blog_content_embedder", "drop", DROP_MIGRATION, True),
    ]


def test_prisma_db_pull_reads_only_the_default_schema(project, dbname):
    """db pull sees the store table (a model with an Unsupported("vector")
    field; prisma.config.ts lists it as external, so Migrate leaves it
    alone), not the view (no `views` preview feature) nor schema migrate.
    On PostgreSQL 18 Prisma 6's JavaScript engine stops on the NOT NULL
    constraints that 18 records in pg_constraint (contype 'n'), for any
    table, ours or not."""
    prisma(project, dbname, "migrate", "deploy")
    result = prisma(project, dbname, "db", "pull", "--print", check=False)
    if server_major(dbname) >= 18:
        assert result.returncode != 0
        assert "RuntimeError: unreachable" in result.stderr
        return
    assert result.returncode == 0, result.stdout + result.stderr
    models = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("model ")]
    assert models == ["blog", "blog_embeddings_store"]
    assert 'embedding      Unsupported("vector")' in result.stdout
    assert "migrate" not in result.stdout and "_vectorizer" not in result.stdout


def test_prisma_migrate_dev_has_no_shadow_database_with_the_js_engine(project, dbname):
    """`migrate dev` replays the migrations on the shadow database; Prisma
    6.19's CLI never asks the adapter for one and replays them on the
    development database itself, which already has them (P3006). On
    PostgreSQL 18 it stops earlier, as db pull does."""
    prisma(project, dbname, "migrate", "deploy")
    result = prisma(project, dbname, "migrate", "dev", "--name", "next", "--skip-generate", check=False)
    assert result.returncode != 0
    if server_major(dbname) >= 18:
        assert "RuntimeError: unreachable" in result.stderr
        assert applied(dbname) == ["20250601120000_blog", VECTORIZER_MIGRATION]
        return
    assert "P3006" in result.stdout + result.stderr
    assert 'relation "blog" already exists' in result.stdout + result.stderr
    assert applied(dbname) == ["20250601120000_blog", VECTORIZER_MIGRATION]

"""Django (examples/django) with the real manage.py: `makemigrations --check`
finds nothing to do, `migrate` creates the extension, the table and the
vectorizer (labelled), `manage.py test` builds its test database with the
extension and the vectorizer, and migrating back removes the vectorizer."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, client_env, connect, managed

EXAMPLE = os.path.join(ROOT, "examples", "django")

django = pytest.importorskip("django", reason="Django is installed by scripts/setup.sh (requirements.txt)")


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "django"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def manage(project, dbname, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=project, env=client_env(PGAI_MIGRATE_DJANGO_DB=dbname),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_django_version():
    assert django.get_version() == "5.2.19"


def test_makemigrations_check_migrate_test_and_migrate_back(project, new_database):
    dbname = new_database(empty=True)  # migration 0001 creates the extension
    assert "No changes detected" in manage(project, dbname, "makemigrations", "--check", "--dry-run")

    manage(project, dbname, "migrate")
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
        assert conn.execute("SELECT vectorizer_name, operation, label FROM migrate.revision").fetchall() == [
            ("blog_content_embedder", "create", "blog.0002_vectorizer")
        ]
    # Still nothing to do once the vectorizer's relations exist.
    assert "No changes detected" in manage(project, dbname, "makemigrations", "--check", "--dry-run")

    out = manage(project, dbname, "test", "--noinput", "-v", "2")
    assert "Ran 1 test" in out and "\nOK" in out
    assert "Applying blog.0002_vectorizer... OK" in out  # on the test database
    with connect("postgres") as admin:  # the test database was dropped afterwards
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (f"test_{dbname}",)).fetchone()[0] == 0

    manage(project, dbname, "migrate", "blog", "0001")
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT operation, label, drop_all FROM migrate.revision ORDER BY id").fetchall() == [
            ("create", "blog.0002_vectorizer", None),
            ("drop", "blog.0002_vectorizer", True),
        ]
        assert conn.execute("SELECT to_regclass('blog_embeddings')").fetchone()[0] is None

"""sqitch (Debian's 1.3.1) runs examples/sqitch for real: deploy with
--verify, a verify script that fails when the vectorizer is missing, the
labelled history, revert."""

import os
import shutil
import subprocess

import pytest

from conftest import client_env, connect, managed, ROOT

SQITCH = shutil.which("sqitch")
pytestmark = pytest.mark.skipif(SQITCH is None and os.geteuid() != 0, reason="sqitch is installed by scripts/setup.sh as root")


def sqitch(project, dbname, *args, check=True):
    env = client_env(SQITCH_FULLNAME="Migration Test", SQITCH_EMAIL="test@example.com")
    p = subprocess.run([SQITCH or "sqitch", *args, f"db:pg:{dbname}"], cwd=project, env=env,
                       capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, f"sqitch {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p


def history(dbname):
    with connect(dbname) as conn:
        return conn.execute("SELECT vectorizer_name, operation, label, drop_all FROM migrate.revision ORDER BY id").fetchall()


def test_installed_version():
    out = subprocess.run([SQITCH or "sqitch", "--version"], capture_output=True, text=True, check=True).stdout
    assert "1.3.1" in out, out


def test_sqitch_deploy_verify_and_revert(tmp_path, dbname):
    project = tmp_path / "sqitch"
    shutil.copytree(os.path.join(ROOT, "examples", "sqitch"), project)
    p = sqitch(project, dbname, "deploy", "--verify")
    assert "+ blog_vectorizer .." in p.stdout
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
        conn.execute("INSERT INTO blog VALUES (1, 'hello', 'first post')")
        assert conn.execute("SELECT id FROM migrate._vectorizer_q_1").fetchall() == [(1,)]
    assert history(dbname) == [("blog_content_embedder", "create", "blog_vectorizer", None)]
    assert "Verify successful" in sqitch(project, dbname, "verify").stdout

    # The verify script can fail: without the vectorizer it does.
    with connect(dbname) as conn:
        conn.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    p = sqitch(project, dbname, "verify", check=False)
    assert p.returncode != 0 and "blog_vectorizer" in p.stdout + p.stderr
    with connect(dbname) as conn:
        conn.execute("SELECT set_config('migrate.revision_label', 'blog_vectorizer', false)")
        conn.execute("SELECT migrate.restore_vectorizer('blog_content_embedder')")
    assert "Verify successful" in sqitch(project, dbname, "verify").stdout

    sqitch(project, dbname, "revert", "-y")
    with connect(dbname) as conn:
        assert managed(conn) == []
        assert conn.execute("SELECT to_regclass('blog')").fetchone() == (None,)
    assert [r[1:3] for r in history(dbname)][-1] == ("drop", "blog_vectorizer")

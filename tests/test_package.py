"""The binary package a DBA installs (scripts/package.sh): its install.sh
puts the library and SQL scripts into a copy of the test server's PostgreSQL
install (18, or 16 in scripts/test.sh's second run), with the extension's
files removed first; a cluster started from the copy creates the extension
and a working vectorizer; install.sh refuses a pg_config of another major
version."""

import os
import platform
import pwd
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import BLOG_CONFIG, CONNINFO, ROOT, create_blog, create_vectorizer, pg_tool, queued


def version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        return re.search(r'^version = "(.*)"', f.read(), re.M).group(1)


def server_major():
    out = subprocess.check_output([pg_tool("pg_config"), "--version"], text=True)
    return int(re.match(r"PostgreSQL (\d+)", out).group(1))


MAJOR = server_major()


def package_name(major=MAJOR):
    return f"pgai_migrate-{version()}-pg{major}-linux-{platform.machine()}"


def as_postgres(cmd, **kw):
    if os.geteuid() == 0:
        cmd = ["sudo", "-u", "postgres", "-H", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def unpacked():
    """The package for the server's major, built (cargo reuses target/) and
    unpacked into a folder the postgres OS user can read."""
    ok(subprocess.run([os.path.join(ROOT, "scripts", "package.sh"), str(MAJOR)], cwd=ROOT,
                      capture_output=True, text=True, timeout=1800))
    base = Path(tempfile.mkdtemp(prefix="pgai-package-"))
    base.chmod(0o755)
    with tarfile.open(os.path.join(ROOT, "dist", package_name() + ".tar.gz")) as tar:
        tar.extractall(base, filter="tar")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_copy(unpacked):
    """A copy of the server's PostgreSQL install without pgai_migrate's files."""
    source = Path(pg_tool("pg_config")).parent.parent
    # The embedded install's programs find libpq through the RPATH
    # $ORIGIN/../../../<package>.libs: copy that folder too, at the same place.
    site = unpacked / "site"
    shutil.rmtree(site, ignore_errors=True)
    dest = site / source.parent.name / source.name
    shutil.copytree(source, dest, symlinks=True)
    libs = source.parent.parent / f"{source.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    config = str(dest / "bin" / "pg_config")
    pkglibdir = subprocess.check_output([config, "--pkglibdir"], text=True).strip()
    extdir = Path(subprocess.check_output([config, "--sharedir"], text=True).strip()) / "extension"
    assert pkglibdir.startswith(str(dest)) and str(extdir).startswith(str(dest)), "the install is not relocatable"
    for f in [Path(pkglibdir) / "pgai_migrate.so", *extdir.glob("pgai_migrate*")]:
        f.unlink(missing_ok=True)
    return dest


def test_package_holds_the_library_control_file_and_every_script(unpacked):
    name = package_name()
    path = os.path.join(ROOT, "dist", name + ".tar.gz")
    # Its checksum file verifies it, as a DBA would check a download.
    ok(subprocess.run(["sha256sum", "--check", "--status", name + ".tar.gz.sha256"], cwd=os.path.join(ROOT, "dist"),
                      capture_output=True, text=True))
    with tarfile.open(path) as tar:
        names = {n[len(name) + 1:] for n in tar.getnames() if n.startswith(name + "/")}
    updates = sorted(p for p in os.listdir(os.path.join(ROOT, "sql")) if re.fullmatch(r"pgai_migrate--.*--.*\.sql", p))
    assert updates, "no update scripts in sql/"
    expected = {"install.sh", "INSTALL", "lib/pgai_migrate.so", "share/extension/pgai_migrate.control",
                f"share/extension/pgai_migrate--{version()}.sql", *(f"share/extension/{u}" for u in updates)}
    assert expected <= names, expected - names


def test_install_sh_installs_into_a_copy_of_the_postgresql_install(unpacked, pg_copy):
    script = unpacked / package_name() / "install.sh"
    out = ok(subprocess.run([str(script), str(pg_copy / "bin" / "pg_config")], capture_output=True, text=True)).stdout
    assert "installed pgai_migrate" in out
    # 0.2.0 as released (scripts/released.sh builds its library for 18 only).
    config = str(pg_copy / "bin" / "pg_config")
    home = os.environ.get("PGAI_MIGRATE_HOME", "/opt/pgai_migrate")
    released = os.path.join(home, "released", "0.2.0", "pgai_migrate-0.2.0.so") if MAJOR == 18 else None
    if released is not None:
        assert os.path.exists(released), "scripts/released.sh has not built 0.2.0"
        shutil.copy(released, subprocess.check_output([config, "--pkglibdir"], text=True).strip())
        shutil.copy(os.path.join(ROOT, "sql", "released", "pgai_migrate--0.2.0.sql"),
                    os.path.join(subprocess.check_output([config, "--sharedir"], text=True).strip(), "extension"))

    data = unpacked / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
    bindir = pg_copy / "bin"
    port = CONNINFO["port"] + 23
    ok(as_postgres([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C.UTF-8"]))
    ok(as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-l", f"{data}/server.log", "-w",
                    "-o", f"-p {port} -k {data} -c listen_addresses=''", "start"]))
    try:
        with psycopg.connect(host=str(data), port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgai_migrate'").fetchone() == (version(),)
            # The update scripts are there: every released version updates to this one.
            paths = c.execute(
                "SELECT source FROM pg_extension_update_paths('pgai_migrate') WHERE target = %s AND path IS NOT NULL ORDER BY 1",
                (version(),),
            ).fetchall()
            assert ("0.1.0",) in paths
            create_blog(c)
            assert create_vectorizer(c, BLOG_CONFIG) == 1
            assert queued(c) == [1, 2, 3]
            c.execute("INSERT INTO blog VALUES (4, 'four', 'content 4')")
            assert queued(c) == [1, 2, 3, 4]
            kinds = [r[0] for r in c.execute("SELECT kind FROM migrate.managed_tables()").fetchall()]
            assert kinds == ["store", "view", "queue", "failed_queue"]
        if released is None:
            return
        # The previous release as a DBA had it installed, then the package's
        # update scripts: ALTER EXTENSION … UPDATE keeps its vectorizer.
        with psycopg.connect(host=str(data), port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE old_release")
        with psycopg.connect(host=str(data), port=port, user="postgres", dbname="old_release", autocommit=True) as c:
            c.execute("CREATE EXTENSION vector")
            c.execute("CREATE EXTENSION pgai_migrate VERSION '0.2.0'")
            create_blog(c)
            assert create_vectorizer(c, BLOG_CONFIG) == 1
            # 0.2.0's library is kept under its own name here; installing the
            # package replaces a real install's pgai_migrate.so.
            c.execute("UPDATE pg_proc SET probin = '$libdir/pgai_migrate' WHERE probin = '$libdir/pgai_migrate-0.2.0'")
        with psycopg.connect(host=str(data), port=port, user="postgres", dbname="old_release", autocommit=True) as c:
            c.execute("ALTER EXTENSION pgai_migrate UPDATE")
            assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgai_migrate'").fetchone() == (version(),)
            c.execute("INSERT INTO blog VALUES (4, 'four', 'content 4')")
            assert queued(c) == [1, 2, 3, 4]
            assert c.execute("SELECT name FROM migrate.vectorizer").fetchall() == [(BLOG_CONFIG["name"],)]
    finally:
        as_postgres([f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])


def test_install_sh_refuses_a_pg_config_of_another_major(unpacked, tmp_path):
    """A stand-in pg_config (a real one of the other major would point at
    an install other tests use): folders in tmp_path that must stay empty."""
    other = 16 if MAJOR == 18 else 18
    fake = tmp_path / "pg_config"
    fake.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        f"  --version) echo 'PostgreSQL {other}.1' ;;\n"
        f"  --pkglibdir) echo '{tmp_path}/lib' ;;\n"
        f"  --sharedir) echo '{tmp_path}/share' ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    script = unpacked / package_name() / "install.sh"
    r = subprocess.run([str(script), str(fake)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"this package is for PostgreSQL {MAJOR}, but" in r.stderr and f"PostgreSQL {other}.1" in r.stderr
    assert not (tmp_path / "lib").exists() and not (tmp_path / "share").exists()

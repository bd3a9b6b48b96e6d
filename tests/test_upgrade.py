"""Extension versions: 0.1.0 installed exactly as released (its install
script from sql/released/ and its own library, built from the release's
commit by scripts/released.sh), used, then the package upgraded and
`ALTER EXTENSION pgai_migrate UPDATE` run: nothing is lost, everything
works, and the result is the same schema as a fresh install.

Also pg_upgrade: `pg_upgrade --check` passes on a cluster with the
extension and vectorizers (two clusters of the same binaries)."""

import json
import os
import subprocess

import psycopg
import pytest

from conftest import BLOG_CONFIG, CONNINFO, connect, create_blog, create_vectorizer, pg_tool, queued

pytestmark = pytest.mark.usefixtures("server_watch")

ZERO = "array_fill(0, ARRAY[768])::vector"
CURRENT = "0.5.0"


def released_installed(conn, version):
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_available_extension_versions WHERE name = 'pgai_migrate' AND version = %s)",
        (version,),
    ).fetchone()[0]


@pytest.fixture
def empty_db(new_database):
    name = new_database(empty=True)
    with connect(name) as c:
        assert released_installed(c, "0.1.0"), "pgai_migrate 0.1.0 is not installed: run scripts/setup.sh (scripts/released.sh)"
        c.execute("CREATE EXTENSION vector")
    return name


def use_0_1_0(c, worker):
    """What a 0.1.0 user had: two vectorizers (one with grant_to, one on a
    varchar key, whose view 0.1.0 bound to an `=` found by name), queued
    work, stored embeddings, history, a failed item."""
    c.execute("CREATE EXTENSION pgai_migrate VERSION '0.1.0'")
    assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgai_migrate'").fetchone()[0] == "0.1.0"
    create_blog(c)
    with c.transaction():
        c.execute("SET LOCAL migrate.revision_label = 'v1'")
        create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [worker]})
    c.execute("CREATE SCHEMA mal")
    c.execute("CREATE FUNCTION mal.eq(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT $1::text = $2::text $$")
    c.execute("CREATE OPERATOR mal.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = mal.eq)")
    c.execute("CREATE TABLE docs (id varchar(20) PRIMARY KEY, title text, content text)")
    c.execute("INSERT INTO docs VALUES ('a', 't', 'x'), ('b', 't', 'y')")
    create_vectorizer(c, {**BLOG_CONFIG, "source": "docs", "name": "docs_v",
                          "destination": {"implementation": "table", "destination": "docs_emb"}})
    c.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', {ZERO}), (2, 0, 'd', {ZERO})")
    c.execute("INSERT INTO blog VALUES (4, 'title 4', 'content 4')")
    c.execute("DELETE FROM blog WHERE id = 2")
    c.execute("INSERT INTO migrate._vectorizer_q_failed_1 (id, failure_step) VALUES (3, 'loading')")


def snapshot(c):
    rows = lambda sql: c.execute(sql).fetchall()  # noqa: E731
    return dict(
        vectorizers=rows("SELECT id, name, source::text, config, created_by FROM migrate.vectorizer ORDER BY id"),
        revisions=rows("SELECT id, vectorizer_id, vectorizer_name, operation, config, label FROM migrate.revision ORDER BY id"),
        queue=queued(c),
        docs_queue=queued(c, "docs_v"),
        failed=rows("SELECT id, failure_step FROM migrate._vectorizer_q_failed_1"),
        store=rows("SELECT embedding_uuid, id, chunk_seq, chunk FROM blog_embeddings_store ORDER BY 2, 3"),
        view=rows("SELECT id, chunk, title FROM blog_embeddings ORDER BY 1"),
        managed=rows("SELECT vectorizer_id, kind, schema_name::text, table_name::text, relid::text FROM migrate.managed_tables() ORDER BY 1, 2"),
    )


def schema_of_extension(c):
    """The extension's own objects, comparable between an updated and a
    fresh install."""
    rows = lambda sql: c.execute(sql).fetchall()  # noqa: E731
    return dict(
        functions=rows(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text FROM pg_proc p "
            "JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' "
            "JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgai_migrate' ORDER BY 1"
        ),
        columns=rows(
            "SELECT attrelid::regclass::text, attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE attrelid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'migrate'::regnamespace "
            "AND c.relkind IN ('r', 'v') AND c.relname NOT LIKE '\\_vectorizer\\_q\\_%') "
            "AND attnum > 0 AND NOT attisdropped ORDER BY 1, attnum"
        ),
        event_triggers=rows("SELECT evtname, evtevent, evtfoid::regproc::text, evttags FROM pg_event_trigger ORDER BY 1"),
        relations=rows(
            "SELECT c.oid::regclass::text, c.relkind, c.relacl::text, c.reloptions::text, "
            "CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END FROM pg_class c "
            "JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e' "
            "JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgai_migrate' ORDER BY 1"
        ),
        policies=rows("SELECT polrelid::regclass::text, polname, polcmd, pg_get_expr(polqual, polrelid), "
                      "pg_get_expr(polwithcheck, polrelid) FROM pg_policy ORDER BY 1, 2"),
        # Schema migrate is a member; the extension lives in vector's schema.
        layout=rows(
            "SELECT e.extnamespace = v.extnamespace, EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass "
            "AND d.objid = 'migrate'::regnamespace AND d.refobjid = e.oid AND d.deptype = 'e') "
            "FROM pg_extension e, pg_extension v WHERE e.extname = 'pgai_migrate' AND v.extname = 'vector'"
        ),
    )


def test_update_from_0_1_0_as_released(roles, empty_db, new_database):
    worker = roles("worker")
    with connect(empty_db) as c:
        use_0_1_0(c, worker)
        before = snapshot(c)
        assert before["queue"] == [1, 3, 4]
        # 0.1.0's join for the varchar key was bound to mal's operator.
        assert c.execute(
            "SELECT count(*) FROM pg_depend d JOIN pg_rewrite w ON d.objid = w.oid "
            "WHERE w.ev_class = 'docs_emb'::regclass AND d.refclassid = 'pg_operator'::regclass"
        ).fetchone()[0] == 1

        # The package is upgraded: 0.1.0's functions now reach the new
        # library. Its C entry points fail cleanly (no crash); its
        # triggers (PL/pgSQL) keep queueing.
        c.execute("UPDATE pg_proc SET probin = '$libdir/pgai_migrate' WHERE probin = '$libdir/pgai_migrate-0.1.0'")
        with pytest.raises(psycopg.errors.UndefinedFunction) as e:
            c.execute("SELECT * FROM migrate.managed_tables()")
        assert "could not find function" in e.value.diag.message_primary
        c.execute("INSERT INTO blog VALUES (5, 'title 5', 'content 5')")

        c.execute("ALTER EXTENSION pgai_migrate UPDATE")
        assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgai_migrate'").fetchone()[0] == CURRENT
        after = snapshot(c)
        assert after["queue"] == [1, 3, 4, 5]
        for key in ["vectorizers", "revisions", "docs_queue", "failed", "store", "view", "managed"]:
            assert after[key] == before[key], key

        # Nothing of 0.1.0's generated code is left; the triggers call the
        # extension's function; the catalog has no reg* column pg_upgrade refuses.
        assert c.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_vectorizer\\_src\\_trg\\_%'").fetchone()[0] == 0
        assert c.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgfoid = 'migrate._vectorizer_trigger()'::regprocedure"
        ).fetchone()[0] == 8
        assert c.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'migrate.vectorizer'::regclass AND NOT attisdropped "
            "AND atttypid IN ('regprocedure'::regtype, 'regproc'::regtype, 'regoper'::regtype, 'regoperator'::regtype)"
        ).fetchone()[0] == 0
        # The varchar key's view is rebuilt on pg_catalog's operator.
        assert c.execute(
            "SELECT count(*) FROM pg_depend d JOIN pg_rewrite w ON d.objid = w.oid "
            "WHERE w.ev_class = 'docs_emb'::regclass AND d.refclassid = 'pg_operator'::regclass"
        ).fetchone()[0] == 0
        assert c.execute("SELECT read_columns FROM migrate.vectorizer ORDER BY id").fetchall() == [
            (["id", "title", "content"],), (["id", "title", "content"],)]

        # Everything works as in a fresh install.
        c.execute("INSERT INTO blog VALUES (6, 'title 6', 'content 6')")
        c.execute("UPDATE blog SET views = views + 1")
        c.execute("UPDATE blog SET content = 'edited' WHERE id = 1")
        c.execute("DELETE FROM blog WHERE id = 1")
        assert queued(c) == [3, 4, 5, 6]
        c.execute("UPDATE docs SET id = 'bb' WHERE id = 'b'")
        assert queued(c, "docs_v") == ["a", "bb"]
        with pytest.raises(psycopg.errors.DependentObjectsStillExist):
            c.execute("DROP TABLE blog_embeddings_store CASCADE")
        c.execute("SELECT migrate.drop_vectorizer('docs_v', drop_all => true)")
        create_blog(c, table="post")
        new_id = create_vectorizer(c, {**BLOG_CONFIG, "source": "post", "name": "post_v",
                                       "destination": {"implementation": "table", "destination": "post_e"}})
        assert new_id == 3
        updated = schema_of_extension(c)

    fresh = new_database(empty=True)
    with connect(fresh) as c:
        c.execute("CREATE EXTENSION pgai_migrate CASCADE")
        assert schema_of_extension(c) == updated


def test_update_from_0_2_0_as_released(roles, new_database):
    """0.2.0 as released, in use; the package is upgraded; its entry points
    whose arguments changed fail cleanly until the update; the update keeps
    everything, and the result equals a fresh install."""
    db = new_database(empty=True)
    worker = roles("worker")
    with connect(db) as c:
        assert released_installed(c, "0.2.0"), "pgai_migrate 0.2.0 is not installed: run scripts/setup.sh (scripts/released.sh)"
        c.execute("CREATE EXTENSION vector")
        c.execute("CREATE EXTENSION pgai_migrate VERSION '0.2.0'")
        create_blog(c)
        with c.transaction():
            c.execute("SET LOCAL migrate.revision_label = 'v1'")
            create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [worker]})
        c.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', {ZERO})")
        c.execute("DELETE FROM migrate._vectorizer_q_1 WHERE id = 2")
        before = c.execute("SELECT id, name, config, grants FROM migrate.vectorizer").fetchall()
        revisions = c.execute("SELECT id, operation, config, label FROM migrate.revision ORDER BY id").fetchall()

        # The package is upgraded (0.2.0's functions name module
        # 'pgai_migrate', now the new library): entry points whose
        # arguments changed refuse with what to do; the rest keep working.
        c.execute("UPDATE pg_proc SET probin = 'pgai_migrate' WHERE probin = '$libdir/pgai_migrate-0.2.0'")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder')")
        assert e.value.diag.message_primary == (
            "migrate.drop_vectorizer(text, boolean, boolean) belongs to an older version of pgai_migrate than the installed library")
        assert e.value.diag.message_hint == "run ALTER EXTENSION pgai_migrate UPDATE in this database"
        assert c.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 4
        c.execute("INSERT INTO blog VALUES (5, 'title 5', 'content 5')")
        assert queued(c) == [1, 3, 5]

        c.execute("ALTER EXTENSION pgai_migrate UPDATE")
        assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgai_migrate'").fetchone()[0] == CURRENT
        assert c.execute("SELECT id, name, config, grants FROM migrate.vectorizer").fetchall() == before
        assert c.execute("SELECT id, operation, config, label FROM migrate.revision ORDER BY id").fetchall() == revisions
        assert c.execute("SELECT id, chunk FROM blog_embeddings").fetchall() == [(1, "c")]
        # the statement-level trigger was added to the existing vectorizer
        assert c.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal ORDER BY 1").fetchall() == [
            ("_vectorizer_src_trg_1",), ("_vectorizer_src_trg_1_stmt",), ("_vectorizer_src_trg_1_truncate",), ("_vectorizer_src_trg_1_upd",)]
        c.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 12) g")
        assert queued(c) == [1, 3, 5, 10, 11, 12]
        c.execute("DELETE FROM blog WHERE id >= 10")
        # 0.3.0's operations on a vectorizer 0.2.0 made
        c.execute("SELECT migrate.alter_vectorizer('blog_content_embedder', '{\"chunking\": {\"chunk_size\": 500}}', reembed => true, label => 'v2')")
        assert queued(c) == [1, 2, 3, 5]
        c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', label => 'v3')")
        c.execute("SELECT migrate.restore_vectorizer('blog_content_embedder')")
        assert c.execute("SELECT id, chunk FROM blog_embeddings").fetchall() == [(1, "c")]
        assert [r[0] for r in c.execute("SELECT label FROM migrate.revision ORDER BY id").fetchall()] == ["v1", "v2", "v3", None]
        updated = schema_of_extension(c)
        c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")

    fresh = new_database(empty=True)
    with connect(fresh) as c:
        c.execute("CREATE EXTENSION pgai_migrate CASCADE")
        assert schema_of_extension(c) == updated


def as_postgres(cmd, **kw):
    if os.geteuid() == 0:
        cmd = ["sudo", "-u", "postgres", "-H", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_pg_upgrade_check_passes(template_db):
    """A second cluster of the same binaries, with the extension and a
    vectorizer, and an empty new one: pg_upgrade --check accepts them."""
    # Beside the test server's data: a folder the postgres user can use.
    from pathlib import Path

    base = Path(CONNINFO["host"]) / f"pg_upgrade_{os.getpid()}"
    as_postgres(["rm", "-rf", str(base)])
    r = as_postgres(["mkdir", "-p", str(base)])
    assert r.returncode == 0, r.stderr
    old, new = base / "old", base / "new"
    bindir = os.path.dirname(pg_tool("pg_ctl"))
    port = CONNINFO["port"] + 7
    for d in (old, new):
        r = as_postgres([f"{bindir}/initdb", "-D", str(d), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
        assert r.returncode == 0, r.stderr
    r = as_postgres([f"{bindir}/pg_ctl", "-D", str(old), "-l", str(base / "old.log"), "-w",
                     "-o", f"-p {port} -k {base} -c listen_addresses=''", "start"])
    assert r.returncode == 0, r.stderr
    try:
        with psycopg.connect(host=str(base), port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE app")
        with psycopg.connect(host=str(base), port=port, user="postgres", dbname="app", autocommit=True) as c:
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            create_blog(c)
            create_vectorizer(c, BLOG_CONFIG)
    finally:
        as_postgres([f"{bindir}/pg_ctl", "-D", str(old), "-m", "fast", "-w", "stop"])
    r = as_postgres([f"{bindir}/pg_upgrade", "--check", "-b", bindir, "-B", bindir, "-d", str(old), "-D", str(new),
                     "-p", str(port), "-P", str(port + 1), "-s", str(base)], cwd=str(base))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Clusters are compatible" in r.stdout, r.stdout
    as_postgres(["rm", "-rf", str(base)])

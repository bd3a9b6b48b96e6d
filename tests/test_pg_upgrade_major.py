"""pg_upgrade from PostgreSQL 16 to 18 with vectorizers in the cluster: a
table and a column destination, a partitioned source, a queued backlog,
revisions and an error row made on 16; `pg_upgrade --check`, then
`pg_upgrade` into an 18 cluster with the extension installed; afterwards
nothing is lost and everything works (queueing, the worker draining, alter,
restore, drop).

Needs both installs: scripts/test.sh exports PGAI_MIGRATE_PG16_INSTALL (the
PostgreSQL 16 that scripts/setup.sh installs) and the 18 one is the test
server's."""

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import CONNINFO, pg_tool
from worker_helpers import worker_bin, worker_env

PG16 = os.environ.get("PGAI_MIGRATE_PG16_INSTALL")
pytestmark = pytest.mark.skipif(not PG16, reason="PGAI_MIGRATE_PG16_INSTALL is not set (scripts/test.sh sets it)")

MODEL = {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}


def as_postgres(cmd, **kw):
    if os.geteuid() == 0:
        cmd = ["sudo", "-u", "postgres", "-H", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r


class Cluster:
    def __init__(self, bindir, data, sock, port):
        self.bindir, self.data, self.sock, self.port = bindir, data, sock, port

    def initdb(self, *extra):
        ok(as_postgres([f"{self.bindir}/initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C.UTF-8", *extra]))

    def start(self):
        ok(as_postgres([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l", f"{self.data}.log", "-w",
                        "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=''", "start"]))

    def stop(self):
        as_postgres([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def connect(self, dbname="app"):
        return psycopg.connect(host=str(self.sock), port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def dsn(self, dbname="app"):
        return f"host={self.sock} port={self.port} user=postgres dbname={dbname}"


def vectorizer(c, cfg):
    return c.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps(cfg),)).fetchone()[0]


def snapshot(c):
    """What must survive: definitions, revisions, queues, stores, errors."""
    vs = c.execute("SELECT id, name, config FROM migrate.vectorizer ORDER BY id").fetchall()
    out = {
        "vectorizers": vs,
        "revisions": c.execute("SELECT id, vectorizer_name, operation, label FROM migrate.revision ORDER BY id").fetchall(),
        "managed": sorted(c.execute("SELECT kind, schema_name, table_name FROM migrate.managed_tables()").fetchall()),
        "errors": c.execute("SELECT count(*) FROM migrate.vectorizer_errors").fetchone()[0],
    }
    for vid, _, _ in vs:
        out[f"queue_{vid}"] = c.execute(f"SELECT count(*) FROM migrate._vectorizer_q_{vid}").fetchone()[0]
    out["store"] = c.execute("SELECT id, chunk_seq, chunk, embedding::text FROM docs_embeddings_store ORDER BY 1, 2").fetchall()
    return out


def run_worker(cluster):
    p = subprocess.run([worker_bin(), "run", "--db", cluster.dsn(), "--once", "--retry-delay", "0"],
                       capture_output=True, text=True, timeout=300, env=worker_env({}))
    assert p.returncode == 0, p.stderr


def test_pg_upgrade_16_to_18_keeps_and_runs_every_vectorizer():
    bin16 = os.path.join(PG16, "bin")
    bin18 = os.path.dirname(pg_tool("pg_ctl"))
    assert "16." in ok(subprocess.run([f"{bin16}/pg_config", "--version"], capture_output=True, text=True)).stdout
    assert "18." in ok(subprocess.run([f"{bin18}/pg_config", "--version"], capture_output=True, text=True)).stdout

    base = Path(CONNINFO["host"]) / f"pg_upgrade_major_{os.getpid()}"
    as_postgres(["rm", "-rf", str(base)])
    ok(as_postgres(["mkdir", "-p", str(base)]))
    port = CONNINFO["port"] + 17
    old = Cluster(bin16, base / "old", base, port)
    new = Cluster(bin18, base / "new", base, port + 1)
    old.initdb()
    # 18's initdb turns data checksums on by default; pg_upgrade needs the
    # old cluster's setting.
    new.initdb("--no-data-checksums")

    old.start()
    try:
        with old.connect("postgres") as c:
            c.execute("CREATE DATABASE app")
        with old.connect() as c:
            assert c.info.server_version // 10000 == 16
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            c.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text)")
            c.execute("INSERT INTO docs SELECT g, 'title ' || g, 'body of document ' || g FROM generate_series(1, 20) g")
            vectorizer(c, {"source": "docs", "name": "docs_v", "loading": {"implementation": "column", "column_name": "body"},
                           "destination": {"implementation": "table", "destination": "docs_embeddings"},
                           "chunking": {"implementation": "none"}, "embedding": MODEL})
            # Embedded on 16: the store carries rows across.
            run_worker(old)
            assert c.execute("SELECT count(*) FROM docs_embeddings_store").fetchone()[0] == 20
            c.execute("UPDATE docs SET body = body || ' (edited)' WHERE id <= 5")   # a backlog of 5

            c.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, embedding vector(384))")
            c.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 3) g")
            vectorizer(c, {"source": "notes", "name": "notes_v", "loading": {"implementation": "column", "column_name": "body"},
                           "destination": {"implementation": "column", "embedding_column": "embedding"},
                           "chunking": {"implementation": "none"}, "embedding": MODEL})

            c.execute("CREATE TABLE events (id int, at date, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)")
            c.execute("CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
            c.execute("INSERT INTO events VALUES (1, '2026-03-01', 'an event')")
            vectorizer(c, {"source": "events", "name": "events_v", "loading": {"implementation": "column", "column_name": "body"},
                           "destination": {"implementation": "table", "destination": "events_embeddings"},
                           "chunking": {"implementation": "none"}, "embedding": MODEL})
            c.execute("""SELECT migrate.alter_vectorizer('events_v', '{"processing": {"batch_size": 7}}', label => '0002')""")
            c.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message) VALUES (1, 'kept across the upgrade')")
            before = snapshot(c)
        assert before["queue_1"] == 5 and before["queue_2"] == 3 and before["queue_3"] == 1
        assert len(before["revisions"]) == 4
    finally:
        old.stop()

    args = ["-b", bin16, "-B", bin18, "-d", str(old.data), "-D", str(new.data),
            "-p", str(old.port), "-P", str(new.port), "-s", str(base)]
    r = ok(as_postgres([f"{bin18}/pg_upgrade", "--check", *args], cwd=str(base)))
    assert "Clusters are compatible" in r.stdout, r.stdout
    ok(as_postgres([f"{bin18}/pg_upgrade", *args], cwd=str(base)))

    new.start()
    try:
        with new.connect() as c:
            assert c.info.server_version // 10000 == 18
            # What README's upgrade section says to run afterwards.
            c.execute("ALTER EXTENSION vector UPDATE")
            c.execute("ALTER EXTENSION pgai_migrate UPDATE")
            assert snapshot(c) == before

            # Triggers still queue; the worker drains all three on 18.
            c.execute("INSERT INTO docs VALUES (21, 'new', 'written after the upgrade')")
            c.execute("INSERT INTO events VALUES (2, '2026-04-01', 'another event')")
            assert c.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0] == 6
            run_worker(new)
            for vid in (1, 2, 3):
                assert c.execute(f"SELECT count(*) FROM migrate._vectorizer_q_{vid}").fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM docs_embeddings_store").fetchone()[0] == 21
            assert c.execute("SELECT count(*) FROM docs_embeddings WHERE chunk LIKE '%(edited)'").fetchone()[0] == 5
            assert c.execute("SELECT count(*) FROM notes WHERE embedding IS NOT NULL").fetchone()[0] == 3
            assert c.execute("SELECT count(*) FROM events_embeddings").fetchone()[0] == 2

            # Alter, restore and drop work on the upgraded definitions.
            c.execute("""SELECT migrate.alter_vectorizer('docs_v', '{"processing": {"batch_size": 3}}')""")
            c.execute("SELECT migrate.drop_vectorizer('events_v', drop_all => true)")
            c.execute("SELECT migrate.restore_vectorizer('events_v')")
            assert c.execute("SELECT config->'processing'->>'batch_size' FROM migrate.vectorizer WHERE name = 'events_v'"
                             ).fetchone()[0] == "7"
            # Restored with the rows to embed again.
            assert c.execute("SELECT count(*) FROM migrate._vectorizer_q_4").fetchone()[0] == 2
            c.execute("SELECT migrate.drop_vectorizer('notes_v', drop_all => true)")
            assert [r[0] for r in c.execute("SELECT name FROM migrate.vectorizer ORDER BY id")] == ["docs_v", "events_v"]
            assert c.execute("SELECT to_regclass('migrate._vectorizer_q_2')").fetchone()[0] is None
            c.execute("INSERT INTO notes VALUES (9, 'not queued any more')")
    finally:
        new.stop()
        as_postgres(["rm", "-rf", str(base)])

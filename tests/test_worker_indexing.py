"""The worker builds the vector index `indexing` asks for, as pgai's worker
does: once the store holds `min_rows` embeddings (and the queue is empty
when `create_when_queue_empty`), once, as the source's owner, with
pgvector's operator class; an alter of `indexing` rebuilds it, `none` drops
it, and what cannot be built is an error row (step `indexing`)."""

import json
import subprocess

import psycopg
import pytest

from conftest import connect
from worker_helpers import blog, embedding_server, errors, run_worker, vectorizer, wdb  # noqa: F401

POSTS = [(i, f"Title {i}", f"Post number {i} talks about topic {i % 3} at some length.") for i in range(1, 9)]


def hnsw(**kw):
    return {"implementation": "hnsw", "opclass": "vector_cosine_ops", "create_when_queue_empty": True, **kw}


def our_indexes(conn, table="blog_embeddings_store"):
    """(name, definition, comment) of the indexes this project built on `table`."""
    return conn.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid), obj_description(i.indexrelid, 'pg_class')
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %s::regclass
             AND starts_with(coalesce(obj_description(i.indexrelid, 'pg_class'), ''), 'pgai_migrate vector index')
           ORDER BY 1""", (table,)).fetchall()


def alter(conn, changes):
    conn.execute("SELECT migrate.alter_vectorizer('blog_vec', %s::jsonb)", (json.dumps(changes),))


def test_an_hnsw_index_is_built_once_min_rows_is_reached_and_searches_use_it(wdb):
    blog(wdb, POSTS[:4])
    vectorizer(wdb, chunking="none", indexing=hnsw(min_rows=6, m=8, ef_construction=32))
    run_worker(wdb.info.dbname)
    assert our_indexes(wdb) == [], "4 rows: below min_rows"
    for r in POSTS[4:]:
        wdb.execute("INSERT INTO blog (id, title, content) VALUES (%s, %s, %s)", r)
    run_worker(wdb.info.dbname)
    assert errors(wdb) == []
    [(name, definition, comment)] = our_indexes(wdb)
    assert name == "blog_embeddings_store_embedding_idx"
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m='8', ef_construction='32')" in definition
    assert comment == "pgai_migrate vector index: hnsw vector_cosine_ops m=8 ef_construction=32"
    # The owner's index, in the store's schema.
    assert wdb.execute("SELECT relowner = (SELECT relowner FROM pg_class WHERE oid = 'blog'::regclass) "
                       "FROM pg_class WHERE relname = %s", (name,)).fetchone()[0]
    wdb.execute("SET enable_seqscan = off")
    probe = wdb.execute("SELECT embedding::text FROM blog_embeddings_store LIMIT 1").fetchone()[0]
    plan = "\n".join(r[0] for r in wdb.execute(
        "EXPLAIN SELECT id FROM blog_embeddings_store ORDER BY embedding <=> %s::vector LIMIT 3", (probe,)))
    assert f"Index Scan using {name}" in plan, plan
    # A second run changes nothing.
    p = run_worker(wdb.info.dbname)
    assert "created index" not in p.stderr and len(our_indexes(wdb)) == 1


def test_create_when_queue_empty_waits_for_the_queue(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb, chunking="none", indexing=hnsw(min_rows=3))
    run_worker(wdb.info.dbname, "--vectorizer", "nothing-matches-this", check=False)
    # The worker's entry point decides; with keys still queued it waits.
    assert wdb.execute("SELECT migrate.worker_index(1)").fetchone()[0] is None
    assert our_indexes(wdb) == []
    run_worker(wdb.info.dbname)
    assert len(our_indexes(wdb)) == 1
    wdb.execute("DROP INDEX blog_embeddings_store_embedding_idx")
    wdb.execute("UPDATE blog SET content = content || '!' WHERE id = 1")  # queued again
    assert wdb.execute("SELECT migrate.worker_index(1)").fetchone()[0] is None
    alter(wdb, {"indexing": hnsw(min_rows=3, create_when_queue_empty=False)})
    assert wdb.execute("SELECT migrate.worker_index(1)").fetchone()[0] == \
        "created index blog_embeddings_store_embedding_idx"


def test_an_alter_of_indexing_rebuilds_and_none_drops(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb, chunking="none", indexing=hnsw(min_rows=2, m=8))
    run_worker(wdb.info.dbname)
    [(_, d, _)] = our_indexes(wdb)
    assert "m='8'" in d
    alter(wdb, {"indexing": {"implementation": "hnsw", "min_rows": 2, "m": 16, "opclass": "vector_l2_ops"}})
    p = run_worker(wdb.info.dbname)
    assert "dropped index blog_embeddings_store_embedding_idx; created index" in p.stderr, p.stderr
    [(_, d, _)] = our_indexes(wdb)
    assert "USING hnsw (embedding vector_l2_ops) WITH (m='16')" in d
    alter(wdb, {"indexing": {"implementation": "none"}})
    run_worker(wdb.info.dbname)
    assert our_indexes(wdb) == []
    # A vector index someone made by hand is never touched, and is the index.
    wdb.execute("CREATE INDEX CONCURRENTLY mine ON blog_embeddings_store USING hnsw (embedding vector_ip_ops)")
    alter(wdb, {"indexing": hnsw(min_rows=2)})
    run_worker(wdb.info.dbname)
    assert our_indexes(wdb) == []
    assert wdb.execute("SELECT to_regclass('mine') IS NOT NULL").fetchone()[0]


def test_a_column_destination_gets_its_index_on_the_source(wdb):
    blog(wdb, POSTS)
    wdb.execute("ALTER TABLE blog ADD COLUMN content_embedding vector(384)")
    vectorizer(wdb, destination={"implementation": "column", "embedding_column": "content_embedding"},
               chunking="none", formatting={"implementation": "chunk_value"}, indexing=hnsw(min_rows=2))
    run_worker(wdb.info.dbname)
    [(name, d, _)] = our_indexes(wdb, "blog")
    assert name == "blog_content_embedding_idx" and "(content_embedding vector_cosine_ops)" in d


def test_an_index_that_cannot_be_built_now_is_an_error_row_and_built_later(wdb):
    blog(wdb, POSTS[:3])
    vectorizer(wdb, chunking="none", indexing=hnsw(min_rows=1))
    # Someone holds a write lock on the store (a long transaction):
    # CREATE INDEX waits for it, the batches do not.
    with connect(wdb.info.dbname) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE blog_embeddings_store IN ROW EXCLUSIVE MODE")
        run_worker(wdb.info.dbname, "--lock-timeout", "0.5")
        other.execute("ROLLBACK")
    # The embeddings are stored all the same; only the index is missing.
    assert wdb.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 3
    rows = [(k, m, d["step"]) for k, m, d in errors(wdb)]
    assert len(rows) == 1 and rows[0][0] is None and rows[0][2] == "indexing", rows
    assert "vector index not built" in rows[0][1] and "lock timeout" in rows[0][1], rows
    assert our_indexes(wdb) == []
    run_worker(wdb.info.dbname)
    assert len(our_indexes(wdb)) == 1


def test_diskann_needs_vectorscale_at_create_already(wdb):
    blog(wdb, POSTS[:1])
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="needs the vectorscale extension"):
        vectorizer(wdb, indexing={"implementation": "diskann"})


def test_two_workers_build_one_index(wdb):
    rows = [(i, f"T{i}", f"Text {i} " * 20) for i in range(1, 61)]
    blog(wdb, rows)
    vectorizer(wdb, chunking="none", indexing=hnsw(min_rows=10), processing={"implementation": "default", "batch_size": 5})
    procs = [subprocess.Popen(p.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=p.env)
             for p in [_once(wdb.info.dbname), _once(wdb.info.dbname)]]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(o[1].count("created index") for o in outs) == 1, outs
    assert len(our_indexes(wdb)) == 1 and errors(wdb) == []


class _once:
    """The argv and environment of `run --once` for Popen."""

    def __init__(self, dbname):
        from worker_helpers import dsn, worker_bin, worker_env

        self.args = [worker_bin(), "run", "--db", dsn(dbname), "--once", "--retry-delay", "0"]
        self.env = worker_env(None)


def overlap(requests):
    """The most requests the server was answering at once."""
    events = sorted([(r["start"], 1) for r in requests] + [(r["end"], -1) for r in requests])
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


@pytest.mark.parametrize("concurrency, most", [(1, {1}), (None, {2, 3})], ids=["concurrency-1", "unbounded"])
def test_processing_concurrency_and_batch_size_are_honoured(wdb, embedding_server, concurrency, most):
    server = embedding_server(8)
    server.delay = 0.3
    blog(wdb, [(i, f"T{i}", f"Text {i}") for i in range(1, 25)])
    processing = {"implementation": "default", "batch_size": 4, **({"concurrency": concurrency} if concurrency else {})}
    vectorizer(wdb, chunking="none", processing=processing, embedding={
        "implementation": "openai", "model": "text-embedding-3-small", "dimensions": 8,
        "base_url": server.url + "/v1"})
    run_worker(wdb.info.dbname, "--concurrency", "3")
    assert wdb.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 24
    assert all(len(r["body"]["input"]) <= 4 for r in server.requests)
    # --concurrency 3 threads; processing.concurrency lets one at a time at
    # the vectorizer, or all three when unset.
    assert overlap(server.requests) in most, [(round(r["start"], 2), round(r["end"], 2)) for r in server.requests]

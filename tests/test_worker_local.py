"""End to end with the local model (all-MiniLM-L6-v2 in-process): what the
worker stores, how it follows changes, and how keys it cannot process fail."""

import json
import math
import subprocess

import psycopg
import pytest

from conftest import connect
from worker_helpers import (
    LOCAL_EMBEDDING, blog, errors, failed_rows, queue_rows, run_worker, store, vectorizer, wdb, worker_bin,  # noqa: F401
)

POSTS = [
    (1, "Cats", "Cats are small furry pets. They purr, sleep all day and chase mice at night."),
    (2, "PostgreSQL", "PostgreSQL stores rows in tables and answers SQL queries with indexes."),
    (3, "Weather", "Tomorrow it will rain all day, so bring an umbrella and a coat."),
    (4, "Nothing", None),
    (5, "Blank", ""),
]


def embed(*texts):
    p = subprocess.run([worker_bin(), "embed", "--config", json.dumps({"embedding": LOCAL_EMBEDDING}), *texts],
                       capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_embed_matches_sentence_transformers_reference():
    # sentence-transformers' all-MiniLM-L6-v2 output for this sentence
    # (first 8 of 384 values, as its documentation prints them).
    [v] = embed("This is an example sentence")
    reference = [0.0676569, 0.0634960, 0.0487131, 0.0793050, 0.0374481, 0.0026528, 0.0393749, -0.0070985]
    assert len(v) == 384
    assert v[:8] == pytest.approx(reference, abs=2e-5)
    assert math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-5)


def test_semantically_close_texts_rank_first():
    q, cat, db, rain = embed("a kitten playing", "Cats are small furry pets.", "SQL databases and tables", "rain and umbrellas")
    sim = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731 (unit vectors)
    assert sim(q, cat) > sim(q, db) + 0.2 and sim(q, cat) > sim(q, rain) + 0.2
    # Batched and single embeddings agree (padding does not leak in).
    [alone] = embed("a kitten playing")
    assert alone == pytest.approx(q, abs=1e-5)


def test_embeddings_land_follow_updates_and_deletes(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb)
    assert len(queue_rows(wdb)) == 5
    run_worker(wdb.info.dbname)
    assert queue_rows(wdb) == []
    assert store(wdb) == {
        1: ["Cats: Cats are small furry pets. They purr, sleep all day and chase mice at night."],
        2: ["PostgreSQL: PostgreSQL stores rows in tables and answers SQL queries with indexes."],
        3: ["Weather: Tomorrow it will rain all day, so bring an umbrella and a coat."],
    }
    dims, norm = wdb.execute(
        "SELECT min(vector_dims(embedding)), min(round(vector_norm(embedding)::numeric, 4)) FROM blog_embeddings_store"
    ).fetchone()
    assert (dims, float(norm)) == (384, 1.0)

    # A semantic search through the view finds the right post.
    [q] = embed("which animal purrs?")
    top = wdb.execute("SELECT id FROM blog_embeddings ORDER BY embedding <=> %s::vector LIMIT 1", (json.dumps(q),)).fetchone()
    assert top == (1,)

    before = wdb.execute("SELECT embedding::text FROM blog_embeddings_store WHERE id = 3").fetchone()[0]
    wdb.execute("UPDATE blog SET content = 'Sunny skies all week.' WHERE id = 3")
    wdb.execute("UPDATE blog SET content = 'Now it has content.' WHERE id = 4")
    wdb.execute("UPDATE blog SET content = NULL WHERE id = 2")
    wdb.execute("DELETE FROM blog WHERE id = 1")
    run_worker(wdb.info.dbname)
    assert store(wdb) == {3: ["Weather: Sunny skies all week."], 4: ["Nothing: Now it has content."]}
    after = wdb.execute("SELECT embedding::text FROM blog_embeddings_store WHERE id = 3").fetchone()[0]
    assert after != before
    assert queue_rows(wdb) == [] and errors(wdb) == []


def test_long_documents_are_chunked_in_order(wdb):
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    blog(wdb, [(1, "Long", text)])
    vectorizer(wdb, chunking={"implementation": "recursive_character_text_splitter", "chunk_size": 300, "chunk_overlap": 50},
               formatting={"implementation": "chunk_value"})
    run_worker(wdb.info.dbname)
    rows = wdb.execute("SELECT chunk_seq, chunk FROM blog_embeddings_store ORDER BY chunk_seq").fetchall()
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    expected = RecursiveCharacterTextSplitter(
        separators=["\n\n", "\n", ".", "?", "!", " ", ""], chunk_size=300, chunk_overlap=50).split_text(text)
    assert [c for _, c in rows] == expected
    assert [s for s, _ in rows] == list(range(len(expected)))


def test_column_destination_writes_the_embedding_column(wdb):
    blog(wdb, POSTS[:4])
    vectorizer(wdb, destination={"implementation": "column", "embedding_column": "content_embedding"},
               chunking="none", formatting={"implementation": "chunk_value"}, name="blog_col")
    run_worker(wdb.info.dbname)
    rows = wdb.execute("SELECT id, vector_dims(content_embedding) FROM blog ORDER BY id").fetchall()
    assert rows == [(1, 384), (2, 384), (3, 384), (4, None)]
    # Writing the embedding did not queue the rows again.
    assert queue_rows(wdb) == []


@pytest.mark.parametrize(
    "change, step, message",
    [
        ({"embedding": {"implementation": "litellm", "model": "bedrock/amazon.titan-embed-text-v2:0", "dimensions": 384}},
         "embedding", "litellm provider \"bedrock\""),
        ({"embedding": {"implementation": "sentence_transformers", "model": "nomic-ai/nomic-embed-text-v1.5", "dimensions": 768}},
         "embedding", "not in the Hugging Face cache"),
        ({"loading": {"implementation": "uri", "column_name": "content", "retries": 1}}, "loading", "is a relative path"),
    ],
    ids=["litellm", "other-st-model", "uri-not-a-uri"],
)
def test_what_the_worker_cannot_do_fails_the_key_with_an_error_row(wdb, change, step, message):
    blog(wdb, POSTS[:2])
    change.setdefault("loading", {"implementation": "column", "column_name": "content", "retries": 1})
    try:
        vectorizer(wdb, **change)
    except psycopg.Error as e:
        pytest.fail(f"the extension refuses this config: {e}")
    # Attempt 1 fails and requeues with a retry count; attempt 2 (retries=1
    # exhausted) moves the keys to the failed queue. The worker never crashes.
    run_worker(wdb.info.dbname)
    assert [r[0] for r in queue_rows(wdb)] == []  # requeued with --retry-delay 0, then failed
    assert failed_rows(wdb) == [(1, step), (2, step)]
    errs = errors(wdb)
    assert len(errs) == 4 and all(message in m for _, m, _ in errs), errs
    assert [e[2]["attempt"] for e in errs] == [1, 1, 2, 2]
    assert errs[-1][0] == {"id": 2} and errs[-1][2]["moved_to_failed_queue"] is True
    assert store(wdb) == {}


def test_a_corrupt_bytea_document_fails_with_step_parsing(wdb):
    wdb.execute("CREATE TABLE docs (id int PRIMARY KEY, body bytea)")
    wdb.execute("INSERT INTO docs VALUES (1, '%PDF-1.4')")
    from conftest import create_vectorizer
    create_vectorizer(wdb, {"source": "docs", "loading": {"implementation": "column", "column_name": "body", "retries": 0},
                            "parsing": {"implementation": "pymupdf"}, "embedding": LOCAL_EMBEDDING})
    run_worker(wdb.info.dbname)
    assert failed_rows(wdb) == [(1, "parsing")]
    [(key, message, details)] = errors(wdb)
    assert key == {"id": 1} and message.startswith("PDF document:") and details["step"] == "parsing"


def test_a_grant_to_role_runs_the_worker_and_only_it_may_record_errors(roles, wdb):
    worker_role, other = roles("worker"), roles("other")
    wdb.execute(f'GRANT USAGE ON SCHEMA migrate TO "{other}"')
    blog(wdb, POSTS[:3])
    vectorizer(wdb, grant_to=[worker_role])
    run_worker(wdb.info.dbname, user=worker_role)
    assert sorted(store(wdb)) == [1, 2, 3]

    vid = wdb.execute("SELECT id FROM migrate.vectorizer").fetchone()[0]
    with connect(wdb.info.dbname, user=worker_role) as w:
        w.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message) VALUES (%s, 'by the worker')", (vid,))
        assert w.execute("SELECT count(*) FROM migrate.vectorizer_errors").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message, recorded_by) VALUES (%s, 'x', 'postgres')", (vid,))
    with connect(wdb.info.dbname, user=other) as o:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            o.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message) VALUES (%s, 'forged')", (vid,))
        assert o.execute("SELECT count(*) FROM migrate.vectorizer_errors").fetchone()[0] == 0
    assert [m for _, m, _ in errors(wdb)] == ["by the worker"]


def test_disabled_and_unselected_vectorizers_are_skipped(wdb):
    blog(wdb, POSTS[:2])
    vectorizer(wdb)
    p = run_worker(wdb.info.dbname, "--vectorizer", "no_such_vectorizer", check=False)
    assert p.returncode == 2 and "no such vectorizer" in p.stderr
    has_disabled = wdb.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'migrate.vectorizer'::regclass AND attname = 'disabled'"
    ).fetchone()[0]
    if has_disabled:
        wdb.execute("UPDATE migrate.vectorizer SET disabled = true")
        run_worker(wdb.info.dbname)
        assert len(queue_rows(wdb)) == 2
        wdb.execute("UPDATE migrate.vectorizer SET disabled = false")
    run_worker(wdb.info.dbname, "--vectorizer", "blog_vec")
    assert sorted(store(wdb)) == [1, 2]


def test_an_alter_committed_while_a_batch_waits_is_embedded_with_the_new_config(wdb):
    """The worker read the vectorizer, then waited for the queue while an
    alter_vectorizer re-queued every row for a new template: it must not
    embed those rows with the template it read first."""
    blog(wdb, POSTS[:3])
    vectorizer(wdb)
    with connect(wdb.info.dbname) as alterer:
        with alterer.transaction():
            alterer.execute("LOCK TABLE migrate._vectorizer_q_1 IN ACCESS EXCLUSIVE MODE")
            w = subprocess.Popen(
                [worker_bin(), "run", "--db", f"host={alterer.info.host} port={alterer.info.port} user={alterer.info.user} dbname={wdb.info.dbname}",
                 "--once", "--retry-delay", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                pid = None
                for _ in range(500):
                    alterer.execute("SELECT pg_stat_clear_snapshot()")
                    row = alterer.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE '%%worker_claim%%' "
                                          "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()").fetchone()
                    if row:
                        pid = row[0]
                        break
                    import time
                    time.sleep(0.02)
                assert pid, "the worker never waited for the queue"
                alterer.execute("SELECT migrate.alter_vectorizer('blog_vec', %s::jsonb, reembed => true)",
                                (json.dumps({"formatting": {"template": "NEW $title: $chunk"}}),))
            except BaseException:
                w.kill()
                raise
        out, err = w.communicate(timeout=120)
    assert w.returncode == 0, err
    chunks = [c for cs in store(wdb).values() for c in cs]
    assert len(chunks) == 3 and all(c.startswith("NEW ") for c in chunks), chunks

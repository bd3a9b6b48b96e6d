"""HTTP providers against a local server the test scripts: request shapes,
API keys, retries on 429/5xx/timeouts, and clear errors for malformed
responses, all through `pgai-migrate-worker run` and `embed`."""

import json
import subprocess

import pytest

from worker_helpers import (  # noqa: F401
    FAST_HTTP, blog, embedding_server, errors, failed_rows, fake_vector, queue_rows, run_worker, store,
    vectorizer, wdb, worker_bin,
)

POSTS = [(1, "One", "first post"), (2, "Two", "second post"), (3, "Three", "third post")]


def openai(server, **kw):
    return {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": server.dims,
            "base_url": server.url + "/v1", **kw}


def stored_vectors(conn):
    return {i: json.loads(e) for i, e in conn.execute(
        "SELECT id, embedding::text FROM blog_embeddings_store ORDER BY id").fetchall()}


def test_openai_compatible_server(wdb, embedding_server):
    s = embedding_server(dims=8)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=openai(s, api_key_name="TEST_OPENAI_KEY"))
    # The operator pairs the key with the endpoint: only then is it sent.
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "TEST_OPENAI_KEY": "sk-test",
                                     "PGAI_MIGRATE_ENDPOINTS": f"{s.url}/v1=TEST_OPENAI_KEY"})
    # One request for the batch, in OpenAI's shape, with the key.
    [r] = s.requests
    path, headers, body = r["path"], r["headers"], r["body"]
    assert path == "/v1/embeddings"
    assert headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "text-embedding-3-small" and body["dimensions"] == 8
    assert sorted(body["input"]) == ["One: first post", "Three: third post", "Two: second post"]
    # Vectors are matched to inputs by "index" (the server answers reversed).
    got = stored_vectors(wdb)
    for i, title, content in POSTS:
        assert got[i] == pytest.approx(fake_vector(f"{title}: {content}", 8), abs=1e-6)
    assert errors(wdb) == []


def test_ollama_server(wdb, embedding_server):
    s = embedding_server(dims=4)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding={"implementation": "ollama", "model": "nomic-embed-text", "dimensions": 4,
                               "base_url": s.url, "options": {"num_ctx": 2048}, "keep_alive": "5m"})
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    [r] = s.requests
    path, body = r["path"], r["body"]
    assert path == "/api/embed" and body["options"] == {"num_ctx": 2048} and body["keep_alive"] == "5m"
    assert stored_vectors(wdb)[2] == pytest.approx(fake_vector("Two: second post", 4), abs=1e-6)


def test_voyageai_server(wdb, embedding_server):
    s = embedding_server(dims=4)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding={"implementation": "voyageai", "model": "voyage-3-lite", "dimensions": 4})
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "VOYAGE_API_KEY": "vk", "VOYAGE_BASE_URL": s.url + "/v1"})
    [r] = s.requests
    path, headers, body = r["path"], r["headers"], r["body"]
    assert path == "/v1/embeddings" and headers["authorization"] == "Bearer vk"
    assert body["input_type"] == "document" and body["model"] == "voyage-3-lite"
    assert sorted(store(wdb)) == [1, 2, 3]


@pytest.mark.parametrize("script", [[429], [500, 503], ["hang"], [502, 429, "hang"]], ids=["429", "5xx", "timeout", "mixed"])
def test_transient_failures_are_retried_within_the_batch(wdb, embedding_server, script):
    s = embedding_server(dims=8)
    s.script = list(script)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=openai(s))
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert len(s.requests) == len(script) + 1
    assert sorted(store(wdb)) == [1, 2, 3]
    assert errors(wdb) == [] and queue_rows(wdb) == []


@pytest.mark.parametrize(
    "script, message",
    [
        (["malformed"], 'malformed response (no "data" array)'),
        (["garbage"], "malformed JSON"),
        (["wrong_dims"], "returned 9 dimensions, the vectorizer expects 8"),
        ([400], "HTTP 400"),
        ([500] * 4, "HTTP 500"),
    ],
    ids=["malformed", "not-json", "wrong-dims", "400", "500-exhausted"],
)
def test_provider_errors_fail_the_batch_keys_and_are_recorded(wdb, embedding_server, script, message):
    s = embedding_server(dims=8)
    s.script = list(script)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=openai(s), loading={"implementation": "column", "column_name": "content", "retries": 3})
    # --retry-delay 60: failed keys wait in the queue with a backoff.
    run_worker(wdb.info.dbname, "--retry-delay", "60", env=FAST_HTTP)
    rows = queue_rows(wdb)
    assert [(r[0], r[2]) for r in rows] == [(1, 1), (2, 1), (3, 1)]  # id, loading_retries
    assert all(r[3] is not None for r in rows)  # loading_retry_after set
    errs = errors(wdb)
    assert len(errs) == 3 and all(message in m for _, m, _ in errs), errs
    assert {e[2]["step"] for e in errs} == {"embedding"}
    assert store(wdb) == {}
    # The provider recovers: once the backoff is over, the keys are embedded.
    wdb.execute("UPDATE migrate._vectorizer_q_1 SET loading_retry_after = now()")
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert sorted(store(wdb)) == [1, 2, 3] and queue_rows(wdb) == []


def test_missing_api_key_is_a_clear_error(wdb, embedding_server):
    blog(wdb, POSTS[:1])
    vectorizer(wdb, embedding={"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 8,
                               "api_key_name": "TEST_NO_SUCH_KEY"},
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "PGAI_MIGRATE_ENDPOINTS": "https://api.openai.com/v1=TEST_NO_SUCH_KEY"})
    assert failed_rows(wdb) == [(1, "embedding")]
    [(_, message, _)] = errors(wdb)
    assert message == "the API key environment variable TEST_NO_SUCH_KEY is not set"


def test_embed_subcommand_uses_the_same_providers(embedding_server):
    s = embedding_server(dims=3)
    cfg = {"embedding": {"implementation": "ollama", "model": "m", "dimensions": 3, "base_url": s.url}}
    p = subprocess.run([worker_bin(), "embed", "--endpoint", s.url, "--config", json.dumps(cfg), "hello", "world"],
                       capture_output=True, text=True, check=True)
    lines = p.stdout.splitlines()
    assert [json.loads(x) for x in lines] == [pytest.approx(fake_vector(t, 3), abs=1e-6) for t in ("hello", "world")]
    assert all(x.startswith("[") and x.endswith("]") and " " not in x for x in lines)
    s.script = [404]
    p = subprocess.run([worker_bin(), "embed", "--endpoint", s.url, "--config", json.dumps(cfg), "x"], capture_output=True, text=True,
                       env={**FAST_HTTP})
    assert p.returncode == 1 and "ollama returned HTTP 404" in p.stderr


def test_status_and_the_once_summary_show_progress(wdb, embedding_server):
    s = embedding_server(dims=8)
    s.script = [400]  # the first batch fails: its keys wait with a backoff
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=openai(s), loading={"implementation": "column", "column_name": "content", "retries": 3})
    from worker_helpers import dsn

    def status():
        p = subprocess.run([worker_bin(), "status", "--db", dsn(wdb.info.dbname)],
                           capture_output=True, text=True, check=True, timeout=30)
        header, *rows = p.stdout.splitlines()
        assert header.split() == ["vectorizer", "pending", "failed", "errors", "oldest", "queued"]
        return [r.split()[:4] for r in rows]

    assert status() == [["blog_vec", "3", "0", "0"]]
    p = run_worker(wdb.info.dbname, "--retry-delay", "60", env=FAST_HTTP)
    assert p.stderr.strip().splitlines()[-1].startswith("pgai-migrate-worker: done in ")
    assert "blog_vec: 3 keys (0 chunks, 3 failed" in p.stderr
    assert status() == [["blog_vec", "3", "0", "3"]]
    wdb.execute("UPDATE migrate._vectorizer_q_1 SET loading_retry_after = NULL")
    p = run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert "blog_vec: 3 keys (3 chunks, 0 failed" in p.stderr
    assert status() == [["blog_vec", "0", "0", "3"]]
    # Nothing left: the summary says so.
    p = run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert "nothing was queued" in p.stderr.splitlines()[-1]

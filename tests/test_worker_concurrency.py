"""The queue protocol under failure and concurrency: a worker killed at any
point loses no key, a lost connection is survived, and several workers with
writers running end with every key's chunks matching its final content,
no key ever in two workers' hands at once."""

import json
import os
import random
import signal
import threading
import time

import pytest

from conftest import connect
from worker_helpers import (  # noqa: F401
    FAST_HTTP, embedding_server, errors, fake_vector, queue_rows, run_worker, start_worker, store, vectorizer,
    wdb,
)

HEAVY = os.environ.get("PGAI_MIGRATE_HEAVY") == "1"


def make_blog(conn, n):
    conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0)")
    conn.execute(
        "INSERT INTO blog SELECT g, 't' || g, 'v0 of post ' || g || '. ' || repeat('Some words here. ', g %% 5) "
        "FROM generate_series(1, %s) g", (n,))


def fake_vectorizer(conn, server, batch_size=10):
    return vectorizer(
        conn,
        embedding={"implementation": "openai", "model": "m", "dimensions": server.dims, "base_url": server.url},
        chunking={"implementation": "recursive_character_text_splitter", "chunk_size": 40, "chunk_overlap": 10},
        processing={"implementation": "default", "batch_size": batch_size},
    )


def expected_store(conn):
    """What a correct worker must have stored for the current source rows."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    split = RecursiveCharacterTextSplitter(
        separators=["\n\n", "\n", ".", "?", "!", " ", ""], chunk_size=40, chunk_overlap=10).split_text
    return {i: [f"{t}: {c}" for c in split(content)]
            for i, t, content in conn.execute("SELECT id, title, content FROM blog ORDER BY id").fetchall()
            if split(content or "")}


def assert_store_matches_sources(conn, dims):
    assert store(conn) == expected_store(conn)
    for chunk, emb in conn.execute("SELECT chunk, embedding::text FROM blog_embeddings_store").fetchall():
        assert json.loads(emb) == pytest.approx(fake_vector(chunk, dims), abs=1e-6)


def wait_for(cond, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_batch_loses_no_key(wdb, embedding_server):
    s = embedding_server(dims=4)
    make_blog(wdb, 30)
    fake_vectorizer(wdb, s, batch_size=30)
    s.script = [("sleep", 30)]  # the first batch hangs at the provider
    w = start_worker(wdb.info.dbname, env=FAST_HTTP | {"PGAI_MIGRATE_HTTP_TIMEOUT_MS": "60000"})
    try:
        wait_for(lambda: len(s.requests) == 1, what="the worker's first request")
        # Mid-batch: the claimed keys are invisible to others (deleted, uncommitted).
        assert len(queue_rows(wdb)) == 30
        with connect(wdb.info.dbname) as other:
            skipped = other.execute("SELECT count(*) FROM (SELECT 1 FROM migrate._vectorizer_q_1 FOR UPDATE SKIP LOCKED) x").fetchone()[0]
        assert skipped == 0
    finally:
        os.kill(w.pid, signal.SIGKILL)
        w.wait()
    # The claim rolls back when the backend sees the client gone.
    wait_for(lambda: wdb.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgai-migrate-worker' AND datname = current_database()"
    ).fetchone()[0] == 0, what="the killed worker's backend to exit")
    assert len(queue_rows(wdb)) == 30 and store(wdb) == {}
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert queue_rows(wdb) == []
    assert_store_matches_sources(wdb, 4)


def test_kill_9_at_random_points_then_drain(wdb, embedding_server):
    s = embedding_server(dims=4)
    make_blog(wdb, 400)
    fake_vectorizer(wdb, s, batch_size=7)
    rng = random.Random(7)
    for _ in range(6 if not HEAVY else 30):
        w = start_worker(wdb.info.dbname, env=FAST_HTTP)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(w.pid, signal.SIGKILL)
        w.wait()
        wdb.execute("UPDATE blog SET content = content || ' edited.' WHERE id = %s", (rng.randint(1, 400),))
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert queue_rows(wdb) == []
    assert_store_matches_sources(wdb, 4)


def test_a_lost_connection_is_survived(wdb, embedding_server):
    s = embedding_server(dims=4)
    make_blog(wdb, 5)
    fake_vectorizer(wdb, s)
    w = start_worker(wdb.info.dbname, "--poll-interval", "0.2", env=FAST_HTTP)
    try:
        wait_for(lambda: queue_rows(wdb) == [], what="the first drain")
        wdb.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'pgai-migrate-worker' AND datname = current_database()")
        wdb.execute("INSERT INTO blog VALUES (6, 't6', 'after the reconnect')")
        wait_for(lambda: 6 in store(wdb), what="the row written after the reconnect")
    finally:
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=30) == 0
    assert_store_matches_sources(wdb, 4)


@pytest.mark.parametrize("embedded_before", [False, True], ids=["first-embedding", "re-embedding"])
def test_a_row_deleted_while_a_worker_holds_its_key_leaves_no_chunks(wdb, embedding_server, embedded_before):
    """The source's DELETE waits for the worker's claim on the queue row, then
    removes the chunks the worker committed (the trigger must delete the
    queue row before the store rows, in separate statements)."""
    s = embedding_server(dims=4)
    make_blog(wdb, 1)
    fake_vectorizer(wdb, s)
    if embedded_before:
        run_worker(wdb.info.dbname, env=FAST_HTTP)
        wdb.execute("UPDATE blog SET content = 'changed' WHERE id = 1")
    s.script = [("sleep", 2)]
    w = start_worker(wdb.info.dbname, env=FAST_HTTP)
    outcome = {}

    def delete():
        try:
            with connect(wdb.info.dbname) as c:
                c.execute("DELETE FROM blog WHERE id = 1")
            outcome["ok"] = True
        except Exception as e:  # noqa: BLE001 (reported below)
            outcome["error"] = e

    try:
        wait_for(lambda: len(s.requests) == (2 if embedded_before else 1), what="the worker to hold the key")
        t = threading.Thread(target=delete)
        t.start()
        t.join(timeout=30)
        wait_for(lambda: queue_rows(wdb) == [], what="the queue to drain")
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=30)
    assert outcome == {"ok": True}
    assert wdb.execute("SELECT count(*) FROM blog").fetchone()[0] == 0
    assert store(wdb) == {}, "chunks of a deleted row survived"


def writer(dbname, stop, seed, counter):
    rng = random.Random(seed)
    with connect(dbname) as c:
        while not stop.is_set():
            i = rng.randint(1, 250)
            op = rng.random()
            if op < 0.7:
                c.execute("UPDATE blog SET content = %s WHERE id = %s",
                          (f"v{rng.randint(1, 10**6)} of post {i}. " + "More text here. " * rng.randint(0, 6), i))
            elif op < 0.85:
                c.execute("DELETE FROM blog WHERE id = %s", (i,))
            elif op < 0.95:
                c.execute("INSERT INTO blog (id, title, content) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                          (i, f"t{i}", f"reinserted post {i}."))
            else:
                with c.transaction():  # several rows in one transaction
                    for j in rng.sample(range(1, 251), 3):
                        c.execute("UPDATE blog SET content = content || ' tx.' WHERE id = %s", (j,))
            counter[0] += 1


@pytest.mark.parametrize("workers", [4])
def test_workers_share_a_queue_with_writers_running(wdb, embedding_server, workers):
    s = embedding_server(dims=6)
    s.script = [("sleep", 0.02)] * 100000  # every request takes a little time
    make_blog(wdb, 200)
    fake_vectorizer(wdb, s, batch_size=5)
    procs = [start_worker(wdb.info.dbname, env=FAST_HTTP) for _ in range(workers)]
    stop, counter = threading.Event(), [0]
    writers = [threading.Thread(target=writer, args=(wdb.info.dbname, stop, n, counter)) for n in range(2)]
    try:
        for t in writers:
            t.start()
        time.sleep(20 if HEAVY else 4)
        stop.set()
        for t in writers:
            t.join()
        wait_for(lambda: queue_rows(wdb) == [], timeout=120, what="the queue to drain")
    finally:
        stop.set()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
    assert codes == [0] * workers, [p.stderr.read() for p in procs]
    assert counter[0] > 50
    assert_store_matches_sources(wdb, 6)
    assert errors(wdb) == []

    # No key was in two workers' hands at once: requests that overlap in
    # time never carry chunks of the same key.
    reqs = [(r["start"], r["end"], {t.split(":")[0] for t in r["body"]["input"]}) for r in s.requests]
    reqs.sort()
    for a in range(len(reqs)):
        for b in range(a + 1, len(reqs)):
            if reqs[b][0] >= reqs[a][1]:
                break
            assert not (reqs[a][2] & reqs[b][2]), f"keys {reqs[a][2] & reqs[b][2]} processed concurrently"
    # And the workers did share the work.
    overlapping = sum(1 for a, b in zip(reqs, reqs[1:]) if b[0] < a[1])
    assert overlapping > 0

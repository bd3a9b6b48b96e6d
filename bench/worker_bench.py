"""Worker benchmarks, one run on this machine, figures printed (never asserted):

1. chunking throughput (MB/s) of `pgai-migrate-worker chunk` vs
   langchain-text-splitters on the same corpus, with pgai's default settings,
   checking the chunks are identical;
2. local embedding (all-MiniLM-L6-v2 on the CPU) texts/s;
3. end-to-end rows/s of `run --once` through a local OpenAI-compatible
   server that answers instantly, with 1, 2 and 4 worker threads.

    bench/worker_bench.py [--smoke] [--rows N]

Runs with the project's venv (scripts/setup.sh); needs the server running
and the worker built (cargo build --release -p pgai_migrate_worker)."""

import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from conftest import CONNINFO, connect  # noqa: E402
from worker_helpers import WORKER, EmbeddingServer, dsn, ensure_errors_table  # noqa: E402

WORDS = ("vector embedding table row chunk query index postgres search model token worker queue "
         "été naïve 日本語 données ürün καλημέρα").split()


def corpus(mb, seed=42):
    """Markdown-ish documents of 2-20 KB: headings, paragraphs, lists, code."""
    rng = random.Random(seed)
    docs, size = [], 0
    while size < mb * 1_000_000:
        parts = []
        for _ in range(rng.randint(3, 25)):
            kind = rng.random()
            if kind < 0.15:
                parts.append("#" * rng.randint(1, 3) + " " + " ".join(rng.choices(WORDS, k=4)).title())
            elif kind < 0.3:
                parts.append("\n".join("- " + " ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(rng.randint(2, 6))))
            elif kind < 0.4:
                parts.append("```\n" + "\n".join(f"    let x{i} = f({i});" for i in range(rng.randint(2, 12))) + "\n```")
            else:
                sentences = [" ".join(rng.choices(WORDS, k=rng.randint(5, 25))).capitalize() + rng.choice(".?!")
                             for _ in range(rng.randint(2, 12))]
                parts.append(" ".join(sentences))
        doc = "\n\n".join(parts)
        docs.append(doc)
        size += len(doc.encode())
    return docs


def bench_chunking(docs):
    from langchain_text_splitters import CharacterTextSplitter, RecursiveCharacterTextSplitter

    mb = sum(len(d.encode()) for d in docs) / 1e6
    cases = [
        ("recursive", {"implementation": "recursive_character_text_splitter", "chunk_size": 800, "chunk_overlap": 400,
                       "separators": ["\n\n", "\n", ".", "?", "!", " ", ""], "is_separator_regex": False},
         RecursiveCharacterTextSplitter(separators=["\n\n", "\n", ".", "?", "!", " ", ""], chunk_size=800, chunk_overlap=400)),
        ("character", {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400,
                       "separator": "\n\n", "is_separator_regex": False},
         CharacterTextSplitter(separator="\n\n", chunk_size=800, chunk_overlap=400)),
    ]
    payload = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    rows = []
    for name, cfg, splitter in cases:
        t = time.perf_counter()
        expected = [splitter.split_text(d) for d in docs]
        lc = time.perf_counter() - t
        t = time.perf_counter()
        p = subprocess.run([WORKER, "chunk", "--jsonl", "--timing", "--config", json.dumps({"chunking": cfg})],
                           input=payload, capture_output=True, text=True, check=True)
        ours = time.perf_counter() - t
        inner = float(p.stderr.strip().rsplit("=", 1)[1])
        got = [json.loads(x) for x in p.stdout.split("\n")[:-1]]
        rows.append((name, mb / lc, mb / ours, mb / inner, got == expected))
    print(f"\nChunking, {len(docs)} documents, {mb:.1f} MB, pgai's defaults (800/400)")
    print("  process: the whole `chunk --jsonl` run incl. start-up and JSON I/O; split: chunking alone")
    print(f"{'splitter':<10} {'langchain MB/s':>15} {'process MB/s':>13} {'ratio':>7} {'split MB/s':>11} {'ratio':>7} identical")
    for name, a, b, c, same in rows:
        print(f"{name:<10} {a:>15.1f} {b:>13.1f} {b / a:>6.1f}x {c:>11.1f} {c / a:>6.1f}x {same}")
    return rows


def bench_embedding(n):
    rng = random.Random(1)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(20, 120))) for _ in range(n)]
    cfg = {"embedding": {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}}
    # Warm-up: model load and page cache.
    subprocess.run([WORKER, "embed", "--config", json.dumps(cfg), "warm up"], capture_output=True, check=True)
    t = time.perf_counter()
    p = subprocess.run([WORKER, "embed", "--jsonl", "--config", json.dumps(cfg)],
                       input="".join(json.dumps(x) + "\n" for x in texts), capture_output=True, text=True, check=True)
    dt = time.perf_counter() - t
    assert len(p.stdout.splitlines()) == n
    print(f"\nLocal embedding (all-MiniLM-L6-v2, CPU, {os.cpu_count()} cores): {n} texts of 20-120 words "
          f"in {dt:.1f} s = {n / dt:.1f} texts/s (incl. model load)")
    return n / dt


def bench_end_to_end(rows, workers=(1, 2, 4)):
    server = EmbeddingServer(dims=8)
    name = "bench_worker_e2e"
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    results = []
    try:
        with connect(name) as c:
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            ensure_errors_table(c)
            c.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
            c.execute("INSERT INTO blog SELECT g, 'title ' || g, repeat('Some text about row ' || g || '. ', 12) "
                      "FROM generate_series(1, %s) g", (rows,))
            c.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps({
                "source": "blog", "name": "bench", "loading": {"implementation": "column", "column_name": "content"},
                "embedding": {"implementation": "openai", "model": "m", "dimensions": 8, "base_url": server.url},
                "formatting": {"implementation": "python_template", "template": "$title - $chunk"},
                "enqueue_existing": False}),))
            for n in workers:
                c.execute("TRUNCATE blog_embedding_store")
                c.execute("UPDATE blog SET content = content || '.'")  # queues every row
                t = time.perf_counter()
                subprocess.run([WORKER, "run", "--once", "--db", dsn(name), "--concurrency", str(n),
                                "--endpoint", server.url], check=True)
                dt = time.perf_counter() - t
                stored = c.execute("SELECT count(DISTINCT id) FROM blog_embedding_store").fetchone()[0]
                assert stored == rows, (stored, rows)
                results.append((n, rows / dt))
    finally:
        server.close()
        with connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"\nEnd to end, {rows} rows (batch 50, instant OpenAI-compatible server):")
    for n, r in results:
        print(f"  {n} worker thread(s): {r:,.0f} rows/s")
    return results


def bench_pgai(pgai, rows, workers=(1, 4)):
    """pgai's own worker (`pgai vectorizer worker --once`) on pgai's catalog,
    draining the same rows through the same kind of instant server."""
    server = EmbeddingServer(dims=8)
    name = "bench_worker_pgai"
    url = f"postgresql://{CONNINFO['user']}@/{name}?host={CONNINFO['host']}&port={CONNINFO['port']}"
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    results = []
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    try:
        subprocess.run([pgai, "install", "-d", url], check=True, capture_output=True, env=env)
        with connect(name) as c:
            c.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
            c.execute("INSERT INTO blog SELECT g, 'title ' || g, repeat('Some text about row ' || g || '. ', 12) "
                      "FROM generate_series(1, %s) g", (rows,))
            # An unknown model name: pgai skips tiktoken (no download).
            c.execute("SELECT ai.create_vectorizer('blog'::regclass, "
                      "loading => ai.loading_column('content'), "
                      "embedding => ai.embedding_openai('m', 8, base_url => %s), "
                      "formatting => ai.formatting_python_template('$title - $chunk'), "
                      "destination => ai.destination_table('blog_embedding'), enqueue_existing => false)",
                      (server.url,))
            store = "public.blog_embedding_store"
            for n in workers:
                c.execute(f"TRUNCATE {store}")
                c.execute("UPDATE blog SET content = content || '.'")
                t = time.perf_counter()
                subprocess.run([pgai, "vectorizer", "worker", "-d", url, "--once", "-c", str(n)],
                               check=True, capture_output=True, env=env)
                dt = time.perf_counter() - t
                stored = c.execute(f"SELECT count(DISTINCT id) FROM {store}").fetchone()[0]
                assert stored == rows, (stored, rows)
                results.append((n, rows / dt))
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"\npgai's worker could not run: {e} {getattr(e, 'stderr', b'')[-2000:]!r}")
        return []
    finally:
        server.close()
        with connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"\npgai's worker ({pgai}), {rows} rows, same server:")
    for n, r in results:
        print(f"  concurrency {n}: {r:,.0f} rows/s")
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="small sizes")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--pgai", default=os.path.join(os.environ.get("PGAI_MIGRATE_HOME", "/opt/pgai_migrate"), "bench-venv", "bin", "pgai"),
                    help="pgai's CLI (bench/run.sh installs it); skipped if missing")
    ap.add_argument("--only", default="chunking,embedding,e2e,pgai")
    a = ap.parse_args()
    if not os.access(WORKER, os.X_OK):
        sys.exit(f"{WORKER} missing: cargo build --release -p pgai_migrate_worker")
    only = a.only.split(",")
    rows = a.rows or (2000 if a.smoke else 100_000)
    if "chunking" in only:
        bench_chunking(corpus(0.5 if a.smoke else 8))
    if "embedding" in only:
        bench_embedding(32 if a.smoke else 512)
    if "e2e" in only:
        bench_end_to_end(rows)
    if "pgai" in only:
        if os.access(a.pgai, os.X_OK):
            bench_pgai(a.pgai, rows)
        else:
            print(f"\npgai's worker: {a.pgai} not found (bench/run.sh installs it)")


if __name__ == "__main__":
    main()

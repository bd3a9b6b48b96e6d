"""Latency of migrate.vectorizer_embed with the local model (all-MiniLM-L6-v2
in the backend): the first call of a new backend (loads the model) and the
steady state (the model loaded), plus the backend's resident memory.
    python bench/embed_latency.py [DATABASE]      (libpq settings from PGHOST, PGPORT, PGUSER)
The database needs the extension; nothing is created."""

import json
import statistics
import sys
import time

import psycopg

DB = sys.argv[1] if len(sys.argv) > 1 else "postgres"
CONFIG = json.dumps({"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384})
QUERY = "SELECT migrate.vectorizer_embed(%s::jsonb, %s) IS NOT NULL"


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(("VmRSS", "RssFile", "RssAnon")):
                yield line.split()[0].rstrip(":"), int(line.split()[1])
    except OSError:
        return


def timed(conn, text):
    start = time.perf_counter()
    conn.execute(QUERY, (CONFIG, text)).fetchone()
    return (time.perf_counter() - start) * 1000


def main():
    first = []
    for i in range(5):
        with psycopg.connect(dbname=DB, autocommit=True) as c:
            c.execute("SELECT 1")
            first.append(timed(c, f"which animal purrs? {i}"))
    with psycopg.connect(dbname=DB, autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        timed(c, "warm up")
        steady = [timed(c, f"which animal purrs? {i}") for i in range(50)]
        long = [timed(c, "PostgreSQL stores rows in tables. " * 20) for _ in range(10)]
        mem = dict(rss_kb(pid))
    print(f"first call in a new backend (loads the model): median {statistics.median(first):.0f} ms, min {min(first):.0f}, max {max(first):.0f} (n=5)")
    print(f"steady state, short query:  median {statistics.median(steady):.1f} ms, p90 {sorted(steady)[44]:.1f} ms (n=50)")
    print(f"steady state, ~140 tokens:  median {statistics.median(long):.1f} ms (n=10)")
    if mem:
        print("backend memory after loading: " + ", ".join(f"{k} {v // 1024} MB" for k, v in mem.items()))


if __name__ == "__main__":
    main()

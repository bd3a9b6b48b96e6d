"""Shared pieces of the document tests (test_worker_uri.py,
test_worker_parsing.py): an HTTP server of documents whose routes each test
sets, an S3 server (moto), and a table of URIs with its vectorizer."""

import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import create_vectorizer
from worker_helpers import LOCAL_EMBEDDING


class DocServer:
    """Serves `routes[path]` = (status, headers, body[, seconds to wait
    first]); records every request's path. A body ("unsized", bytes) is
    sent without a Content-Length, the connection closed after it."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.delay = 0.0  # seconds before each answer
        self.in_flight = 0
        self.max_in_flight = 0
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with lock:
                    server.requests.append(self.path)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    self.answer()
                finally:
                    with lock:
                        server.in_flight -= 1

            def answer(self):
                status, headers, body, *pause = server.routes.get(self.path, (404, {}, b"not here"))
                if pause:
                    time.sleep(pause[0])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(body, tuple) and body[0] == "unsized":
                    # No Content-Length: the client reads until the close.
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[1])
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def docserver():
    s = DocServer()
    yield s
    s.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3:
    """A moto S3 server and a boto3 client for it; `env` is what the worker
    needs to reach it."""

    def __init__(self):
        import boto3

        port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def bucket(self, name, objects):
        self.client.create_bucket(Bucket=name)
        for key, body in objects.items():
            self.client.put_object(Bucket=name, Key=key, Body=body)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def s3():
    s = S3()
    yield s
    s.close()


def uri_table(conn, rows, retries=0, **extra):
    """CREATE TABLE docs (id, uri) with a `uri` vectorizer over it, whose
    store is docs_embeddings_store."""
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, uri text)")
    for r in rows:
        conn.execute("INSERT INTO docs VALUES (%s, %s)", r)
    config = {
        "source": "docs",
        "name": "docs_vec",
        "destination": {"implementation": "table", "destination": "docs_embeddings"},
        "loading": {"implementation": "uri", "column_name": "uri", "retries": retries},
        "embedding": LOCAL_EMBEDDING,
    }
    config.update(extra)
    return create_vectorizer(conn, config)


def doc_store(conn):
    """{id: [chunk, …]} of docs_embeddings_store, in chunk_seq order."""
    out = {}
    for i, chunk in conn.execute("SELECT id, chunk FROM docs_embeddings_store ORDER BY id, chunk_seq").fetchall():
        out.setdefault(i, []).append(chunk)
    return out


def failures(conn):
    """{id: (step, [messages of each attempt])} from the failed queue and the errors table."""
    failed = dict(conn.execute("SELECT id, failure_step FROM migrate._vectorizer_q_failed_1").fetchall())
    messages = {}
    for key, message in conn.execute("SELECT key, message FROM migrate.vectorizer_errors ORDER BY error_id").fetchall():
        messages.setdefault(key["id"], []).append(message)
    return {i: (failed.get(i), messages.get(i, [])) for i in sorted(set(failed) | set(messages))}

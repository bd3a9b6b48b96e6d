"""`embedding_litellm` providers (Azure OpenAI, Cohere, Mistral, Jina AI,
Hugging Face text-embeddings-inference) against local servers in each
provider's shape, through `pgai-migrate-worker run`: URLs, query, auth
headers, bodies, retries, the endpoint policy; and OpenAI inputs cut to
8191 tokens and batched under 300,000 tokens a request, checked with
OpenAI's own tokenizer (the `tiktoken` package)."""

import functools
import http.server
import json
import os
import subprocess
import threading
import urllib.parse

import pytest

from conftest import ROOT
from worker_helpers import (  # noqa: F401
    FAST_HTTP, blog, errors, failed_rows, fake_vector, queue_rows, run_worker, store, vectorizer, wdb,
)

POSTS = [(1, "One", "first post"), (2, "Two", "second post"), (3, "Three", "third post")]
CONTEXT = 8191
REQUEST_TOKENS = 300_000
# Requests of a megabyte, counted by the server: more time than FAST_HTTP's.
SLOW_HTTP = {**FAST_HTTP, "PGAI_MIGRATE_HTTP_TIMEOUT_MS": "20000"}


@functools.lru_cache(maxsize=1)
def cl100k():
    """tiktoken's cl100k_base, its ranks read from the copy tiktoken-rs
    ships (tiktoken would download them), checked against OpenAI's hash."""
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public as public

    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1"], cwd=ROOT,
                                     capture_output=True, text=True, check=True).stdout)
    [crate] = [p for p in meta["packages"] if p["name"] == "tiktoken-rs"]
    ranks = os.path.join(os.path.dirname(crate["manifest_path"]), "assets", "cl100k_base.tiktoken")
    load = tiktoken.load.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda _url, expected_hash=None: load(ranks, expected_hash=expected_hash)
    try:
        return tiktoken.Encoding(**public.cl100k_base())
    finally:
        public.load_tiktoken_bpe = load


class ProviderServer:
    """Answers each provider's embeddings call in its own shape, by path:
    `/v2/embed` (Cohere), `/api/embed` (Ollama), `/embed` and
    `…/pipeline/feature-extraction` (text-embeddings-inference, Hugging
    Face), `…/embeddings` OpenAI's (Azure, Mistral, Jina, OpenAI, Voyage). `script` as in worker_helpers'
    EmbeddingServer (HTTP statuses). With `tokens`, an OpenAI-shaped call
    with an input over 8191 tokens, or over 300,000 in all, is a 400, as
    OpenAI answers."""

    def __init__(self, dims=8, tokens=False):
        self.dims = dims
        self.tokens = tokens
        if tokens:
            cl100k()  # loaded before any request is timed
        self.script = []
        self.requests = []  # {"path", "query", "headers", "body", "counts"}
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urllib.parse.urlsplit(self.path)
                path = url.path
                texts = body.get("texts") or body.get("inputs") or body.get("input") or []
                record = {"path": path, "query": urllib.parse.parse_qs(url.query),
                          "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "counts": None}
                with server.lock:
                    server.requests.append(record)
                    action = server.script.pop(0) if server.script else None
                vectors = [fake_vector(t, server.dims) for t in texts]
                openai_shaped = path.endswith("/embeddings")
                refused = server.tokens and openai_shaped and server.too_long(texts, record)
                if isinstance(action, int):
                    status, payload = action, {"message": f"scripted {action}"}
                elif refused:
                    status, payload = 400, {"error": {"message": refused}}
                elif path.endswith("/api/embed"):
                    status, payload = 200, {"model": body.get("model"), "embeddings": vectors}
                elif path.endswith("/v2/embed"):
                    status, payload = 200, {"id": "e1", "embeddings": {"float": vectors}, "texts": texts,
                                            "response_type": "embeddings_by_type"}
                elif path.endswith("/embed") or path.endswith("/feature-extraction"):
                    status, payload = 200, vectors
                else:
                    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
                    status, payload = 200, {"object": "list", "data": list(reversed(data)), "model": body.get("model")}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def too_long(self, texts, record):
        counts = [len(cl100k().encode_ordinary(t)) for t in texts]
        record["counts"] = counts
        if any(n > CONTEXT for n in counts):
            return f"This model's maximum context length is {CONTEXT} tokens, however you requested {max(counts)} tokens"
        if sum(counts) > REQUEST_TOKENS:
            return f"Requested {sum(counts)} tokens, max {REQUEST_TOKENS} tokens per request"
        return None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider():
    servers = []

    def make(**kw):
        s = ProviderServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def litellm(model, dims=8, **kw):
    return {"implementation": "litellm", "model": model, "dimensions": dims, **kw}


def stored_vectors(conn):
    return {i: json.loads(e) for i, e in conn.execute(
        "SELECT id, embedding::text FROM blog_embeddings_store ORDER BY id").fetchall()}


def assert_embedded(conn, dims=8):
    got = stored_vectors(conn)
    assert sorted(got) == [1, 2, 3]
    for i, title, content in POSTS:
        assert got[i] == pytest.approx(fake_vector(f"{title}: {content}", dims), abs=1e-6)
    assert errors(conn) == [] and queue_rows(conn) == []


INPUTS = sorted(f"{t}: {c}" for _, t, c in POSTS)

# model, extra_options, the worker's environment (base and key as the
# operator sets them), and what the request must look like.
PROVIDERS = {
    "azure": ("azure/emb-3", {"api_version": "2024-06-01"},
              lambda u: {"AZURE_API_BASE": u, "AZURE_API_KEY": "az-key"},
              "/openai/deployments/emb-3/embeddings", {"api-key": "az-key"}, "input",
              {"encoding_format": "float", "dimensions": 8}),
    "cohere": ("cohere/embed-english-v3.0", {"input_type": "search_query"},
               lambda u: {"COHERE_API_BASE": u, "COHERE_API_KEY": "co-key"},
               "/v2/embed", {"authorization": "Bearer co-key"}, "texts",
               {"model": "embed-english-v3.0", "input_type": "search_query", "embedding_types": ["float"]}),
    "mistral": ("mistral/mistral-embed", None,
                lambda u: {"MISTRAL_API_BASE": u + "/v1", "MISTRAL_API_KEY": "mi-key"},
                "/v1/embeddings", {"authorization": "Bearer mi-key"}, "input", {"model": "mistral-embed"}),
    "jina_ai": ("jina_ai/jina-embeddings-v3", {"task": "retrieval.passage"},
                lambda u: {"JINA_AI_API_BASE": u + "/v1", "JINA_AI_API_KEY": "ji-key"},
                "/v1/embeddings", {"authorization": "Bearer ji-key"}, "input",
                {"model": "jina-embeddings-v3", "task": "retrieval.passage"}),
    "huggingface": ("huggingface/BAAI/bge-small-en-v1.5", None,
                    lambda u: {"HUGGINGFACE_API_BASE": u, "HUGGINGFACE_API_KEY": "hf-key"},
                    "/embed", {"authorization": "Bearer hf-key"}, "inputs", {}),
    "voyage": ("voyage/voyage-3-lite", {"input_type": "document"},
               lambda u: {"VOYAGE_BASE_URL": u + "/v1", "VOYAGE_API_KEY": "vo-key"},
               "/v1/embeddings", {"authorization": "Bearer vo-key"}, "input",
               {"model": "voyage-3-lite", "input_type": "document"}),
    "ollama": ("ollama/nomic-embed-text", None, lambda u: {"OLLAMA_HOST": u},
               "/api/embed", {}, "input", {"model": "nomic-embed-text"}),
}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_is_called_in_its_own_shape_and_embeddings_land(wdb, provider, name):
    model, extra, env, path, headers, field, fields = PROVIDERS[name]
    s = provider()
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=litellm(model, **({"extra_options": extra} if extra else {})))
    # The operator's own base variable allows the server with the official key.
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "PGAI_MIGRATE_ENDPOINTS": "", **env(s.url)})
    [r] = s.requests
    assert r["path"] == path
    for k, v in headers.items():
        assert r["headers"].get(k) == v, r["headers"]
    if name == "azure":
        assert r["query"] == {"api-version": ["2024-06-01"]} and "authorization" not in r["headers"]
    body = dict(r["body"])
    assert sorted(body.pop(field)) == INPUTS
    assert body == fields
    assert_embedded(wdb)


def test_azure_api_base_of_the_vectorizer_needs_the_operators_endpoint(wdb, provider):
    s = provider()
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=litellm("azure/emb-3", extra_options={"api_base": s.url}))
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "AZURE_API_KEY": "az-key", "PGAI_MIGRATE_ENDPOINTS": f"{s.url}=AZURE_API_KEY"})
    [r] = s.requests
    assert r["query"] == {"api-version": ["2024-10-21"]} and r["headers"]["api-key"] == "az-key"
    assert_embedded(wdb)


@pytest.mark.parametrize("name", ["cohere", "huggingface", "azure"])
@pytest.mark.parametrize("script", [[429], [500, 503]], ids=["429", "5xx"])
def test_429_and_5xx_are_retried_then_succeed(wdb, provider, name, script):
    model, extra, env, *_ = PROVIDERS[name]
    s = provider()
    s.script = list(script)
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=litellm(model, **({"extra_options": extra} if extra else {})))
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "PGAI_MIGRATE_ENDPOINTS": "", **env(s.url)})
    assert len(s.requests) == len(script) + 1
    assert_embedded(wdb)


def test_5xx_until_retries_run_out_fails_the_keys_with_the_providers_message(wdb, provider):
    s = provider()
    s.script = [502] * 4
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=litellm("cohere/embed-english-v3.0"),
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "PGAI_MIGRATE_ENDPOINTS": "", "COHERE_API_BASE": s.url, "COHERE_API_KEY": "k"})
    assert len(s.requests) == 4
    errs = errors(wdb)
    assert len(errs) == 3 and all("cohere returned HTTP 502: scripted 502 (gave up after 4 attempts)" in m for _, m, _ in errs), errs
    assert failed_rows(wdb) == [(1, "embedding"), (2, "embedding"), (3, "embedding")]


@pytest.mark.parametrize("model", ["mistral/mistral-embed", "azure/emb-3", "huggingface/m", "openai/text-embedding-3-small"])
def test_a_vectorizers_api_base_the_operator_did_not_allow_is_never_called(wdb, provider, model):
    s = provider()
    blog(wdb, POSTS[:1])
    vectorizer(wdb, embedding=litellm(model, extra_options={"api_base": s.url}),
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    keys = {"MISTRAL_API_KEY": "m", "AZURE_API_KEY": "a", "HUGGINGFACE_API_KEY": "h", "OPENAI_API_KEY": "o"}
    run_worker(wdb.info.dbname, env={**FAST_HTTP, **keys, "PGAI_MIGRATE_ENDPOINTS": ""})
    assert s.requests == []
    [(_, message, _)] = errors(wdb)
    assert f"endpoint {s.url} is not allowed by this worker" in message
    assert failed_rows(wdb) == [(1, "embedding")]


def test_an_allowed_api_base_gets_no_key_it_is_not_paired_with(wdb, provider):
    s = provider()
    blog(wdb, POSTS)
    vectorizer(wdb, embedding=litellm("mistral/mistral-embed", api_key_name="MISTRAL_API_KEY",
                                      extra_options={"api_base": s.url + "/v1"}))
    run_worker(wdb.info.dbname, env={**FAST_HTTP, "MISTRAL_API_KEY": "secret", "PGAI_MIGRATE_ENDPOINTS": s.url + "/v1"})
    [r] = s.requests
    assert "authorization" not in r["headers"]
    assert_embedded(wdb)


@pytest.mark.parametrize("model", ["bedrock/amazon.titan-embed-text-v2:0", "vertex_ai/text-embedding-004", "together_ai/m2-bert"])
def test_an_unsupported_prefix_fails_its_keys_listing_the_supported_ones(wdb, model):
    blog(wdb, POSTS[:1])
    vectorizer(wdb, embedding=litellm(model), loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env=FAST_HTTP)
    assert failed_rows(wdb) == [(1, "embedding")]
    [(_, message, _)] = errors(wdb)
    prefix = model.split("/")[0]
    assert f'litellm provider "{prefix}"' in message and "supported prefixes: azure/, cohere/, huggingface/, jina_ai/, mistral/, ollama/, openai/, voyage/" in message


# --- OpenAI's token limits -------------------------------------------------


def long_text(tokens):
    """About `tokens` cl100k tokens of varied text (multi-byte characters
    included, so a cut can fall inside one)."""
    unit = "Vectorizers keep embeddings in sync — naïve façade, 日本語のテキスト, emoji 🎉. "
    enc = cl100k()
    n = len(enc.encode_ordinary(unit))
    return unit * (tokens // n + 1)


OPENAI_CONFIGS = {
    "openai": lambda s: ({"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 8,
                          "base_url": s.url + "/v1"}, {"PGAI_MIGRATE_ENDPOINTS": s.url + "/v1"}),
    "litellm-azure": lambda s: (litellm("azure/embeddings"), {"PGAI_MIGRATE_ENDPOINTS": "", "AZURE_API_BASE": s.url, "AZURE_API_KEY": "k"}),
    "litellm-openai": lambda s: (litellm("openai/text-embedding-3-large", extra_options={"api_base": s.url + "/v1"}),
                                 {"PGAI_MIGRATE_ENDPOINTS": s.url + "/v1"}),
}


@pytest.mark.parametrize("config", list(OPENAI_CONFIGS))
def test_an_input_over_8191_tokens_is_cut_and_embedded_not_failed(wdb, provider, config):
    s = provider(tokens=True)
    text = long_text(20_000)
    blog(wdb, [(1, "Long", text), (2, "Short", "a short post")])
    embedding, env = OPENAI_CONFIGS[config](s)
    vectorizer(wdb, embedding=embedding, chunking={"implementation": "none"},
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env={**SLOW_HTTP, **env})
    assert errors(wdb) == [] and failed_rows(wdb) == []
    [r] = s.requests
    # Cut to the context, or a token or two short of it where the cut
    # fell inside a character.
    assert CONTEXT - 4 <= max(r["counts"]) <= CONTEXT, r["counts"]
    [cut] = [t for t in r["body"]["input"] if t.startswith("Long: ")]
    assert (f"Long: {text}").startswith(cut) and len(cut) < len(text)
    got = stored_vectors(wdb)
    assert got[1] == pytest.approx(fake_vector(cut, 8), abs=1e-6)
    assert got[2] == pytest.approx(fake_vector("Short: a short post", 8), abs=1e-6)


def test_a_batch_over_300000_tokens_goes_in_several_requests(wdb, provider):
    s = provider(tokens=True)
    # 40 inputs of ~8,000 tokens: 320,000 in one batch of keys.
    text = long_text(7_990)
    blog(wdb, [(i, f"T{i}", text) for i in range(1, 41)])
    embedding, env = OPENAI_CONFIGS["openai"](s)
    vectorizer(wdb, embedding=embedding, chunking={"implementation": "none"},
               loading={"implementation": "column", "column_name": "content", "retries": 0})
    run_worker(wdb.info.dbname, env={**SLOW_HTTP, **env})
    assert errors(wdb) == [] and len(stored_vectors(wdb)) == 40
    assert len(s.requests) >= 2
    assert all(sum(r["counts"]) <= REQUEST_TOKENS for r in s.requests)
    assert sum(len(r["counts"]) for r in s.requests) == 40


def test_the_embed_subcommand_routes_litellm_models_too(provider):
    from worker_helpers import worker_bin, worker_env

    s = provider()
    cfg = {"embedding": litellm("cohere/embed-multilingual-v3.0", api_key_name="TEAM_COHERE_KEY",
                                extra_options={"api_base": s.url, "input_type": "search_query"})}
    p = subprocess.run([worker_bin(), "embed", "--endpoint", f"{s.url}=TEAM_COHERE_KEY", "--config", json.dumps(cfg), "hello"],
                       capture_output=True, text=True, env=worker_env({"TEAM_COHERE_KEY": "team"}))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == pytest.approx(fake_vector("hello", 8), abs=1e-6)
    [r] = s.requests
    assert r["headers"]["authorization"] == "Bearer team" and r["body"]["input_type"] == "search_query"

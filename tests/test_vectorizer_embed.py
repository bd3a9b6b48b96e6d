"""migrate.vectorizer_embed: a query's embedding in SQL, by a vectorizer's
name or id or by an embedding config, computed in the backend with the
worker's providers (the same vectors), cancellable, and bound by the same
rule as the worker: no role can make the server send a secret to a URL it
chooses (docs/security.md, "Embedding in SQL")."""

import json
import os
import threading
import time

import psycopg
import pytest

from conftest import assert_server_survived, connect, server_state
from worker_helpers import (  # noqa: F401
    LOCAL_EMBEDDING, blog, embedding_server, fake_vector, run_worker, vectorizer, wdb, worker_bin, worker_env,
)

pytestmark = pytest.mark.usefixtures("server_watch")

POSTS = [
    (1, "Cats", "Cats are small furry pets. They purr, sleep all day and chase mice at night."),
    (2, "PostgreSQL", "PostgreSQL stores rows in tables and answers SQL queries with indexes."),
    (3, "Weather", "Tomorrow it will rain all day, so bring an umbrella and a coat."),
]


def vec(conn, sql, *args):
    v = conn.execute(sql, args).fetchone()[0]
    return None if v is None else json.loads(v)


def cli_embed(config, *texts, endpoints=None):
    import subprocess

    env = worker_env({"PGAI_MIGRATE_ENDPOINTS": endpoints} if endpoints is not None else None)
    p = subprocess.run([worker_bin(), "embed", "--config", json.dumps(config), *texts],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def sqlstate(conn, sql, *args):
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql, args)
    return e.value.sqlstate, str(e.value)


def server_environment(conn):
    """The server's environment, as its backends inherit it: the
    postmaster's (a backend's own /proc entry holds its process title)."""
    data = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    try:
        pid = open(os.path.join(data, "postmaster.pid")).readline().strip()
        raw = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        pytest.skip("the server's environment is not readable here")
    env = dict(kv.split("=", 1) for kv in raw.decode("utf-8", "replace").split("\0") if "=" in kv)
    assert env.get("HOME") and env.get("PATH"), sorted(env)
    return env


# --- the local model ---------------------------------------------------------


def test_the_three_forms_give_the_workers_vectors_for_the_local_model(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb)
    [cli] = cli_embed({"embedding": LOCAL_EMBEDDING}, "which animal purrs?")
    by_name = vec(wdb, "SELECT migrate.vectorizer_embed('blog_vec', 'which animal purrs?')::text")
    by_id = vec(wdb, "SELECT migrate.vectorizer_embed(1, 'which animal purrs?')::text")
    by_config = vec(wdb, "SELECT migrate.vectorizer_embed(%s::jsonb, 'which animal purrs?')::text", json.dumps(LOCAL_EMBEDDING))
    pgai_spelling = {"config_type": "embedding", "implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}
    by_pgai = vec(wdb, "SELECT migrate.vectorizer_embed(%s::jsonb, 'which animal purrs?')::text", json.dumps(pgai_spelling))
    assert len(cli) == 384
    assert by_name == by_id == by_config == by_pgai
    assert by_name == pytest.approx(cli, abs=1e-6)


def test_a_search_is_one_statement(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb)
    run_worker(wdb.info.dbname)
    top = wdb.execute(
        "SELECT id FROM blog_embeddings ORDER BY embedding <=> migrate.vectorizer_embed('blog_vec', 'which animal purrs?') LIMIT 1"
    ).fetchone()
    assert top == (1,)


def test_null_input_is_null_and_unknown_vectorizers_are_42704(wdb):
    blog(wdb, POSTS)
    vectorizer(wdb)
    assert wdb.execute("SELECT migrate.vectorizer_embed('blog_vec', NULL)").fetchone() == (None,)
    assert wdb.execute("SELECT migrate.vectorizer_embed(NULL::text, 'x')").fetchone() == (None,)
    assert wdb.execute("SELECT migrate.vectorizer_embed(1, NULL, 'query')").fetchone() == (None,)
    state, msg = sqlstate(wdb, "SELECT migrate.vectorizer_embed('nope', 'x')")
    assert state == "42704" and 'vectorizer "nope" does not exist' in msg
    state, msg = sqlstate(wdb, "SELECT migrate.vectorizer_embed(99, 'x')")
    assert state == "42704" and "vectorizer with id 99 does not exist" in msg


def test_an_invalid_config_is_22023_naming_its_path(db):
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed('{\"implementation\": \"openai\", \"model\": \"m\", \"dimensions\": \"x\"}'::jsonb, 'q')")
    assert state == "22023" and "embedding.dimensions" in msg
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed('{\"implementation\": \"nope\"}'::jsonb, 'q')")
    assert state == "22023" and "embedding" in msg
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed('{\"implementation\": \"voyageai\", \"model\": \"voyage-3\", \"dimensions\": 4}'::jsonb, 'q', 'sideways')")
    assert state == "22023" and "input_type" in msg
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed('{\"implementation\": \"sentence_transformers\", \"model\": \"nomic-ai/nomic-embed-text-v1.5\", \"dimensions\": 768}'::jsonb, 'q')")
    # Not in the server's model folder or Hugging Face cache; a backend
    # never downloads.
    assert state == "58000" and "not in the Hugging Face cache" in msg


# --- HTTP providers ----------------------------------------------------------


def openai_config(url, **extra):
    return {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 8, "base_url": url + "/v1", **extra}


def test_http_providers_give_the_workers_vectors(db, embedding_server):
    s = embedding_server(dims=8)
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1, {s.url}",))
    cfg = openai_config(s.url)
    got = vec(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'hello')::text", json.dumps(cfg))
    [cli] = cli_embed({"embedding": cfg}, "hello")
    assert got == pytest.approx(cli, abs=1e-6) and got == pytest.approx(fake_vector("hello", 8), abs=1e-6)
    ollama = {"implementation": "ollama", "model": "nomic-embed-text", "dimensions": 8, "base_url": s.url}
    got = vec(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'hello')::text", json.dumps(ollama))
    assert got == pytest.approx(fake_vector("hello", 8), abs=1e-6)
    assert [r["path"] for r in s.requests] == ["/v1/embeddings", "/v1/embeddings", "/api/embed"]
    assert s.requests[0]["body"]["input"] == ["hello"] and "authorization" not in s.requests[0]["headers"]


def test_a_constant_query_is_embedded_once_not_per_row(db, embedding_server):
    s = embedding_server(dims=8)
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1",))
    db.execute("CREATE TABLE items (id int, e vector(8))")
    db.execute("INSERT INTO items SELECT g, array_fill(g::real, ARRAY[8])::vector FROM generate_series(1, 50) g")
    db.execute("SELECT id FROM items ORDER BY e <=> migrate.vectorizer_embed(%s::jsonb, 'q') LIMIT 3",
               (json.dumps(openai_config(s.url)),)).fetchall()
    assert len(s.requests) == 1


def test_provider_errors_are_clean_errors_with_the_providers_message(db, embedding_server):
    before = server_state()
    s = embedding_server(dims=8)
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1",))
    db.execute("SET migrate.my_llm_key = 'sk-session-secret'")
    cfg = json.dumps(openai_config(s.url, api_key_name="MY_LLM_KEY"))
    s.script = [401]
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", cfg)
    assert state == "38000" and "HTTP 401: scripted 401" in msg and "sk-session-secret" not in msg
    s.script = ["leak"]
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", cfg)
    assert state == "38000" and "internal-secret-page" not in msg
    s.script = ["wrong_dims"]
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", cfg)
    assert state == "38000" and "9 dimensions" in msg
    assert db.execute("SELECT 1").fetchone() == (1,)
    assert_server_survived(before)


def test_statement_timeout_stops_a_slow_provider(db, embedding_server):
    s = embedding_server(dims=8)
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1",))
    db.execute("SET statement_timeout = '500ms'")
    s.script = [("sleep", 5)]
    start = time.monotonic()
    state, _ = sqlstate(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", json.dumps(openai_config(s.url)))
    assert state == "57014" and time.monotonic() - start < 2
    db.execute("RESET statement_timeout")
    assert vec(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')::text", json.dumps(openai_config(s.url))) is not None


def test_pg_cancel_backend_stops_a_slow_provider(dbname, embedding_server):
    s = embedding_server(dims=8)
    s.script = [("sleep", 10)]
    result = {}
    with connect(dbname) as c, connect(dbname) as other:
        c.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1",))
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]

        def run():
            start = time.monotonic()
            try:
                c.execute("SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", (json.dumps(openai_config(s.url)),))
            except psycopg.Error as e:
                result["state"] = e.sqlstate
            result["took"] = time.monotonic() - start

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 10
        while not s.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.requests, "the request never arrived"
        cancelled_at = time.monotonic()
        assert other.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone() == (True,)
        t.join(5)
        assert not t.is_alive()
        assert result["state"] == "57014" and time.monotonic() - cancelled_at < 2
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_embedding_timeout_bounds_the_call(db, embedding_server):
    s = embedding_server(dims=8)
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1",))
    db.execute("SET migrate.embedding_timeout = '300ms'")
    s.script = [("sleep", 3), ("sleep", 3), ("sleep", 3)]
    start = time.monotonic()
    state, msg = sqlstate(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", json.dumps(openai_config(s.url)))
    assert state == "38000" and time.monotonic() - start < 2.5, msg


# --- the secrets rule: the attack ----------------------------------------------


@pytest.fixture
def mallory(dbname, roles):
    """A non-superuser with USAGE on migrate, owning a table and a
    vectorizer whose base_url is a listener it controls and whose
    api_key_name is a variable the server has."""
    m = roles("mallory")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{m}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{m}"')
    yield m
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{m}" CASCADE')


def mallorys_vectorizer(conn, url, key="HOME"):
    conn.execute("CREATE TABLE notes (id int PRIMARY KEY, content text)")
    conn.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps({
        "source": "notes", "name": "notes_vec",
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": openai_config(url, api_key_name=key),
        "destination": {"implementation": "table", "destination": "notes_e"},
    }),))
    return conn.execute("SELECT id FROM migrate.vectorizer WHERE name = 'notes_vec'").fetchone()[0]


def forms(vid, url, key):
    cfg = json.dumps(openai_config(url, api_key_name=key))
    return [
        ("SELECT migrate.vectorizer_embed('notes_vec', 'x')", ()),
        ("SELECT migrate.vectorizer_embed(%s, 'x')", (vid,)),
        ("SELECT migrate.vectorizer_embed(%s::jsonb, 'x', 'query')", (cfg,)),
    ]


def test_a_role_cannot_send_a_server_variable_to_its_own_listener(dbname, mallory, embedding_server):
    listener = embedding_server(dims=8)
    with connect(dbname) as admin:
        env = server_environment(admin)
    with connect(dbname, user=mallory) as c:
        secrets = [env[k] for k in ("HOME", "PATH") if env.get(k)]
        vid = mallorys_vectorizer(c, listener.url)
        for key in ("HOME", "PATH"):
            for sql, args in forms(vid, listener.url, key):
                state, msg = sqlstate(c, sql, *args)
                assert state == "42501", msg
                assert listener.url + "/v1" in msg and "migrate.embedding_endpoints" in msg
                assert not any(s in msg for s in secrets)
        # Nor by allowing its listener itself.
        state, _ = sqlstate(c, "SELECT set_config('migrate.embedding_endpoints', %s, false)", f"{listener.url}/v1=HOME")
        assert state == "42501"
    # A value set before the library is loaded (a placeholder) is not taken.
    with connect(dbname, user=mallory) as c:
        c.execute(f"SET migrate.embedding_endpoints = '{listener.url}/v1=HOME'")
        for sql, args in forms(vid, listener.url, "HOME"):
            assert sqlstate(c, sql, *args)[0] == "42501"
    assert listener.requests == []


def test_an_allowed_url_without_a_pair_gets_no_server_variable(dbname, mallory, embedding_server):
    listener = embedding_server(dims=8)
    with connect(dbname) as admin:
        admin.execute(f"ALTER DATABASE {dbname} SET migrate.embedding_endpoints = '{listener.url}/v1'")
        secrets = [v for k, v in server_environment(admin).items() if k in ("HOME", "PATH") and v]
    with connect(dbname, user=mallory) as c:
        vid = mallorys_vectorizer(c, listener.url)
        for key in ("HOME", "PATH"):
            for sql, args in forms(vid, listener.url, key):
                assert len(vec(c, sql, *args)) == 8
    assert len(listener.requests) == 6
    for r in listener.requests:
        assert "authorization" not in r["headers"]
        assert not any(s in json.dumps(r) for s in secrets)


def test_a_superuser_pair_sends_the_server_variable_as_bearer_token(db, embedding_server):
    s = embedding_server(dims=8)
    home = server_environment(db)["HOME"]
    db.execute("SELECT set_config('migrate.embedding_endpoints', %s, false)", (f"{s.url}/v1=HOME",))
    vec(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')::text", json.dumps(openai_config(s.url, api_key_name="HOME")))
    assert s.requests[-1]["headers"]["authorization"] == f"Bearer {home}"
    # Another name is not the paired one: no key.
    vec(db, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')::text", json.dumps(openai_config(s.url, api_key_name="PATH")))
    assert "authorization" not in s.requests[-1]["headers"]


def test_a_session_key_goes_to_an_allowed_url_only(dbname, mallory, embedding_server):
    allowed, other = embedding_server(dims=8), embedding_server(dims=8)
    with connect(dbname) as admin:
        admin.execute(f"ALTER DATABASE {dbname} SET migrate.embedding_endpoints = '{allowed.url}/v1'")
    with connect(dbname, user=mallory) as c:
        c.execute("SET migrate.my_llm_key = 'sk-mine'")
        vec(c, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')::text", json.dumps(openai_config(allowed.url, api_key_name="MY_LLM_KEY")))
        assert allowed.requests[-1]["headers"]["authorization"] == "Bearer sk-mine"
        state, msg = sqlstate(c, "SELECT migrate.vectorizer_embed(%s::jsonb, 'x')", json.dumps(openai_config(other.url, api_key_name="MY_LLM_KEY")))
        assert state == "42501" and "sk-mine" not in msg
        # The official URL needs a key: the session's, never the server's.
        state, msg = sqlstate(c, "SELECT migrate.vectorizer_embed('{\"implementation\": \"openai\", \"model\": \"m\", \"dimensions\": 8}'::jsonb, 'x')")
        assert state == "42501" and "SET migrate.openai_api_key" in msg
    assert other.requests == []


def test_libpq_and_worker_variables_can_never_be_paired(db):
    db.execute("SELECT migrate.vectorizer_embed(NULL::text, NULL)")  # loads the library
    db.execute("SELECT migrate.vectorizer_embed('nope', NULL)")
    for var in ("PGPASSWORD", "PGAI_MIGRATE_DB"):
        state, msg = sqlstate(db, f"SET migrate.embedding_endpoints = 'http://127.0.0.1:9/v1={var}'")
        assert state == "22023" and "never an API key" in msg
    state, _ = sqlstate(db, "SET migrate.embedding_endpoints = '127.0.0.1:9/v1'")
    assert state == "22023"

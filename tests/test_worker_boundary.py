"""The worker is a privilege boundary (docs/security.md, "The worker").

The deployment the README documents: one worker role serving every
tenant's vectorizer (it is in each one's grant_to) — here a superuser, the
worst case. A tenant owns its table, hence its store and queue, and
attaches code to them; the code tries to act with the worker's rights:
read another tenant's table, make itself superuser. Each attempt leaves
evidence in the tenant's own log table: who ran it, and what it stole."""

import json

import psycopg
import pytest

from conftest import connect
from worker_helpers import (  # noqa: F401
    FAST_HTTP, embedding_server, errors, queue_rows, run_worker, store, wdb,
)

pytestmark = pytest.mark.usefixtures("server_watch")


@pytest.fixture
def tenancy(wdb, roles, embedding_server):
    """tenant owns schema t with table t.blog and a vectorizer on it served
    by the superuser worker role; another tenant's secret sits in
    other.secret, readable by the worker only."""
    tenant, worker = roles("tenant"), roles("worker")
    server = embedding_server(dims=4)
    db = wdb
    db.execute(f'ALTER ROLE "{worker}" SUPERUSER')
    db.execute(f'GRANT USAGE ON SCHEMA migrate TO "{tenant}", "{worker}"')
    db.execute(f'CREATE SCHEMA t AUTHORIZATION "{tenant}"')
    db.execute("CREATE SCHEMA other")
    db.execute("CREATE TABLE other.secret (s text)")
    db.execute("INSERT INTO other.secret VALUES ('the other tenant''s secret')")
    with connect(db.info.dbname, user=tenant) as t:
        t.execute("CREATE TABLE t.log (who text, what text)")
        t.execute("GRANT INSERT, SELECT ON t.log TO PUBLIC")
        # The tenant's payload: records who runs it, tries to read the
        # other tenant's table and to become superuser.
        t.execute(f"""
            CREATE FUNCTION t.spy() RETURNS int LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO t.log VALUES (current_user, 'ran');
                BEGIN
                    INSERT INTO t.log SELECT current_user, s FROM other.secret;
                EXCEPTION WHEN OTHERS THEN NULL;
                END;
                BEGIN
                    ALTER ROLE "{tenant}" SUPERUSER;
                EXCEPTION WHEN OTHERS THEN NULL;
                END;
                RETURN 0;
            END $$""")
        t.execute("CREATE FUNCTION t.spy_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ "
                  "BEGIN PERFORM t.spy(); RETURN COALESCE(NEW, OLD); END $$")
        t.execute("CREATE FUNCTION t.spy_text(x text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$ "
                  "BEGIN PERFORM t.spy(); RETURN x; END $$")
        t.execute("CREATE TABLE t.blog (id int PRIMARY KEY, title text, content text)")
        t.execute("INSERT INTO t.blog SELECT g, 'title ' || g, 'content ' || g FROM generate_series(1, 3) g")
        vid = t.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps({
            "source": "t.blog", "name": "tenant_vec",
            "destination": {"implementation": "table", "destination": "blog_embeddings"},
            "loading": {"implementation": "column", "column_name": "content"},
            "embedding": {"implementation": "openai", "model": "m", "dimensions": 4, "base_url": server.url + "/v1"},
            "grant_to": [worker],
        }),)).fetchone()[0]
    yield dict(db=db, tenant=tenant, worker=worker, server=server, vid=vid)
    with connect(db.info.dbname) as admin:
        for role in [tenant, worker]:
            admin.execute(f'DROP OWNED BY "{role}" CASCADE')


def as_tenant(env, sql):
    with connect(env["db"].info.dbname, user=env["tenant"]) as t:
        t.execute(sql.replace("{queue}", f"migrate._vectorizer_q_{env['vid']}"))


def evidence(env):
    return env["db"].execute("SELECT who, what FROM t.log ORDER BY 1, 2").fetchall()


def assert_no_escalation(env):
    got = evidence(env)
    assert all(who == env["tenant"] for who, _ in got), got
    assert not any("secret" in what for _, what in got), got
    assert env["db"].execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (env["tenant"],)).fetchone()[0] is False


ATTACHED_CODE = {
    "store-trigger": "CREATE TRIGGER spy BEFORE INSERT ON t.blog_embeddings_store FOR EACH ROW EXECUTE FUNCTION t.spy_trigger()",
    "store-rule": "CREATE RULE spy AS ON INSERT TO t.blog_embeddings_store DO ALSO SELECT t.spy()",
    "store-default": "ALTER TABLE t.blog_embeddings_store ADD COLUMN x int DEFAULT t.spy()",
    "store-check": "ALTER TABLE t.blog_embeddings_store ADD CONSTRAINT spy CHECK (t.spy() = 0) NOT VALID",
    "store-index-expression": "CREATE INDEX spy ON t.blog_embeddings_store ((t.spy_text(chunk)))",
    "store-domain": "CREATE DOMAIN t.watched AS text CHECK (t.spy_text(coalesce(VALUE, '')) IS NOT NULL); "
                    "ALTER TABLE t.blog_embeddings_store ADD COLUMN w t.watched DEFAULT 'x'",
    "queue-trigger": "CREATE TRIGGER spy BEFORE DELETE ON {queue} FOR EACH ROW EXECUTE FUNCTION t.spy_trigger()",
    "source-policy": "ALTER TABLE t.blog ENABLE ROW LEVEL SECURITY; "
                     "CREATE POLICY spy ON t.blog USING (t.spy() = 0)",
}


@pytest.mark.parametrize("code", list(ATTACHED_CODE.values()), ids=list(ATTACHED_CODE))
def test_tenant_code_runs_with_the_tenants_rights_only(tenancy, code):
    env = tenancy
    as_tenant(env, code)
    if "POLICY" in code:
        # A superuser bypasses row security: the policy would run only for
        # a worker that is not one.
        # (grant_to gave the superuser nothing on shared objects: it lacked nothing.)
        env["db"].execute(f'ALTER ROLE "{env["worker"]}" NOSUPERUSER')
        as_tenant(env, f'GRANT USAGE ON SCHEMA t TO "{env["worker"]}"; GRANT SELECT ON t.blog TO "{env["worker"]}"')
    env["db"].execute("TRUNCATE t.log")
    p = run_worker(env["db"].info.dbname, user=env["worker"], env=FAST_HTTP, check=False)
    assert_no_escalation(env)
    # The work itself is done: the tenant's code ran as the tenant.
    assert p.returncode == 0, p.stderr
    assert sorted(store(env["db"], "t.blog_embeddings_store")) == [1, 2, 3]
    assert errors(env["db"]) == []


def test_a_row_hidden_by_forced_row_security_is_an_error_never_a_deletion(tenancy):
    env = tenancy
    db = env["db"]
    run_worker(db.info.dbname, user=env["worker"], env=FAST_HTTP)
    assert sorted(store(db, "t.blog_embeddings_store")) == [1, 2, 3]
    as_tenant(env, "ALTER TABLE t.blog ENABLE ROW LEVEL SECURITY; ALTER TABLE t.blog FORCE ROW LEVEL SECURITY; "
                   "CREATE POLICY hide ON t.blog USING (id <> 2)")
    db.execute("UPDATE t.blog SET content = content || '!'")
    p = run_worker(db.info.dbname, user=env["worker"], env=FAST_HTTP, check=False)
    assert p.returncode != 0
    # Nothing was deleted, nothing dequeued; the reason is recorded.
    assert sorted(store(db, "t.blog_embeddings_store")) == [1, 2, 3]
    assert [r[0] for r in queue_rows(db, env["vid"])] == [1, 2, 3]
    [(key, message, details)] = errors(db)
    assert key is None and details["step"] == "batch"
    assert "row-level security" in message, message


def test_the_worker_functions_give_no_one_anything(tenancy, roles):
    """A role with no grants on a vectorizer cannot claim, read or write
    through the worker's entry points; neither can another tenant."""
    env = tenancy
    stranger = roles("stranger")
    env["db"].execute(f'GRANT USAGE ON SCHEMA migrate TO "{stranger}"')
    vid = env["vid"]
    calls = [
        f"SELECT migrate.worker_claim({vid}, 10)",
        f"""SELECT migrate.worker_read({vid}, '[{{"id": 1}}]')""",
        f"""SELECT migrate.worker_store({vid}, '[{{"id": 1}}]', '[]')""",
        f"""SELECT migrate.worker_retry({vid}, '[{{"id": 9}}]', '[]')""",
        f"SELECT migrate.worker_index({vid})",
    ]
    with connect(env["db"].info.dbname, user=stranger) as s:
        for call in calls:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for vectorizer"):
                s.execute(call)
    assert [r[0] for r in queue_rows(env["db"], vid)] == [1, 2, 3]
    with connect(env["db"].info.dbname, user=stranger) as s:
        with pytest.raises(psycopg.errors.UndefinedObject, match="vectorizer 999 does not exist"):
            s.execute("SELECT migrate.worker_claim(999, 10)")
        with pytest.raises(psycopg.errors.NullValueNotAllowed):
            s.execute("SELECT migrate.worker_claim(NULL, 10)")
    env["db"].execute(f'REVOKE USAGE ON SCHEMA migrate FROM "{stranger}"')


# --- secrets and endpoints -----------------------------------------------------


def test_a_tenants_base_url_gets_no_request_and_no_secret(tenancy, embedding_server):
    """The tenant points its vectorizer at a URL of its own and names the
    worker's connection string as the API key: the worker calls nothing."""
    env = tenancy
    evil = embedding_server(dims=4)
    as_tenant(env, "SELECT migrate.alter_vectorizer('tenant_vec', '{\"embedding\": {\"base_url\": \"" + evil.url + "/v1\", "
                   "\"api_key_name\": \"PGAI_MIGRATE_DB\"}}'::jsonb)")
    p = run_worker(env["db"].info.dbname, "--retry-delay", "60", user=env["worker"], check=False,
                   env={**FAST_HTTP, "PGAI_MIGRATE_DB": "password=hunter2",
                        # The operator allows only the tenant's original endpoint.
                        "PGAI_MIGRATE_ENDPOINTS": env["server"].url + "/v1"})
    assert evil.requests == []
    errs = errors(env["db"])
    assert len(errs) == 3 and all("is not allowed by this worker" in m for _, m, _ in errs), errs
    assert not any("hunter2" in m for _, m, _ in errs)
    assert p.returncode == 0  # failed keys are recorded and retried, as any embedding failure


def test_a_key_goes_only_where_the_operator_paired_it(tenancy):
    env = tenancy
    server = env["server"]
    # Allowed endpoint, but the key is the operator's OpenAI key: not sent.
    as_tenant(env, "SELECT migrate.alter_vectorizer('tenant_vec', '{\"embedding\": {\"api_key_name\": \"OPENAI_API_KEY\"}}'::jsonb)")
    run_worker(env["db"].info.dbname, user=env["worker"],
               env={**FAST_HTTP, "OPENAI_API_KEY": "sk-operator", "PGAI_MIGRATE_ENDPOINTS": server.url + "/v1"})
    assert server.requests and all("authorization" not in r["headers"] for r in server.requests)
    assert sorted(store(env["db"], "t.blog_embeddings_store")) == [1, 2, 3]


def test_worker_settings_can_never_be_paired_as_keys(wdb):
    p = run_worker(wdb.info.dbname, check=False, env={"PGAI_MIGRATE_ENDPOINTS": "https://example.invalid/v1=PGAI_MIGRATE_DB"})
    assert p.returncode == 2 and "never an API key" in p.stderr


def test_error_rows_keep_the_providers_message_not_the_body(tenancy):
    """An endpoint's body (here an HTML page of an internal service) never
    reaches vectorizer_errors, which the tenant reads: only the status and
    the provider's own JSON error message."""
    env = tenancy
    db, name = env["db"], env["db"].info.dbname
    env["server"].script = ["leak"]
    run_worker(name, "--retry-delay", "60", user=env["worker"], env=FAST_HTTP)
    messages = [m for _, m, _ in errors(db)]
    assert messages == ["openai returned HTTP 400"] * 3, messages
    db.execute("DELETE FROM migrate._vectorizer_errors")
    db.execute(f"UPDATE migrate._vectorizer_q_{env['vid']} SET loading_retry_after = now()")
    env["server"].script = [400]
    run_worker(name, "--retry-delay", "60", user=env["worker"], env=FAST_HTTP)
    assert [m for _, m, _ in errors(db)] == ["openai returned HTTP 400: scripted 400"] * 3


# --- isolation between tenants ---------------------------------------------------------


@pytest.fixture
def two_tenants(wdb, embedding_server):
    db = wdb
    server = embedding_server(dims=4)
    for name in ["a", "b"]:
        db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, title text, content text)")
        db.execute(f"INSERT INTO {name} SELECT g, 't', 'c ' || g FROM generate_series(1, 3) g")
        db.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (json.dumps({
            "source": name, "name": f"{name}_vec",
            "destination": {"implementation": "table", "destination": f"{name}_emb"},
            "loading": {"implementation": "column", "column_name": "content"},
            "embedding": {"implementation": "openai", "model": "m", "dimensions": 4, "base_url": server.url + "/v1"},
        }),))
    return db


def test_a_tenant_holding_a_lock_costs_the_others_nothing(two_tenants):
    db = two_tenants
    with connect(db.info.dbname) as holder:
        with holder.transaction():
            holder.execute("LOCK TABLE a_emb_store IN ACCESS EXCLUSIVE MODE")
            p = run_worker(db.info.dbname, "--lock-timeout", "0.5", env=FAST_HTTP, check=False, timeout=60)
    assert sorted(store(db, "b_emb_store")) == [1, 2, 3]
    assert p.returncode == 1, p.stderr  # --once: work was left behind
    [(key, message, details)] = errors(db)
    assert key is None and "lock timeout" in message and "a_vec" in message
    assert len(queue_rows(db, 1)) == 3  # a's keys wait for the next run
    run_worker(db.info.dbname, env=FAST_HTTP)
    assert sorted(store(db, "a_emb_store")) == [1, 2, 3]


def test_a_tenants_slow_code_is_cut_off_by_the_statement_timeout(two_tenants):
    db = two_tenants
    db.execute("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$")
    db.execute("CREATE TRIGGER slow BEFORE INSERT ON a_emb_store FOR EACH ROW EXECUTE FUNCTION slow()")
    p = run_worker(db.info.dbname, "--statement-timeout", "1", env=FAST_HTTP, check=False, timeout=60)
    assert p.returncode == 1
    assert sorted(store(db, "b_emb_store")) == [1, 2, 3]
    assert any("statement timeout" in m for _, m, _ in errors(db))
    assert len(queue_rows(db, 1)) == 3


# --- one key's bad data ---------------------------------------------------------------


def test_a_vector_outside_float4s_range_fails_only_its_key(two_tenants):
    db = two_tenants
    db.execute("UPDATE a SET content = 'HUGE ' || content WHERE id = 2")
    run_worker(db.info.dbname, "--retry-delay", "60", "--vectorizer", "a_vec", env=FAST_HTTP)
    assert sorted(store(db, "a_emb_store")) == [1, 3]
    [(key, message, details)] = errors(db)
    assert key == {"id": 2} and details["step"] == "embedding" and details["attempt"] == 1
    assert "outside float4's range" in message
    assert [(r[0], r[2]) for r in queue_rows(db, 1)] == [(2, 1)]


def test_a_store_row_the_owners_constraint_refuses_fails_only_its_key(two_tenants):
    db = two_tenants
    db.execute("ALTER TABLE a_emb_store ADD CONSTRAINT no_bad CHECK (chunk NOT LIKE '%%BAD%%')")
    db.execute("UPDATE a SET content = 'BAD ' || content WHERE id = 3")
    run_worker(db.info.dbname, "--retry-delay", "60", "--vectorizer", "a_vec", env=FAST_HTTP)
    assert sorted(store(db, "a_emb_store")) == [1, 2]
    [(key, message, details)] = errors(db)
    assert key == {"id": 3} and details["step"] == "storing" and "no_bad" in message
    assert [(r[0], r[2]) for r in queue_rows(db, 1)] == [(3, 1)]


# --- configs the worker cannot run ---------------------------------------------------------


@pytest.mark.parametrize("edit, reason", [
    ("UPDATE migrate.vectorizer SET config = jsonb_set(config, '{chunking,chunk_size}', '\"big\"') WHERE id = 1",
     "chunk_size"),
    ("UPDATE migrate.vectorizer SET source_pk = '[]' WHERE id = 1", "no primary-key columns"),
], ids=["unreadable-config", "no-key-columns"])
def test_a_catalog_row_the_worker_cannot_run_is_reported_and_not_claimed(two_tenants, edit, reason):
    db = two_tenants
    db.execute(edit)
    p = run_worker(db.info.dbname, env=FAST_HTTP, check=False)
    assert p.returncode == 1, p.stderr
    [(key, message, details)] = errors(db)
    assert key is None and details["step"] == "config" and reason in message, message
    assert len(queue_rows(db, 1)) == 3  # nothing claimed, nothing lost
    assert sorted(store(db, "b_emb_store")) == [1, 2, 3]

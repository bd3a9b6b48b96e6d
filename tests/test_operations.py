"""pgai's operations API (SPEC §7.4): enable/disable_vectorizer_schedule,
vectorizer_queue_pending, vectorizer_status, vectorizer_errors,
set_scheduling, grant_vectorizer_usage. Each pgai 0.12 doc example runs
after replacing `ai.` with `migrate.`; every error has its SQLSTATE and
message; only the source's owner may change a vectorizer."""

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer

NAME = BLOG_CONFIG["name"]
MAX_BIGINT = 9223372036854775807
NO_SUCH_NAME_HINT = "SELECT name FROM migrate.vectorizer lists the vectorizers"
NO_SUCH_ID_HINT = "SELECT id, name FROM migrate.vectorizer lists the vectorizers"


def one(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


def disabled(conn, name=NAME):
    return one(conn, "SELECT disabled FROM migrate.vectorizer WHERE name = %s", (name,))


def fails(conn, query, sqlstate, message, params=None):
    with pytest.raises(psycopg.Error) as e:
        conn.execute(query, params)
    assert (e.value.sqlstate, e.value.diag.message_primary) == (sqlstate, message)
    return e.value


@pytest.fixture
def blog(db):
    """The README's blog vectorizer (id 1) over three rows."""
    create_blog(db)
    assert create_vectorizer(db, BLOG_CONFIG) == 1
    return db


@pytest.fixture
def owned(roles, dbname):
    """alice owns blog and its vectorizer (id 1, three rows queued); carol
    is a member of alice; mallory is another role; worker is alice's
    grant_to role. All may use schema migrate."""
    alice, carol, mallory, worker = roles("alice"), roles("carol"), roles("mallory"), roles("worker")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{alice}", "{carol}", "{mallory}", "{worker}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}"')
        admin.execute(f'GRANT "{alice}" TO "{carol}"')
        create_blog(admin)
        admin.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
    with connect(dbname, user=alice) as c:
        assert create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [worker]}) == 1
    yield dict(alice=alice, carol=carol, mallory=mallory, worker=worker)
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{alice}", "{carol}", "{mallory}", "{worker}" CASCADE')


# --- the pgai doc examples, ai. -> migrate. ---------------------------------


def test_pgai_doc_examples_run_unchanged_but_for_the_schema(db):
    """The examples of pgai's API reference (enable and disable schedules,
    status, queue_pending) and the issue's by-name calls."""
    create_blog(db, rows=3)
    create_blog(db, rows=2, table="post")
    assert create_vectorizer(db, BLOG_CONFIG) == 1
    assert create_vectorizer(db, {**BLOG_CONFIG, "source": "post", "name": "post_embedder",
                                  "destination": {"implementation": "table", "destination": "post_embeddings"}}) == 2

    # Usage example in a maintenance scenario
    db.execute("SELECT migrate.disable_vectorizer_schedule(1)")
    db.execute("SELECT migrate.disable_vectorizer_schedule(2)")
    assert (disabled(db), disabled(db, "post_embedder")) == (True, True)
    db.execute("SELECT migrate.enable_vectorizer_schedule(1)")
    db.execute("SELECT migrate.enable_vectorizer_schedule(2)")
    assert (disabled(db), disabled(db, "post_embedder")) == (False, False)
    # by name
    db.execute("SELECT migrate.disable_vectorizer_schedule('blog_content_embedder')")
    assert disabled(db) is True
    db.execute("SELECT migrate.enable_vectorizer_schedule('blog_content_embedder')")
    assert disabled(db) is False

    # Get an overview of all vectorizers
    rows = db.execute("SELECT * FROM migrate.vectorizer_status ORDER BY id").fetchall()
    assert [r[:8] for r in rows] == [
        (1, "public.blog", "public.blog_embeddings_store", "public.blog_embeddings", "embedding", 3, False, NAME),
        (2, "public.post", "public.post_embeddings_store", "public.post_embeddings", "embedding", 2, False, "post_embedder"),
    ]
    assert db.execute("SELECT * FROM migrate.vectorizer_status WHERE pending_items > 0").rowcount == 2
    assert db.execute(
        "SELECT id, source_table, pending_items FROM migrate.vectorizer_status WHERE pending_items > 1000"
    ).fetchall() == []
    assert db.execute(
        "SELECT id, source_table, pending_items FROM migrate.vectorizer_status WHERE pending_items > 2"
    ).fetchall() == [(1, "public.blog", 3)]

    assert one(db, "SELECT migrate.vectorizer_queue_pending(1)") == 3
    assert one(db, "SELECT migrate.vectorizer_queue_pending(1, exact_count=>true)") == 3
    assert one(db, "SELECT migrate.vectorizer_queue_pending('blog_content_embedder')") == 3
    assert one(db, "SELECT migrate.vectorizer_queue_pending('post_embedder', exact_count => true)") == 2
    assert one(db, "SELECT migrate.vectorizer_queue_pending(name => 'post_embedder', exact_count => false)") == 2
    assert one(db, "SELECT migrate.vectorizer_queue_pending(vectorizer_id => 2)") == 2

    # Reading the errors, as pgai's users do
    db.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, key, message, details) "
               """VALUES (1, '{"id": 2}', 'rate limited', '{"step": "embedding"}')""")
    assert one(db, "SELECT count(*) FROM migrate.vectorizer_errors") == 1
    assert db.execute("SELECT message FROM migrate.vectorizer_errors LIMIT 5").fetchall() == [("rate limited",)]
    assert db.execute("SELECT id, name, message, details FROM migrate.vectorizer_errors WHERE id = 1").fetchall() == [
        (1, NAME, "rate limited", {"step": "embedding"})]
    assert db.execute(
        "SELECT message FROM migrate.vectorizer_errors WHERE name = 'blog_content_embedder' ORDER BY recorded DESC"
    ).fetchall() == [("rate limited",)]


# --- vectorizer_status ------------------------------------------------------------


def test_status_has_pgais_columns_first_then_ours(blog):
    cur = blog.execute("SELECT * FROM migrate.vectorizer_status")
    # pgai's seven, in pgai's order (SPEC 7.4), then ours.
    assert [c.name for c in cur.description] == [
        "id", "source_table", "target_table", "view", "embedding_column", "pending_items", "disabled",
        "name", "source",
    ]
    assert cur.fetchone() == (1, "public.blog", "public.blog_embeddings_store", "public.blog_embeddings",
                              "embedding", 3, False, NAME, "blog")


def test_status_of_a_column_destination(db):
    db.execute('CREATE TABLE "My Docs" (id int PRIMARY KEY, content text)')
    db.execute("""INSERT INTO "My Docs" VALUES (1, 'a')""")
    create_vectorizer(db, {"source": '"My Docs"', "name": "docs",
                           "loading": {"implementation": "column", "column_name": "content"},
                           "embedding": {"implementation": "openai", "model": "m", "dimensions": 3},
                           "chunking": {"implementation": "none"},
                           "destination": {"implementation": "column", "embedding_column": "Content Embedding"}})
    # pgai: no target table or view; the embedding column quoted as an identifier.
    assert db.execute(
        "SELECT source_table, target_table, view, embedding_column, pending_items FROM migrate.vectorizer_status"
    ).fetchone() == ('public."My Docs"', None, None, '"Content Embedding"', 1)


def test_status_names_follow_renames(blog):
    blog.execute("CREATE SCHEMA arch")
    blog.execute('ALTER TABLE blog RENAME TO "Blog Posts"')
    blog.execute('ALTER TABLE "Blog Posts" SET SCHEMA arch')
    blog.execute("ALTER TABLE blog_embeddings_store RENAME TO store2")
    blog.execute("ALTER VIEW blog_embeddings RENAME TO view2")
    assert blog.execute(
        "SELECT source_table, target_table, view, source::text FROM migrate.vectorizer_status"
    ).fetchone() == ('arch."Blog Posts"', "public.store2", "public.view2", 'arch."Blog Posts"')


def test_status_shows_disabled_and_queue_depth_to_everyone(roles, dbname, owned):
    """Queue depth is not secret: any role sees pending_items (pgai shows NULL
    without SELECT on the queue); mallory cannot read the queue itself."""
    with connect(dbname, user=owned["alice"]) as c:
        c.execute("SELECT migrate.disable_vectorizer_schedule(1)")
    with connect(dbname, user=owned["mallory"]) as c:
        assert c.execute("SELECT name, pending_items, disabled FROM migrate.vectorizer_status").fetchone() == (NAME, 3, True)
        assert one(c, "SELECT migrate.vectorizer_queue_pending(1, true)") == 3
        assert one(c, "SELECT migrate.vectorizer_queue_pending('blog_content_embedder')") == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM migrate._vectorizer_q_1")


def test_progress_counts_pending_failed_and_errors_for_everyone(roles, dbname, owned):
    """vectorizer_progress: exact counts of both queues, the error rows and
    the oldest queued key, readable by a role that can read none of them."""
    with connect(dbname) as admin:
        admin.execute("UPDATE migrate._vectorizer_q_1 SET queued_at = now() - interval '1 hour' WHERE id = 1")
        admin.execute("INSERT INTO migrate._vectorizer_q_failed_1 (id, failure_step) VALUES (9, 'embedding')")
        admin.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, key, message, details) "
                      """VALUES (1, '{"id": 9}', 'boom', '{"step": "embedding"}')""")
    with connect(dbname, user=owned["mallory"]) as c:
        cur = c.execute("SELECT * FROM migrate.vectorizer_progress")
        assert [d.name for d in cur.description] == [
            "id", "name", "pending_items", "failed_items", "error_count", "oldest_queued_at", "oldest_queued_age",
            "disabled"]
        (id_, name, pending, failed, errors, oldest, age, disabled) = cur.fetchone()
        assert (id_, name, pending, failed, errors, disabled) == (1, NAME, 3, 1, 1, False)
        assert age.total_seconds() >= 3600
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM migrate._vectorizer_q_failed_1")
        fails(c, "SELECT * FROM migrate.vectorizer_backlog(42)", "42704", "vectorizer 42 does not exist")
        fails(c, "SELECT * FROM migrate.vectorizer_backlog(NULL)", "22004", "vectorizer_id must not be NULL")


# --- vectorizer_queue_pending --------------------------------------------------------


def test_queue_pending_counts_at_most_10001_rows_unless_exact(db):
    create_blog(db, rows=10001)
    create_vectorizer(db, BLOG_CONFIG)
    for call in ["migrate.vectorizer_queue_pending(1)", "migrate.vectorizer_queue_pending('blog_content_embedder')",
                 "migrate.vectorizer_queue_pending(1, false)"]:
        assert one(db, f"SELECT {call}") == MAX_BIGINT, call
    assert one(db, "SELECT pending_items FROM migrate.vectorizer_status") == MAX_BIGINT
    assert one(db, "SELECT migrate.vectorizer_queue_pending(1, exact_count => true)") == 10001
    assert one(db, "SELECT migrate.vectorizer_queue_pending('blog_content_embedder', true)") == 10001
    db.execute("DELETE FROM migrate._vectorizer_q_1 WHERE id = 1")
    assert one(db, "SELECT migrate.vectorizer_queue_pending(1)") == 10000
    assert one(db, "SELECT migrate.vectorizer_queue_pending(1, true)") == 10000


def test_queue_pending_errors(blog):
    e = fails(blog, "SELECT migrate.vectorizer_queue_pending('nope')", "42704", 'vectorizer "nope" does not exist')
    assert e.diag.message_hint == NO_SUCH_NAME_HINT
    e = fails(blog, "SELECT migrate.vectorizer_queue_pending(42, exact_count => true)", "42704", "vectorizer 42 does not exist")
    assert e.diag.message_hint == NO_SUCH_ID_HINT
    fails(blog, "SELECT migrate.vectorizer_queue_pending(NULL::int4)", "22004", "vectorizer_id must not be NULL")
    fails(blog, "SELECT migrate.vectorizer_queue_pending(NULL::text)", "22004", "name must not be NULL")
    fails(blog, "SELECT migrate.vectorizer_queue_pending(1, NULL)", "22004", "exact_count must not be NULL")
    fails(blog, "SELECT migrate.vectorizer_queue_pending('blog_content_embedder', NULL)", "22004", "exact_count must not be NULL")


# --- enable / disable ---------------------------------------------------------------


@pytest.mark.parametrize("arg", ["1", "'blog_content_embedder'", "vectorizer_id => 1", "name => 'blog_content_embedder'"])
def test_disable_and_enable_both_forms(blog, arg):
    blog.execute(f"SELECT migrate.disable_vectorizer_schedule({arg})")
    assert disabled(blog) is True
    blog.execute(f"SELECT migrate.disable_vectorizer_schedule({arg})")  # again: still disabled
    assert disabled(blog) is True
    blog.execute(f"SELECT migrate.enable_vectorizer_schedule({arg})")
    assert disabled(blog) is False
    # The queue is still maintained while disabled; nothing else changes.
    blog.execute("SELECT migrate.disable_vectorizer_schedule(1)")
    blog.execute("INSERT INTO blog VALUES (4, 't', 'c')")
    assert one(blog, "SELECT migrate.vectorizer_queue_pending(1)") == 4
    assert one(blog, "SELECT count(*) FROM migrate.revision") == 1


@pytest.mark.parametrize("fn", ["disable_vectorizer_schedule", "enable_vectorizer_schedule"])
def test_enable_disable_errors(blog, fn):
    e = fails(blog, f"SELECT migrate.{fn}('nope')", "42704", 'vectorizer "nope" does not exist')
    assert e.diag.message_hint == NO_SUCH_NAME_HINT
    e = fails(blog, f"SELECT migrate.{fn}(42)", "42704", "vectorizer 42 does not exist")
    assert e.diag.message_hint == NO_SUCH_ID_HINT
    fails(blog, f"SELECT migrate.{fn}(NULL::int4)", "22004", "vectorizer_id must not be NULL")
    fails(blog, f"SELECT migrate.{fn}(NULL::text)", "22004", "name must not be NULL")
    assert disabled(blog) is False


@pytest.mark.parametrize("action,fn", [("disable", "disable_vectorizer_schedule"), ("enable", "enable_vectorizer_schedule")])
@pytest.mark.parametrize("arg", ["1", "'blog_content_embedder'"])
def test_only_the_owner_may_enable_or_disable(roles, dbname, owned, action, fn, arg):
    with connect(dbname) as admin:
        admin.execute("UPDATE migrate.vectorizer SET disabled = %s", (action == "enable",))
    for who in ["mallory", "worker"]:
        with connect(dbname, user=owned[who]) as c:
            fails(c, f"SELECT migrate.{fn}({arg})", "42501",
                  f'must be owner of the source table of vectorizer "blog_content_embedder" to {action} it')
    with connect(dbname) as admin:
        assert disabled(admin) is (action == "enable")
    # The owner, a member of the owning role, a superuser.
    for who in ["alice", "carol", None]:
        with connect(dbname) as admin:
            admin.execute("UPDATE migrate.vectorizer SET disabled = %s", (action == "enable",))
        with connect(dbname, **({"user": owned[who]} if who else {})) as c:
            c.execute(f"SELECT migrate.{fn}({arg})")
            assert disabled(c) is (action == "disable"), who


def test_the_catalog_stays_closed_to_other_roles(roles, dbname, owned):
    """The functions write through migrate._vectorizer_disabled, whose own
    check is evaluated as the caller: updating it directly reaches only the
    caller's own vectorizers, and the catalog itself is not writable."""
    with connect(dbname, user=owned["mallory"]) as c:
        assert c.execute("UPDATE migrate._vectorizer_disabled SET disabled = true").rowcount == 0
        assert c.execute("SELECT count(*) FROM migrate._vectorizer_disabled").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE migrate.vectorizer SET disabled = true")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE migrate._vectorizer_disabled SET id = 2")
        assert disabled(c) is False
    with connect(dbname, user=owned["carol"]) as c:
        assert c.execute("UPDATE migrate._vectorizer_disabled SET disabled = true").rowcount == 1
        assert disabled(c) is True


def test_functions_run_as_the_caller_with_a_fixed_search_path(db):
    """No function starting with _ is executable by PUBLIC (also checked
    for the whole schema by test_attacks)."""
    assert db.execute(
        "SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
        "WHERE p.pronamespace = 'migrate'::regnamespace AND a.grantee = 0 AND p.proname LIKE '\\_%'"
    ).fetchall() == []
    for fn in ["migrate.enable_vectorizer_schedule(int4)", "migrate.disable_vectorizer_schedule(text)",
               "migrate.set_scheduling(int4, jsonb, jsonb)", "migrate.grant_vectorizer_usage(name, bool)",
               "migrate.vectorizer_queue_pending(text, bool)"]:
        # Run as the caller, with a fixed search_path.
        assert db.execute("SELECT prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure", (fn,)).fetchone() == (
            False, ["search_path=pg_catalog, pg_temp"]), fn
    assert db.execute(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'migrate.vectorizer_queue_pending(int4, bool)'::regprocedure"
    ).fetchone() == (True, ["search_path=pg_catalog, pg_temp"])


# --- vectorizer_errors ---------------------------------------------------------------


def test_errors_view_has_pgais_columns_first_then_ours(blog):
    blog.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, key, message, details) "
                 """VALUES (1, '{"id": 1}', 'boom', '{"step": "loading", "attempt": 1}')""")
    blog.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message) VALUES (1, 'batch')")
    cur = blog.execute("SELECT * FROM migrate.vectorizer_errors ORDER BY error_id")
    assert [c.name for c in cur.description] == [
        "id", "message", "details", "recorded", "name", "error_id", "vectorizer_id", "key", "recorded_by"]
    rows = cur.fetchall()
    assert [(r[0], r[1], r[2], r[4], r[6], r[7], r[8]) for r in rows] == [
        (1, "boom", {"step": "loading", "attempt": 1}, NAME, 1, {"id": 1}, "postgres"),
        (1, "batch", {}, NAME, 1, None, "postgres"),  # the table's defaults apply through the view
    ]
    assert rows[0][5] < rows[1][5] and rows[0][3] is not None
    # The rows are in migrate._vectorizer_errors and go with their vectorizer.
    assert one(blog, "SELECT count(*) FROM migrate._vectorizer_errors") == 2
    blog.execute("SELECT migrate.drop_vectorizer(1)")
    assert one(blog, "SELECT count(*) FROM migrate.vectorizer_errors") == 0


def test_errors_view_is_security_invoker_and_insertable_only_where_the_worker_needs(db):
    assert one(db, "SELECT reloptions FROM pg_class WHERE oid = 'migrate.vectorizer_errors'::regclass") == [
        "security_invoker=true"]
    assert one(db, "SELECT relrowsecurity FROM pg_class WHERE oid = 'migrate._vectorizer_errors'::regclass") is True
    assert db.execute(
        "SELECT column_name::text, is_updatable::text FROM information_schema.columns "
        "WHERE table_schema = 'migrate' AND table_name = 'vectorizer_errors' ORDER BY ordinal_position"
    ).fetchall() == [("id", "YES"), ("message", "YES"), ("details", "YES"), ("recorded", "YES"), ("name", "NO"),
                     ("error_id", "YES"), ("vectorizer_id", "YES"), ("key", "YES"), ("recorded_by", "YES")]
    assert sorted(r[0] for r in db.execute(
        "SELECT column_name::text FROM information_schema.column_privileges WHERE table_schema = 'migrate' "
        "AND table_name = 'vectorizer_errors' AND grantee = 'PUBLIC' AND privilege_type = 'INSERT'")) == [
        "details", "key", "message", "vectorizer_id"]


WORKER_INSERT = (  # what worker/src/worker/mod.rs runs (record_errors_in)
    "INSERT INTO migrate.vectorizer_errors (vectorizer_id, key, message, details) "
    "SELECT $1, e -> 'key', e ->> 'message', e -> 'details' FROM jsonb_array_elements($2) e"
)


def test_the_worker_role_records_errors_through_the_view_under_rls(roles, dbname, owned):
    worker, mallory, alice = owned["worker"], owned["mallory"], owned["alice"]
    payload = psycopg.types.json.Jsonb([
        {"key": {"id": 2}, "message": "429 from provider", "details": {"step": "embedding", "attempt": 1}},
        {"key": None, "message": "batch failed", "details": {"step": "batch"}},
    ])
    with connect(dbname, user=worker) as w:
        w.execute("SET search_path = pg_catalog, pg_temp")  # as the worker's session
        with w.cursor() as cur:
            cur.execute(WORKER_INSERT.replace("$1", "%s").replace("$2", "%s"), (1, payload))
        assert w.execute(
            "SELECT id, name, message, key, recorded_by FROM migrate.vectorizer_errors ORDER BY error_id"
        ).fetchall() == [(1, NAME, "429 from provider", {"id": 2}, worker), (1, NAME, "batch failed", None, worker)]
        # Nothing else is writable: not recorded_by, not the error's id, not the name.
        for columns, values in [("vectorizer_id, message, recorded_by", "1, 'x', 'postgres'"),
                                ("vectorizer_id, message, error_id", "1, 'x', 7"),
                                ("vectorizer_id, message, recorded", "1, 'x', now()"),
                                ("id, message", "1, 'x'")]:  # pgai's id is the vectorizer's: insert vectorizer_id
            with pytest.raises(psycopg.Error) as e:
                w.execute(f"INSERT INTO migrate.vectorizer_errors ({columns}) VALUES ({values})")
            # no privilege; error_id is also GENERATED ALWAYS (428C9)
            assert e.value.sqlstate in ("42501", "428C9"), (columns, e.value.sqlstate)
        with pytest.raises(psycopg.Error) as e:
            w.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message, name) VALUES (1, 'x', 'y')")
        assert e.value.sqlstate in ("0A000", "42501")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("UPDATE migrate.vectorizer_errors SET message = 'changed'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("DELETE FROM migrate.vectorizer_errors")
    with connect(dbname, user=mallory) as m:
        # Row-level security: no INSERT on the queue, no errors recorded; no
        # SELECT on the queue, no errors read.
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            m.execute("INSERT INTO migrate.vectorizer_errors (vectorizer_id, message) VALUES (1, 'forged')")
        assert "row-level security" in e.value.diag.message_primary
        assert one(m, "SELECT count(*) FROM migrate.vectorizer_errors") == 0
        assert one(m, "SELECT count(*) FROM migrate._vectorizer_errors") == 0
    with connect(dbname, user=alice) as a:  # the owner reads them
        assert one(a, "SELECT count(*) FROM migrate.vectorizer_errors WHERE name = 'blog_content_embedder'") == 2


# --- set_scheduling --------------------------------------------------------------------


def needs_alter_vectorizer(conn):
    if not one(conn, "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'alter_vectorizer' "
                     "AND pronamespace = 'migrate'::regnamespace)"):
        pytest.skip("migrate.alter_vectorizer is not installed")


def test_set_scheduling_replaces_scheduling_and_indexing_and_returns_the_config(blog):
    needs_alter_vectorizer(blog)
    before = one(blog, "SELECT config FROM migrate.vectorizer WHERE id = 1")
    config = one(blog, "SELECT migrate.set_scheduling(1, scheduling => migrate.scheduling_none(), "
                       "indexing => migrate.indexing_none())")
    assert config == one(blog, "SELECT config FROM migrate.vectorizer WHERE id = 1")
    assert config["scheduling"]["implementation"] == "none"
    assert config["indexing"]["implementation"] == "none"
    assert {k: v for k, v in config.items() if k not in ("scheduling", "indexing")} == {
        k: v for k, v in before.items() if k not in ("scheduling", "indexing")}
    # An in-place change, recorded.
    assert blog.execute(
        "SELECT operation, config FROM migrate.revision ORDER BY id DESC LIMIT 1").fetchone() == ("alter", config)
    assert one(blog, "SELECT migrate.vectorizer_queue_pending(1)") == 3
    # The defaults: pgai's scheduling_default() and indexing_default().
    config = one(blog, "SELECT migrate.set_scheduling(1)")
    assert config["scheduling"] == before["scheduling"] and config["indexing"] == before["indexing"]
    config = one(blog, "SELECT migrate.set_scheduling(1, migrate.scheduling_default(), "
                       "migrate.indexing_hnsw(min_rows => 10))")
    assert config["indexing"]["implementation"] == "hnsw" and config["indexing"]["min_rows"] == 10


def test_set_scheduling_errors(roles, dbname, owned):
    with connect(dbname) as admin:
        e = fails(admin, "SELECT migrate.set_scheduling(42)", "42704", "vectorizer 42 does not exist")
        assert e.diag.message_hint == NO_SUCH_ID_HINT
        fails(admin, "SELECT migrate.set_scheduling(NULL)", "22004", "vectorizer_id must not be NULL")
        fails(admin, "SELECT migrate.set_scheduling(1, NULL)", "22004", "scheduling must not be NULL")
        fails(admin, "SELECT migrate.set_scheduling(1, indexing => NULL)", "22004", "indexing must not be NULL")
        needs_alter_vectorizer(admin)
        with pytest.raises(psycopg.Error) as e:
            admin.execute("SELECT migrate.set_scheduling(1, '{\"implementation\": \"weekly\"}')")
        assert e.value.sqlstate == "22023", e.value.diag.message_primary
    with connect(dbname, user=owned["mallory"]) as c:
        fails(c, "SELECT migrate.set_scheduling(1, migrate.scheduling_none(), migrate.indexing_none())", "42501",
              'must be owner of the source table of vectorizer "blog_content_embedder" to alter it')


def test_set_scheduling_by_a_non_superuser_owner(roles, dbname, owned):
    with connect(dbname) as admin:
        needs_alter_vectorizer(admin)
    for who in ["alice", "carol"]:
        with connect(dbname, user=owned[who]) as c:
            config = one(c, "SELECT migrate.set_scheduling(1, migrate.scheduling_none(), migrate.indexing_none())")
            assert config["scheduling"]["implementation"] == "none"


# --- grant_vectorizer_usage ------------------------------------------------------------


def usage(conn, role):
    return conn.execute(
        "SELECT has_schema_privilege(%(r)s, 'migrate', 'USAGE'), has_schema_privilege(%(r)s, 'migrate', 'USAGE WITH GRANT OPTION')",
        {"r": role},
    ).fetchone()


def test_grant_vectorizer_usage(roles, dbname):
    user, admin_role, third, nobody = roles("user"), roles("admin"), roles("third"), roles("nobody")
    with connect(dbname) as su:
        assert usage(su, user) == (False, False)
        su.execute("SELECT migrate.grant_vectorizer_usage(%s)", (user,))
        assert usage(su, user) == (True, False)
        su.execute("SELECT migrate.grant_vectorizer_usage(%s, admin => true)", (admin_role,))
        assert usage(su, admin_role) == (True, True)
    # A user may now create a vectorizer on its own table.
    with connect(dbname) as su:
        su.execute(f'GRANT CREATE ON SCHEMA public TO "{user}"')
    with connect(dbname, user=user) as c:
        create_blog(c)
        assert create_vectorizer(c, BLOG_CONFIG) == 1
        # ... but not hand the usage on.
        e = fails(c, "SELECT migrate.grant_vectorizer_usage(%s)", "42501",
                  f'permission denied to grant usage of vectorizers to "{third}"', (third,))
        assert e.diag.message_detail == "It needs USAGE WITH GRANT OPTION on schema migrate."
        c.execute("SELECT migrate.drop_vectorizer(1, drop_all => true)")
        c.execute("DROP TABLE blog")
    # An admin may.
    with connect(dbname, user=admin_role) as c:
        c.execute("SELECT migrate.grant_vectorizer_usage(%s)", (third,))
        assert usage(c, third) == (True, False)
    with connect(dbname, user=nobody) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT migrate.grant_vectorizer_usage(%s)", (nobody,))
    with connect(dbname) as su:
        fails(su, "SELECT migrate.grant_vectorizer_usage('no_such_role_x')", "42704", 'role "no_such_role_x" does not exist')
        fails(su, "SELECT migrate.grant_vectorizer_usage(NULL)", "22004", "to_user must not be NULL")
        fails(su, "SELECT migrate.grant_vectorizer_usage(%s, NULL)", "22004", "admin must not be NULL", (user,))
        # A name is a name, not SQL.
        fails(su, "SELECT migrate.grant_vectorizer_usage(%s)", "42704",
              f'role "{user}; DROP SCHEMA migrate CASCADE" does not exist', (f"{user}; DROP SCHEMA migrate CASCADE",))
        su.execute(f'REVOKE ALL ON SCHEMA migrate FROM "{user}", "{admin_role}", "{third}" CASCADE')
        su.execute(f'REVOKE ALL ON SCHEMA public FROM "{user}"')


def test_grant_vectorizer_usage_to_public(dbname, db):
    db.execute("REVOKE USAGE ON SCHEMA migrate FROM PUBLIC")
    db.execute("SELECT migrate.grant_vectorizer_usage('public')")
    assert one(db, "SELECT has_schema_privilege('public', 'migrate', 'USAGE')") is True


# --- the upgrade fragment ----------------------------------------------------------------


def test_the_update_creates_what_a_fresh_install_creates():
    """Every view and function of sql/introspection.sql, sql/operations.sql,
    sql/embed.sql and the errors view of sql/worker.sql is in the update scripts (0.2.0 ->
    0.3.0 and later) word for word, so an updated database gets the same
    definitions."""
    import os
    import re

    from conftest import ROOT

    def read(*path):
        full = os.path.join(ROOT, *path)
        return open(full).read() if os.path.exists(full) else ""

    update = "".join(read("sql", f) for f in sorted(os.listdir(os.path.join(ROOT, "sql")))
                     if f.startswith("pgai_migrate--") and f.count("--") == 2 and f >= "pgai_migrate--0.2.0--")
    statements = []
    for name in ["introspection.sql", "operations.sql", "worker.sql", "embed.sql"]:
        text = read("sql", name)
        statements += re.findall(r"^CREATE FUNCTION .*?^\$\$;$", text, re.M | re.S)
        statements += re.findall(r"^CREATE VIEW .*?;$", text, re.M | re.S)
        statements += re.findall(r"^GRANT .*?;$", text, re.M | re.S)
    fresh_only = {  # created by 0.2.0 already; the update renames the table
        "GRANT SELECT ON migrate._vectorizer_errors TO PUBLIC;",
        "GRANT INSERT (vectorizer_id, key, message, details) ON migrate._vectorizer_errors TO PUBLIC;",
    }
    assert len(statements) > 15
    for statement in statements:
        if statement not in fresh_only:
            assert statement in update, statement.splitlines()[0]
    assert "ALTER TABLE migrate.vectorizer_errors RENAME TO _vectorizer_errors;" in update

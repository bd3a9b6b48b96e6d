"""Changing vectorizers: alter_vectorizer (in place and re-embedding),
plan_vectorizer (and that it agrees with what alter then does),
restore_vectorizer, round trips, and revision labels."""

import json
import random

import psycopg
import pytest

from conftest import BLOG_CONFIG, catalog_snapshot, connect, create_blog, create_vectorizer, queued, relations

ZERO = "array_fill(0, ARRAY[768])::vector"
NAME = "blog_content_embedder"


def alter(conn, changes, name=NAME, **kw):
    args = "".join(f", {k} => %({k})s" for k in kw)
    return conn.execute(
        f"SELECT migrate.alter_vectorizer(%(name)s, %(changes)s::jsonb{args})",
        {"name": name, "changes": json.dumps(changes), **kw},
    ).fetchone()[0]


def plan(conn, config):
    return conn.execute(
        "SELECT path, old_value, new_value, action, queued_rows FROM migrate.plan_vectorizer(%s::jsonb)",
        (json.dumps(config),),
    ).fetchall()


def config_of(conn, name=NAME):
    row = conn.execute("SELECT config FROM migrate.vectorizer WHERE name = %s", (name,)).fetchone()
    return row and row[0]


def revisions(conn):
    return conn.execute(
        "SELECT vectorizer_name, operation, label, restored_from FROM migrate.revision ORDER BY id"
    ).fetchall()


def store_rows(conn, store="blog_embeddings_store"):
    return conn.execute(f"SELECT id, chunk_seq FROM {store} ORDER BY 1, 2").fetchall()


@pytest.fixture
def blog(db):
    """The README's blog vectorizer with an embedding stored for rows 1 and 2
    and an empty queue, as if a worker had kept up."""
    create_blog(db, rows=4)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'a', {ZERO}), (2, 0, 'b', {ZERO})")
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    return db


# --- in place ---------------------------------------------------------------

@pytest.mark.parametrize("changes, path, value", [
    ({"processing": {"batch_size": 10}}, ["processing", "batch_size"], 10),
    ({"scheduling": "none"}, ["scheduling", "implementation"], "none"),
    ({"indexing": {"implementation": "hnsw", "m": 16, "ef_construction": 64}}, ["indexing", "implementation"], "hnsw"),
    ({"loading": {"retries": 2}}, ["loading", "retries"], 2),
    ({"embedding": {"api_key_name": "MY_KEY"}}, ["embedding", "api_key_name"], "MY_KEY"),
])
def test_in_place_changes_keep_embeddings_and_queue_nothing(blog, changes, path, value):
    before = store_rows(blog)
    assert alter(blog, changes) == 1
    got = config_of(blog)
    for k in path:
        got = got[k]
    assert got == value
    assert store_rows(blog) == before
    assert queued(blog) == []
    assert revisions(blog)[-1][:2] == (NAME, "alter")


def test_alter_revision_records_the_config_after(blog):
    alter(blog, {"processing": {"batch_size": 7}}, label="0002")
    name, op, label, restored = revisions(blog)[-1]
    assert (name, op, label, restored) == (NAME, "alter", "0002", None)
    cfg = blog.execute("SELECT config FROM migrate.revision ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert cfg == config_of(blog) and cfg["processing"]["batch_size"] == 7


def test_rename_vectorizer_and_its_objects_in_place(blog):
    alter(blog, {"name": "posts_v", "destination": {"destination": "post_emb", "target_schema": "s2"}}) if False else None
    blog.execute("CREATE SCHEMA s2")
    alter(blog, {"name": "posts_v", "destination": {"destination": "post_emb", "view_schema": "s2"},
                 "queue_schema": "s2", "queue_table": "posts_q"})
    assert config_of(blog) is None
    rows = blog.execute("SELECT kind, schema_name, table_name FROM migrate.managed_tables() ORDER BY 1").fetchall()
    assert rows == [
        ("failed_queue", "s2", "_vectorizer_q_failed_1"),
        ("queue", "s2", "posts_q"),
        ("store", "public", "post_emb_store"),
        ("view", "s2", "post_emb"),
    ]
    # The embeddings moved with the store; writes still reach the new names.
    assert store_rows(blog, "post_emb_store") == [(1, 0), (2, 0)]
    blog.execute("INSERT INTO blog VALUES (9, 't', 'c')")
    assert queued(blog, "posts_v") == [9]
    blog.execute("DELETE FROM blog WHERE id = 1")
    assert store_rows(blog, "post_emb_store") == [(2, 0)]
    assert blog.execute("SELECT count(*) FROM s2.post_emb").fetchone()[0] == 1
    v = config_of(blog, "posts_v")
    assert v["destination"]["target_table"] == "post_emb_store" and v["destination"]["view_schema"] == "s2"
    assert v["queue_table"] == "posts_q"


def test_grant_to_added_and_removed(blog, roles):
    a, b = roles("a"), roles("b")
    alter(blog, {"grant_to": [a]})

    def can(role, obj, priv):
        return blog.execute("SELECT has_table_privilege(%s, %s, %s)", (role, obj, priv)).fetchone()[0]

    assert can(a, "blog_embeddings_store", "INSERT") and can(a, "migrate._vectorizer_q_1", "DELETE")
    assert can(a, "blog", "SELECT") and can(a, "blog_embeddings", "SELECT")
    alter(blog, {"grant_to": [b]})
    for obj, priv in [("blog_embeddings_store", "INSERT"), ("migrate._vectorizer_q_1", "DELETE"),
                      ("blog", "SELECT"), ("blog_embeddings", "SELECT")]:
        assert not can(a, obj, priv), obj
        assert can(b, obj, priv), obj
    grants = blog.execute("SELECT grants FROM migrate.vectorizer").fetchone()[0]
    assert sorted((g["on"], g["role"]) for g in grants) == [("schema", b), ("source", b)]
    alter(blog, {"grant_to": []})
    assert not can(b, "blog", "SELECT")
    assert not blog.execute("SELECT has_schema_privilege(%s, 'migrate', 'USAGE')", (b,)).fetchone()[0]
    # nothing is left that would keep the role from being dropped
    left = blog.execute("SELECT count(*) FROM pg_shdepend WHERE refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)"
                        " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())", (b,)).fetchone()[0]
    assert left == 0


# --- re-embedding -----------------------------------------------------------

def test_reembed_change_refused_without_reembed_and_nothing_changes(blog):
    before = (catalog_snapshot(blog), relations(blog), revisions(blog))
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        alter(blog, {"chunking": {"chunk_size": 500}, "processing": {"batch_size": 3}})
    d = e.value.diag
    assert d.message_primary == f'chunking.chunk_size: this change invalidates the stored embeddings of vectorizer "{NAME}"'
    assert "Changed: chunking.chunk_size." in d.message_detail
    assert "queues all 4 rows of public.blog" in d.message_detail
    assert "reembed => true" in d.message_hint
    assert (catalog_snapshot(blog), relations(blog), revisions(blog)) == before


def test_chunking_change_requeues_every_row_and_keeps_chunks_until_replaced(blog):
    blog.execute("INSERT INTO migrate._vectorizer_q_failed_1 (id) VALUES (3)")
    alter(blog, {"chunking": {"chunk_size": 500}}, reembed=True)
    assert queued(blog) == [1, 2, 3, 4]
    assert blog.execute("SELECT count(*) FROM migrate._vectorizer_q_failed_1").fetchone()[0] == 0
    assert store_rows(blog) == [(1, 0), (2, 0)]
    assert config_of(blog)["chunking"]["chunk_size"] == 500


def test_model_change_empties_the_store(blog):
    alter(blog, {"embedding": {"model": "text-embedding-3-large"}}, reembed=True)
    assert store_rows(blog) == []
    assert queued(blog) == [1, 2, 3, 4]


def test_dimension_change_rebuilds_store_and_view(blog, roles):
    w = roles("w")
    alter(blog, {"grant_to": [w]})
    alter(blog, {"embedding": {"dimensions": 384}}, reembed=True)
    t = blog.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'blog_embeddings_store'::regclass AND attname = 'embedding'").fetchone()[0]
    assert t == "vector(384)"
    assert blog.execute("SELECT count(*) FROM blog_embeddings").fetchone()[0] == 0
    assert blog.execute("SELECT has_table_privilege(%s, 'blog_embeddings', 'SELECT')", (w,)).fetchone()[0]
    assert queued(blog) == [1, 2, 3, 4]
    # managed_tables and drop still know the new objects
    assert len(blog.execute("SELECT * FROM migrate.managed_tables()").fetchall()) == 4
    blog.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (NAME,))
    assert blog.execute("SELECT to_regclass('blog_embeddings_store')").fetchone()[0] is None


def test_template_change_moves_the_update_trigger_to_the_new_columns(blog):
    alter(blog, {"formatting": {"template": "$chunk"}}, reembed=True)
    blog.execute("DELETE FROM migrate._vectorizer_q_1")
    blog.execute("UPDATE blog SET title = 'new' WHERE id = 1")
    assert queued(blog) == []
    blog.execute("UPDATE blog SET content = 'new' WHERE id = 2")
    assert queued(blog) == [2]
    assert blog.execute("SELECT read_columns FROM migrate.vectorizer").fetchone()[0] == ["id", "content"]


def test_loading_column_change(blog):
    blog.execute("ALTER TABLE blog ADD COLUMN body text")
    alter(blog, {"loading": {"column_name": "body"}}, reembed=True)
    blog.execute("DELETE FROM migrate._vectorizer_q_1")
    blog.execute("UPDATE blog SET content = 'x' WHERE id = 1")
    assert queued(blog) == []
    blog.execute("UPDATE blog SET body = 'x' WHERE id = 1")
    assert queued(blog) == [1]


def test_destination_kind_change_table_to_column_and_back(blog):
    alter(blog, {"destination": {"implementation": "column", "embedding_column": "emb"}, "chunking": "none",
                 "name": "col"}, reembed=True)
    assert blog.execute("SELECT to_regclass('blog_embeddings_store'), to_regclass('blog_embeddings')").fetchone() == (None, None)
    assert blog.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'blog'::regclass AND attname = 'emb'").fetchone()[0] == "vector(768)"
    assert [r[0] for r in blog.execute("SELECT kind FROM migrate.managed_tables()").fetchall()] == ["queue", "failed_queue"]
    alter(blog, {"destination": {"implementation": "table", "destination": "blog_embeddings"},
                 "chunking": {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400}},
          name="col", reembed=True)
    assert blog.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'blog'::regclass AND attname = 'emb' AND NOT attisdropped").fetchone()[0] == 0
    assert store_rows(blog) == []
    blog.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'a', {ZERO})")
    blog.execute("DELETE FROM blog WHERE id = 1")
    assert store_rows(blog) == []


# --- errors -----------------------------------------------------------------

def test_alter_errors(blog, roles):
    with pytest.raises(psycopg.errors.UndefinedObject, match='vectorizer "nope" does not exist'):
        alter(blog, {}, name="nope")
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        blog.execute("SELECT migrate.alter_vectorizer(%s, NULL)", (NAME,))
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="source table of a vectorizer cannot be changed"):
        blog.execute("CREATE TABLE other (id int PRIMARY KEY, content text)")
        alter(blog, {"source": "other"})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="if_not_exists: applies only to create_vectorizer"):
        alter(blog, {"if_not_exists": True})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="chunking.chunk_overlap"):
        alter(blog, {"chunking": {"chunk_size": 100}}, reembed=True)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="changes must be a JSON object"):
        alter(blog, [1])
    create_blog(blog, table="b2")
    create_vectorizer(blog, {**BLOG_CONFIG, "source": "b2", "name": "other_v", "destination": {"implementation": "table", "destination": "b2e"}})
    with pytest.raises(psycopg.errors.DuplicateObject, match='vectorizer "other_v" already exists'):
        alter(blog, {"name": "other_v"})
    with pytest.raises(psycopg.errors.DuplicateTable, match='relation "public.b2e_store" already exists'):
        alter(blog, {"destination": {"destination": "b2e"}})
    # same source, unchanged: a no-op, no revision
    n = len(revisions(blog))
    alter(blog, {"source": "public.blog", "processing": config_of(blog)["processing"]})
    assert len(revisions(blog)) == n
    # not the owner
    other = roles("other")
    blog.execute(f'GRANT USAGE ON SCHEMA migrate TO "{other}"')
    try:
        with connect(blog.info.dbname, user=other) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of the source table"):
                alter(c, {"processing": {"batch_size": 3}})
    finally:
        blog.execute(f'REVOKE USAGE ON SCHEMA migrate FROM "{other}"')


# --- plan -------------------------------------------------------------------

def test_plan_for_a_new_vectorizer_is_create_with_the_rows_it_queues(db):
    create_blog(db, rows=5)
    assert plan(db, BLOG_CONFIG) == [(None, None, None, "create", 5)]
    assert plan(db, {**BLOG_CONFIG, "enqueue_existing": False}) == [(None, None, None, "create", 0)]
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


def test_plan_of_the_same_config_is_none_and_changes_nothing(blog):
    before = (catalog_snapshot(blog), relations(blog), revisions(blog))
    assert plan(blog, {**BLOG_CONFIG, "if_not_exists": True}) == [(None, None, None, "none", 0)]
    rows = plan(blog, {**BLOG_CONFIG, "processing": {"implementation": "default", "batch_size": 5},
                       "chunking": {**BLOG_CONFIG["chunking"], "chunk_size": 900}})
    assert rows == [
        ("chunking.chunk_size", 800, 900, "reembed", 4),
        ("processing.batch_size", None, 5, "in_place", 0),
    ]
    assert (catalog_snapshot(blog), relations(blog), revisions(blog)) == before


def test_plan_of_another_source_is_recreate(blog):
    create_blog(blog, table="b2")
    rows = plan(blog, {**BLOG_CONFIG, "source": "b2"})
    assert rows == [("source", "public.blog", "public.b2", "recreate", 3)]


def merge(config, changes):
    """The documented merge: a sub-object without "implementation" is
    merged into the stored one; anything else replaces it."""
    out = dict(config)
    for k, v in changes.items():
        if isinstance(v, dict) and "implementation" not in v and isinstance(out.get(k), dict):
            base = dict(out[k])
            if k == "destination" and "destination" in v:
                base.pop("target_table", None)
                base.pop("view_name", None)
            out[k] = {**base, **v}
        else:
            out[k] = v
    return out


CHANGES = [
    {"processing": {"batch_size": 11}},
    {"processing": {"implementation": "default", "concurrency": 3}},
    {"scheduling": "none"},
    {"indexing": "none"},
    {"grant_to": []},
    {"loading": {"retries": 1}},
    {"chunking": {"chunk_size": 700}},
    {"chunking": {"implementation": "recursive_character_text_splitter"}},
    {"chunking": "none"},
    {"formatting": {"template": "$chunk"}},
    {"formatting": "chunk_value"},
    {"embedding": {"model": "text-embedding-3-large"}},
    {"embedding": {"api_key_name": "OTHER"}},
    {"embedding": {"dimensions": 512}},
    {"parsing": "none"},
    {"destination": {"destination": "renamed"}},
    {"queue_schema": "public", "queue_table": "renamed_q"},
    {"name": "renamed_v"},
]


@pytest.mark.parametrize("seed", range(6))
def test_plan_agrees_with_what_alter_does(blog, seed):
    """Random combinations of changes: the plan's rows are exactly the
    leaves the alter then changes (before/after in the revision trail), and
    alter without reembed fails exactly when the plan has a reembed row."""
    rng = random.Random(seed)
    name = NAME
    for _ in range(3):
        changes = {}
        for c in rng.sample(CHANGES, rng.randint(1, 3)):
            changes.update(c)
        if "name" in changes and changes["name"] == name:
            del changes["name"]
        full = merge(config_of(blog, name), changes)
        try:
            rows = plan(blog, full)
        except psycopg.errors.InvalidParameterValue:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                alter(blog, changes, name=name, reembed=True)
            continue
        if rows and rows[0][3] == "create":
            continue  # a new name in a whole config plans a new vectorizer
        reembed = any(r[3] == "reembed" for r in rows)
        if reembed:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                alter(blog, changes, name=name)
        before = config_of(blog, name)
        q = blog.execute("SELECT queue_relid::text FROM migrate.vectorizer WHERE name = %s", (name,)).fetchone()[0]
        blog.execute(f"DELETE FROM {q}")
        alter(blog, changes, name=name, reembed=True)
        name = changes.get("name", name)
        after = config_of(blog, name)
        if rows == [(None, None, None, "none", 0)]:
            assert after == before
            continue
        for path, old, new, action, queued_rows in rows:
            o, n = before, after
            for k in path.split("."):
                o = o.get(k) if isinstance(o, dict) else None
                n = n.get(k) if isinstance(n, dict) else None
            assert (o, n) == (old, new), path
        assert queued(blog, name) == ([1, 2, 3, 4] if reembed else [])


# --- restore and round trips -----------------------------------------------

def test_restore_after_drop_all_recreates_from_the_last_revision(blog):
    alter(blog, {"processing": {"batch_size": 9}})
    cfg = config_of(blog)
    blog.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (NAME,))
    vid = blog.execute("SELECT migrate.restore_vectorizer(%s, label => 'down-0003')", (NAME,)).fetchone()[0]
    assert vid == 2
    restored = config_of(blog)
    assert restored == {**cfg, "queue_table": "_vectorizer_q_2"}
    assert queued(blog) == [1, 2, 3, 4]
    drop_id = blog.execute("SELECT max(id) FROM migrate.revision WHERE operation = 'drop'").fetchone()[0]
    assert revisions(blog)[-1] == (NAME, "create", "down-0003", drop_id)


def test_restore_after_drop_keeps_the_embeddings(blog):
    blog.execute("SELECT migrate.drop_vectorizer(%s)", (NAME,))
    blog.execute("SELECT migrate.restore_vectorizer(%s)", (NAME,))
    assert store_rows(blog) == [(1, 0), (2, 0)]
    assert blog.execute("SELECT relid::text FROM migrate.managed_tables() WHERE kind = 'store'").fetchone()[0] == "blog_embeddings_store"
    blog.execute("DELETE FROM blog WHERE id = 1")
    assert store_rows(blog) == [(2, 0)]


def test_restore_a_given_revision(blog):
    first = blog.execute("SELECT max(id) FROM migrate.revision").fetchone()[0]
    alter(blog, {"processing": {"batch_size": 9}})
    blog.execute("SELECT migrate.drop_vectorizer(%s, true)", (NAME,))
    blog.execute("SELECT migrate.restore_vectorizer(%s, %s)", (NAME, first))
    assert "batch_size" not in config_of(blog)["processing"]


def test_restore_errors(blog):
    with pytest.raises(psycopg.errors.DuplicateObject, match=f'vectorizer "{NAME}" already exists'):
        blog.execute("SELECT migrate.restore_vectorizer(%s)", (NAME,))
    with pytest.raises(psycopg.errors.UndefinedObject, match='no revision records a vectorizer "nope"'):
        blog.execute("SELECT migrate.restore_vectorizer('nope')")
    blog.execute("SELECT migrate.drop_vectorizer(%s)", (NAME,))
    with pytest.raises(psycopg.errors.UndefinedObject, match="has no revision 999"):
        blog.execute("SELECT migrate.restore_vectorizer(%s, 999)", (NAME,))


@pytest.mark.parametrize("drop_all", [False, True])
@pytest.mark.parametrize("destination", ["table", "column", "default"])
def test_round_trip_create_drop_create(db, drop_all, destination):
    create_blog(db)
    config = dict(BLOG_CONFIG)
    if destination == "column":
        config.update(destination={"implementation": "column", "embedding_column": "emb"}, chunking="none")
    elif destination == "default":
        config = {k: v for k, v in config.items() if k not in ("destination", "name")}
    for _ in range(2):
        vid = create_vectorizer(db, config)
        name = db.execute("SELECT name FROM migrate.vectorizer WHERE id = %s", (vid,)).fetchone()[0]
        assert queued(db, name) == [1, 2, 3]
        db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => %s)", (name, drop_all))
    create_vectorizer(db, config)


def test_adoption_refuses_another_roles_table(db, roles):
    create_blog(db)
    mallory = roles("mallory")
    db.execute(f'CREATE TABLE blog_embeddings_store (embedding_uuid uuid PRIMARY KEY, id int NOT NULL, chunk_seq int NOT NULL, chunk text NOT NULL, embedding vector(768) NOT NULL)')
    db.execute(f'ALTER TABLE blog_embeddings_store OWNER TO "{mallory}"')
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        create_vectorizer(db, BLOG_CONFIG)
    assert f'belongs to role "{mallory}"' in e.value.diag.message_detail
    db.execute("DROP TABLE blog_embeddings_store")
    db.execute("CREATE TABLE blog_embeddings_store (embedding_uuid uuid PRIMARY KEY, id int NOT NULL, chunk_seq int NOT NULL, chunk text NOT NULL, embedding vector(384) NOT NULL)")
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        create_vectorizer(db, BLOG_CONFIG)
    assert "vector(384)" in e.value.diag.message_detail


# --- labels -----------------------------------------------------------------

def test_set_local_label_is_consumed_by_the_first_operation(db):
    """Two migrations in one transaction (drizzle-kit, node-pg-migrate,
    TypeORM, Knex): the second never inherits the first's label."""
    create_blog(db)
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = '0001'")
        create_vectorizer(db, BLOG_CONFIG)
        # migration 0002 sets no label
        alter(db, {"processing": {"batch_size": 3}})
        db.execute("SET LOCAL migrate.revision_label = '0003'")
        db.execute("SELECT migrate.drop_vectorizer(%s, label => 'explicit')", (NAME,))
        db.execute("SELECT migrate.restore_vectorizer(%s)", (NAME,))
    assert [r[2] for r in revisions(db)] == ["0001", None, "explicit", None]


def test_session_label_for_tools_without_a_transaction(db):
    create_blog(db)
    db.execute("SET migrate.revision_label = 'prisma_0001'")
    create_vectorizer(db, BLOG_CONFIG)
    alter(db, {"processing": {"batch_size": 3}})
    assert [r[2] for r in revisions(db)] == ["prisma_0001", None]
    assert db.execute("SELECT current_setting('migrate.revision_label')").fetchone()[0] == ""


def test_label_survives_a_rolled_back_operation(db):
    create_blog(db)
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = '0001'")
        with db.transaction():
            create_vectorizer(db, BLOG_CONFIG)
            raise psycopg.Rollback()
        create_vectorizer(db, BLOG_CONFIG)
    assert [r[2] for r in revisions(db)] == ["0001"]


def test_column_destination_model_change_clears_the_column(db):
    create_blog(db)
    create_vectorizer(db, {**BLOG_CONFIG, "destination": {"implementation": "column", "embedding_column": "emb"},
                           "chunking": "none"})
    db.execute(f"UPDATE blog SET emb = {ZERO}")
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    alter(db, {"embedding": {"model": "text-embedding-3-large"}}, reembed=True)
    assert db.execute("SELECT count(emb) FROM blog").fetchone()[0] == 0
    assert queued(db) == [1, 2, 3]
    # a column rename is in place and keeps the values
    db.execute(f"UPDATE blog SET emb = {ZERO} WHERE id = 1")
    alter(db, {"destination": {"embedding_column": "vec"}, "name": "v2"})
    assert db.execute("SELECT count(vec) FROM blog").fetchone()[0] == 1
    assert db.execute("SELECT embedding_column FROM migrate.vectorizer").fetchone()[0] == "vec"


def test_partitioned_source_follows_a_template_change(db):
    db.execute("CREATE TABLE p (id int PRIMARY KEY, title text, content text) PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    db.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200)")
    db.execute("INSERT INTO p VALUES (1, 'a', 'b'), (150, 'c', 'd')")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "p", "name": "pv",
                           "destination": {"implementation": "table", "destination": "pe"}})
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    alter(db, {"formatting": {"template": "$chunk"}}, name="pv", reembed=True)
    assert queued(db, "pv") == [1, 150]
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    db.execute("UPDATE p SET title = 'z'")
    assert queued(db, "pv") == []
    db.execute("UPDATE p SET content = 'z' WHERE id = 150")
    assert queued(db, "pv") == [150]


def test_plan_by_a_role_that_cannot_read_the_source_uses_the_estimate(blog, roles):
    r = roles("reader")
    blog.execute(f'GRANT USAGE ON SCHEMA migrate TO "{r}"')
    blog.execute("ANALYZE blog")
    try:
        with connect(blog.info.dbname, user=r) as c:
            rows = plan(c, {**BLOG_CONFIG, "chunking": {**BLOG_CONFIG["chunking"], "chunk_size": 900}})
            assert rows == [("chunking.chunk_size", 800, 900, "reembed", 4)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT count(*) FROM blog")
    finally:
        blog.execute(f'REVOKE USAGE ON SCHEMA migrate FROM "{r}"')

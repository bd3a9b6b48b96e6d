"""A DBA's DDL against a vectorizer's source and objects: PostgreSQL's own
machinery (dependencies, event triggers) keeps every vectorizer whole.
Nothing here may leave the source unwritable or a vectorizer half there."""

import psycopg
import pytest

from conftest import BLOG_CONFIG, create_blog, create_vectorizer, queued

pytestmark = pytest.mark.usefixtures("server_watch")

ZERO = "array_fill(0, ARRAY[768])::vector"
NAME = BLOG_CONFIG["name"]


@pytest.fixture
def blog(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', {ZERO}), (2, 0, 'd', {ZERO})")
    return db


def catalog(db):
    return db.execute(
        "SELECT name, source::text, queue_schema, queue_table, target_schema, target_table, view_schema, view_name, "
        "config->>'source', config->'loading'->>'column_name', config->'formatting'->>'template', source_pk->0->>'attname' "
        "FROM migrate.vectorizer"
    ).fetchall()


def works(db, key=10, pk="id", content="content", store="blog_embeddings_store", source="blog"):
    """The source takes writes and the vectorizer follows them."""
    db.execute(f"INSERT INTO {source} ({pk}, {content}) VALUES ({key}, 'new')")
    assert key in queued(db)
    db.execute(f"INSERT INTO {store} ({pk}, chunk_seq, chunk, embedding) VALUES ({key}, 0, 'x', {ZERO})")
    db.execute(f"DELETE FROM {source} WHERE {pk} = {key}")
    assert key not in queued(db)
    assert db.execute(f"SELECT count(*) FROM {store} WHERE {pk} = {key}").fetchone()[0] == 0


# --- DROP EXTENSION ------------------------------------------------------------


def test_drop_extension_refuses_while_vectorizers_exist(blog):
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
        blog.execute("DROP EXTENSION pgai_migrate")
    assert "trigger _vectorizer_src_trg_1 on table blog depends on function migrate._vectorizer_trigger()" in e.value.diag.message_detail
    assert blog.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 1
    works(blog)


def test_drop_extension_cascade_leaves_no_trigger_behind(blog):
    blog.execute("DROP EXTENSION pgai_migrate CASCADE")
    assert blog.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal").fetchone()[0] == 0
    blog.execute("INSERT INTO blog (id, content) VALUES (10, 'still writable')")
    blog.execute("DELETE FROM blog")
    blog.execute("TRUNCATE blog")
    # A fresh install starts over without collisions.
    blog.execute("CREATE EXTENSION pgai_migrate")
    create_blog(blog, table="post")
    create_vectorizer(blog, {**BLOG_CONFIG, "source": "post", "name": "p", "destination": {"implementation": "table", "destination": "post_e"}})


# --- a vectorizer's own objects, by hand -----------------------------------------


@pytest.mark.parametrize(
    "statement,what",
    [
        ("DROP TABLE blog_embeddings_store CASCADE", "table public.blog_embeddings_store"),
        ("DROP VIEW blog_embeddings", "view public.blog_embeddings"),
        ("DROP TABLE migrate._vectorizer_q_1", "table migrate._vectorizer_q_1"),
        ("DROP TABLE migrate._vectorizer_q_failed_1", "table migrate._vectorizer_q_failed_1"),
        ("DROP TRIGGER _vectorizer_src_trg_1_upd ON blog", "trigger _vectorizer_src_trg_1_upd on public.blog"),
        # The view reads every column, so it is the first object named.
        ("ALTER TABLE blog DROP COLUMN content CASCADE", "view public.blog_embeddings"),
        ("ALTER TABLE blog DROP COLUMN title CASCADE", "view public.blog_embeddings"),
    ],
)
def test_dropping_a_vectorizers_object_by_hand_is_refused(blog, statement, what):
    before = catalog(blog)
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
        blog.execute(statement)
    assert e.value.diag.message_primary == f'cannot drop {what}: it belongs to vectorizer "{NAME}"'
    assert f"migrate.drop_vectorizer('{NAME}')" in e.value.diag.message_hint
    assert catalog(blog) == before
    works(blog)


def test_dropping_the_source_drops_its_vectorizer(blog):
    blog.execute("SET migrate.revision_label = 'drop blog'")
    blog.execute("DROP TABLE blog CASCADE")  # CASCADE: the view reads blog
    assert blog.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
    assert blog.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0
    for rel in ["blog_embeddings_store", "blog_embeddings", "migrate._vectorizer_q_1", "migrate._vectorizer_q_failed_1"]:
        assert blog.execute("SELECT to_regclass(%s)", (rel,)).fetchone()[0] is None
    assert blog.execute("SELECT operation, drop_all, label FROM migrate.revision ORDER BY id DESC LIMIT 1").fetchone() == ("drop", True, "drop blog")
    # The names are free again.
    create_blog(blog)
    create_vectorizer(blog, BLOG_CONFIG)


def test_drop_vectorizer_is_not_refused_by_its_own_drops(blog):
    blog.execute(f"SELECT migrate.drop_vectorizer('{NAME}', drop_all => true)")
    assert blog.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0


def test_dropping_a_schema_with_a_store_in_it_is_refused(db):
    create_blog(db)
    db.execute("CREATE SCHEMA emb")
    create_vectorizer(db, {**BLOG_CONFIG, "destination": {"implementation": "table", "destination": "e", "target_schema": "emb"}})
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as e:
        db.execute("DROP SCHEMA emb CASCADE")
    assert e.value.diag.message_primary == f'cannot drop table emb.e_store: it belongs to vectorizer "{NAME}"'
    works(db, store="emb.e_store")


# --- renames ---------------------------------------------------------------------


def test_renames_are_followed_everywhere(blog):
    blog.execute("CREATE SCHEMA app")
    blog.execute("ALTER TABLE blog RENAME TO posts")
    blog.execute("ALTER TABLE posts SET SCHEMA app")
    blog.execute("ALTER TABLE app.posts RENAME COLUMN id TO post_id")
    blog.execute("ALTER TABLE app.posts RENAME COLUMN content TO body")
    blog.execute("ALTER TABLE app.posts RENAME COLUMN title TO headline")
    blog.execute("ALTER TABLE blog_embeddings_store RENAME TO chunks")
    blog.execute("ALTER VIEW blog_embeddings RENAME TO search")
    blog.execute("ALTER TABLE migrate._vectorizer_q_1 RENAME TO blog_queue")
    assert catalog(blog) == [(
        NAME, "app.posts", "migrate", "blog_queue", "public", "chunks", "public", "search",
        "app.posts", "body", "${headline} - $chunk", "post_id",
    )]
    # The queue, store and view follow the key's new name, the view the
    # read columns' new names.
    assert blog.execute("SELECT post_id FROM migrate.blog_queue ORDER BY 1").fetchall() == [(1,), (2,), (3,)]
    assert blog.execute("SELECT post_id, headline, body FROM search ORDER BY 1").fetchall() == [
        (1, "title 1", "content 1"), (2, "title 2", "content 2")]
    works(blog, pk="post_id", content="body", store="chunks", source="app.posts")
    blog.execute("UPDATE app.posts SET body = 'edited' WHERE post_id = 3")
    blog.execute("UPDATE app.posts SET headline = 'edited' WHERE post_id = 2")
    assert queued(blog) == [1, 2, 3]
    managed = blog.execute("SELECT kind, schema_name, table_name FROM migrate.managed_tables() ORDER BY 1").fetchall()
    assert managed == [("failed_queue", "migrate", "_vectorizer_q_failed_1"), ("queue", "migrate", "blog_queue"),
                       ("store", "public", "chunks"), ("view", "public", "search")]
    status = blog.execute("SELECT source::text, target_table, view FROM migrate.vectorizer_status").fetchone()
    assert status == ("app.posts", "public.chunks", "public.search")
    blog.execute(f"SELECT migrate.drop_vectorizer('{NAME}', drop_all => true)")
    assert blog.execute("SELECT to_regclass('chunks'), to_regclass('search')").fetchone() == (None, None)


def test_renaming_the_schema_of_the_store_is_followed(blog):
    blog.execute("CREATE SCHEMA emb")
    blog.execute("ALTER TABLE blog_embeddings_store SET SCHEMA emb")
    blog.execute("ALTER SCHEMA emb RENAME TO vectors")
    assert catalog(blog)[0][4:6] == ("vectors", "blog_embeddings_store")
    works(blog, store="vectors.blog_embeddings_store")


def test_template_column_renamed_to_a_non_placeholder_is_refused(blog):
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        blog.execute('ALTER TABLE blog RENAME COLUMN title TO "the title"')
    assert e.value.diag.message_primary.startswith('formatting.template: cannot rename column "title" of public.blog to "the title"')
    works(blog)


# --- the primary key ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE blog DROP CONSTRAINT blog_pkey",
        "ALTER TABLE blog DROP CONSTRAINT blog_pkey, ADD PRIMARY KEY (id, views)",
        "ALTER TABLE blog DROP CONSTRAINT blog_pkey, ADD PRIMARY KEY (title)",
    ],
)
def test_changing_the_primary_key_is_refused(blog, statement):
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        blog.execute(statement)
    assert e.value.diag.message_primary == (
        f'cannot change the primary key of public.blog: vectorizer "{NAME}" identifies rows by (id integer)'
    )
    assert "drop the vectorizer" in e.value.diag.message_hint
    works(blog)


def test_retyping_a_read_column_is_refused(blog):
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        blog.execute("ALTER TABLE blog ALTER COLUMN content TYPE varchar(100)")
    works(blog)


def test_unrelated_ddl_on_the_source_is_fine(blog):
    blog.execute("ALTER TABLE blog ADD COLUMN tags text[]")
    blog.execute("CREATE INDEX ON blog (title)")
    blog.execute("ALTER TABLE blog RENAME COLUMN tags TO labels")
    blog.execute("ALTER TABLE blog DROP COLUMN labels")
    blog.execute("ALTER TABLE blog ALTER COLUMN views SET DEFAULT 1")
    works(blog)


def test_key_change_of_a_deferrable_key_loses_no_work(db):
    db.execute("CREATE TABLE items (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE, title text, content text)")
    db.execute("INSERT INTO items SELECT g, 't', 'c' || g FROM generate_series(1, 5) g")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "items", "destination": {"implementation": "table", "destination": "items_e"},
                           "enqueue_existing": False})
    db.execute(f"INSERT INTO items_e_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c1', {ZERO}), (2, 0, 'c2', {ZERO})")
    db.execute("UPDATE items SET id = id + 1")
    # Every key that now holds a row is queued (2 to 5 were each left by
    # one row and taken by another in the same statement); 1 holds no row.
    assert queued(db) == [2, 3, 4, 5, 6]
    # No key keeps chunks of the content it no longer has.
    assert db.execute("SELECT count(*) FROM items_e_store").fetchone()[0] == 0


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_create_in_a_snapshot_transaction_refuses_to_queue_existing_rows(db, level):
    create_blog(db)
    with db.transaction():
        db.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            create_vectorizer(db, BLOG_CONFIG)
        assert e.value.diag.message_primary.startswith(f"enqueue_existing: cannot queue the existing rows in a {level} transaction")
    with db.transaction():
        db.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
        create_vectorizer(db, {**BLOG_CONFIG, "enqueue_existing": False})
    assert queued(db) == []


# --- partitioned sources -------------------------------------------------------------


@pytest.fixture
def items(db):
    db.execute("CREATE TABLE items (id int PRIMARY KEY, title text, content text) PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE items_a PARTITION OF items FOR VALUES FROM (0) TO (100)")
    db.execute("CREATE TABLE items_b PARTITION OF items FOR VALUES FROM (100) TO (200)")
    db.execute("INSERT INTO items VALUES (1, 't', 'a1'), (2, 't', 'a2'), (101, 't', 'b1'), (102, 't', 'b2')")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "items", "destination": {"implementation": "table", "destination": "items_e"}})
    db.execute(f"INSERT INTO items_e_store (id, chunk_seq, chunk, embedding) SELECT id, 0, 'c', {ZERO} FROM items")
    return db


def stored(db):
    return [r[0] for r in db.execute("SELECT id FROM items_e_store ORDER BY 1").fetchall()]


def test_truncating_one_partition_forgets_its_rows(items):
    items.execute("TRUNCATE items_a")
    assert stored(items) == [101, 102]
    assert queued(items) == [101, 102]
    items.execute("TRUNCATE items")
    assert stored(items) == [] and queued(items) == []


def test_detaching_a_partition_forgets_its_rows(items):
    items.execute("ALTER TABLE items DETACH PARTITION items_b")
    assert stored(items) == [1, 2]
    assert queued(items) == [1, 2]
    # The detached table is no one's source any more: it takes every write.
    items.execute("TRUNCATE items_b")
    items.execute("INSERT INTO items_b VALUES (150, 't', 'x')")


def test_dropping_a_partition_forgets_its_rows(items):
    items.execute("DROP TABLE items_a")
    assert stored(items) == [101, 102]
    assert queued(items) == [101, 102]


def test_attaching_a_filled_table_queues_its_rows(items):
    items.execute("CREATE TABLE items_c (id int PRIMARY KEY, title text, content text)")
    items.execute("INSERT INTO items_c VALUES (201, 't', 'c1'), (202, 't', 'c2')")
    items.execute("ALTER TABLE items ATTACH PARTITION items_c FOR VALUES FROM (200) TO (300)")
    assert queued(items) == [1, 2, 101, 102, 201, 202]
    items.execute("TRUNCATE items_c")
    assert queued(items) == [1, 2, 101, 102]
    items.execute("CREATE TABLE items_d PARTITION OF items FOR VALUES FROM (300) TO (400)")
    items.execute("INSERT INTO items VALUES (301, 't', 'd1')")
    assert 301 in queued(items)
    items.execute("TRUNCATE items_d")
    assert 301 not in queued(items)
    items.execute(f"SELECT migrate.drop_vectorizer('{NAME}', drop_all => true)")
    assert items.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '\\_vectorizer%'").fetchone()[0] == 0

"""The blog example from the README, end to end: objects, queueing rules,
managed_tables, revisions, drop."""

import psycopg
import pytest

from conftest import BLOG_CONFIG, create_blog, create_vectorizer, queued, relations


def columns(conn, table):
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()


def test_blog_example_creates_store_view_queue_and_failed_queue(db):
    create_blog(db)
    vid = create_vectorizer(db, BLOG_CONFIG)
    assert vid == 1
    assert columns(db, "blog_embeddings_store") == [
        ("embedding_uuid", "uuid", True),
        ("id", "integer", True),
        ("chunk_seq", "integer", True),
        ("chunk", "text", True),
        ("embedding", "vector(768)", True),
    ]
    assert [c[0] for c in columns(db, "blog_embeddings")] == [
        "embedding_uuid", "chunk_seq", "chunk", "embedding", "id", "title", "content", "views",
    ]
    assert [c[0] for c in columns(db, "migrate._vectorizer_q_1")] == [
        "id", "queued_at", "loading_retries", "loading_retry_after",
    ]
    assert [c[0] for c in columns(db, "migrate._vectorizer_q_failed_1")] == ["id", "created_at", "failure_step"]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal").fetchone()[0] == 4


def test_managed_tables_lists_every_managed_relation(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    rows = db.execute("SELECT * FROM migrate.managed_tables()").fetchall()
    assert rows == [
        (1, "blog_content_embedder", "store", "public", "blog_embeddings_store", "blog_embeddings_store"),
        (1, "blog_content_embedder", "view", "public", "blog_embeddings", "blog_embeddings"),
        (1, "blog_content_embedder", "queue", "migrate", "_vectorizer_q_1", "migrate._vectorizer_q_1"),
        (1, "blog_content_embedder", "failed_queue", "migrate", "_vectorizer_q_failed_1", "migrate._vectorizer_q_failed_1"),
    ]
    desc = [(c.name, c.type_code) for c in db.execute("SELECT * FROM migrate.managed_tables()").description]
    assert [d[0] for d in desc] == ["vectorizer_id", "vectorizer_name", "kind", "schema_name", "table_name", "relid"]


def test_managed_tables_with_default_names(db):
    create_blog(db)
    config = {k: v for k, v in BLOG_CONFIG.items() if k not in ("name", "destination")}
    create_vectorizer(db, config)
    rows = db.execute("SELECT vectorizer_name, kind, schema_name, table_name FROM migrate.managed_tables()").fetchall()
    assert rows == [
        ("public_blog_embedding_store", "store", "public", "blog_embedding_store"),
        ("public_blog_embedding_store", "view", "public", "blog_embedding"),
        ("public_blog_embedding_store", "queue", "migrate", "_vectorizer_q_1"),
        ("public_blog_embedding_store", "failed_queue", "migrate", "_vectorizer_q_failed_1"),
    ]


def test_create_writes_one_revision_with_evaluated_config_and_label(db):
    create_blog(db)
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = 'ae1027a6acf'")
        create_vectorizer(db, BLOG_CONFIG)
    rows = db.execute(
        "SELECT vectorizer_id, vectorizer_name, operation, label, applied_by, config FROM migrate.revision"
    ).fetchall()
    assert len(rows) == 1
    vid, name, op, label, by, config = rows[0]
    assert (vid, name, op, label, by) == (1, "blog_content_embedder", "create", "ae1027a6acf", "postgres")
    assert config["embedding"] == {
        "implementation": "openai", "config_type": "embedding", "model": "text-embedding-3-small",
        "dimensions": 768, "api_key_name": "OPENAI_API_KEY",
    }
    assert config["loading"]["retries"] == 6
    assert config["destination"]["target_table"] == "blog_embeddings_store"
    assert config == db.execute("SELECT config FROM migrate.vectorizer").fetchone()[0]
    # Without the setting there is no label.
    db.execute("CREATE TABLE t2 (id int PRIMARY KEY, content text)")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "t2", "name": "t2", "destination": {"destination": "t2e", "implementation": "table"}, "formatting": "python_template"})
    assert db.execute("SELECT label FROM migrate.revision WHERE vectorizer_name = 't2'").fetchone()[0] is None


def test_vectorizer_status_shows_pending_items(db):
    create_blog(db, rows=5)
    create_vectorizer(db, BLOG_CONFIG)
    row = db.execute("SELECT name, source::text, target_table, view, pending_items FROM migrate.vectorizer_status").fetchone()
    assert row == ("blog_content_embedder", "blog", "public.blog_embeddings_store", "public.blog_embeddings", 5)


class TestQueueing:
    @pytest.fixture
    def blog(self, db):
        create_blog(db, rows=3)
        create_vectorizer(db, BLOG_CONFIG)
        return db

    def drain(self, db):
        db.execute("DELETE FROM migrate._vectorizer_q_1")

    def test_existing_rows_are_queued(self, blog):
        assert queued(blog) == [1, 2, 3]

    def test_enqueue_existing_false(self, db):
        create_blog(db, rows=3)
        create_vectorizer(db, {**BLOG_CONFIG, "enqueue_existing": False})
        assert queued(db) == []
        db.execute("INSERT INTO blog (id, content) VALUES (9, 'x')")
        assert queued(db) == [9]

    def test_insert_queues(self, blog):
        self.drain(blog)
        blog.execute("INSERT INTO blog (id, title, content) VALUES (10, 'a', 'b'), (11, 'c', 'd')")
        assert queued(blog) == [10, 11]

    def test_update_of_loaded_or_template_column_queues(self, blog):
        self.drain(blog)
        blog.execute("UPDATE blog SET content = 'new' WHERE id = 1")
        blog.execute("UPDATE blog SET title = 'new' WHERE id = 2")
        assert queued(blog) == [1, 2]

    def test_update_of_unrelated_column_queues_nothing(self, blog):
        self.drain(blog)
        blog.execute("UPDATE blog SET views = views + 1")
        blog.execute("UPDATE blog SET content = content")  # same value: nothing to re-embed
        assert queued(blog) == []

    def test_a_key_is_queued_at_most_once(self, blog):
        for _ in range(5):
            blog.execute("UPDATE blog SET content = content || '.'")
        assert queued(blog) == [1, 2, 3]

    def test_primary_key_change_moves_the_work(self, blog):
        blog.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', array_fill(0, ARRAY[768])::vector)")
        self.drain(blog)
        blog.execute("UPDATE blog SET id = 100 WHERE id = 1")
        assert queued(blog) == [100]
        assert blog.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 0

    def test_delete_removes_store_rows_and_pending_work(self, blog):
        for i in (1, 2):
            blog.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (%s, 0, 'c', array_fill(0, ARRAY[768])::vector)", (i,))
        blog.execute("DELETE FROM blog WHERE id = 1")
        assert blog.execute("SELECT id FROM blog_embeddings_store").fetchall() == [(2,)]
        assert queued(blog) == [2, 3]

    def test_truncate_empties_store_and_queue(self, blog):
        blog.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', array_fill(0, ARRAY[768])::vector)")
        blog.execute("TRUNCATE blog")
        assert blog.execute("SELECT count(*) FROM blog_embeddings_store").fetchone()[0] == 0
        assert queued(blog) == []

    def test_view_joins_store_and_source(self, blog):
        blog.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (2, 0, 'chunk text', array_fill(0, ARRAY[768])::vector)")
        assert blog.execute("SELECT id, chunk, title FROM blog_embeddings").fetchall() == [(2, "chunk text", "title 2")]

    def test_rename_of_source_keeps_working(self, blog):
        self.drain(blog)
        blog.execute("ALTER TABLE blog RENAME TO posts")
        blog.execute("INSERT INTO posts (id, content) VALUES (7, 'x')")
        assert queued(blog) == [7]
        assert blog.execute("SELECT source::text FROM migrate.vectorizer").fetchone()[0] == "posts"


def test_partitioned_source_queues_rows_of_every_partition(db):
    db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0) PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE blog_low PARTITION OF blog FOR VALUES FROM (0) TO (10)")
    db.execute("CREATE TABLE blog_high PARTITION OF blog FOR VALUES FROM (10) TO (100)")
    db.execute("INSERT INTO blog (id, content) VALUES (1, 'a'), (20, 'b')")
    create_vectorizer(db, BLOG_CONFIG)
    assert queued(db) == [1, 20]
    db.execute("DELETE FROM migrate._vectorizer_q_1")
    db.execute("INSERT INTO blog (id, content) VALUES (2, 'c'), (30, 'd')")
    db.execute("UPDATE blog SET content = 'e' WHERE id = 20")
    assert queued(db) == [2, 20, 30]


def test_inheritance_children_are_not_queued(db):
    """Triggers on a plain table do not cover its inheritance children, so
    their rows are not queued at creation either."""
    create_blog(db, rows=2)
    db.execute("CREATE TABLE blog_child () INHERITS (blog)")
    db.execute("INSERT INTO blog_child (id, content) VALUES (50, 'child')")
    create_vectorizer(db, BLOG_CONFIG)
    assert queued(db) == [1, 2]


def test_bulk_queue_has_the_same_shape_as_an_empty_one(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("CREATE TABLE t2 (id int PRIMARY KEY, content text)")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "t2", "name": "t2", "enqueue_existing": False,
                           "destination": {"implementation": "table", "destination": "t2e"}, "formatting": "python_template"})
    def shape(table):
        return db.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()
    assert shape("migrate._vectorizer_q_1") == shape("migrate._vectorizer_q_2")
    assert shape("migrate._vectorizer_q_1")[1] == ("queued_at", "timestamp with time zone", True, "now()")
    for q in ("migrate._vectorizer_q_1", "migrate._vectorizer_q_2"):
        assert db.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (q,)).fetchone()[0] == 1
        assert db.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (q,)).fetchone()[0] == "postgres"


class TestDrop:
    def test_drop_keeps_store_and_view_by_default(self, db):
        create_blog(db)
        create_vectorizer(db, BLOG_CONFIG)
        db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder')")
        rels = relations(db)
        assert ("blog_embeddings_store",) in rels and ("blog_embeddings",) in rels
        assert ("migrate._vectorizer_q_1",) not in rels
        assert ("migrate._vectorizer_q_failed_1",) not in rels
        assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal").fetchone()[0] == 0
        assert db.execute("SELECT (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'migrate'::regnamespace AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0
        db.execute("INSERT INTO blog (id, content) VALUES (50, 'still writable')")

    def test_drop_all_removes_everything(self, db):
        before = relations(db)
        create_blog(db)
        with_blog = relations(db)
        create_vectorizer(db, BLOG_CONFIG)
        db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
        assert relations(db) == with_blog
        assert before < with_blog

    def test_drop_writes_a_drop_revision(self, db):
        create_blog(db)
        create_vectorizer(db, BLOG_CONFIG)
        db.execute("SET migrate.revision_label = 'down-1'")
        db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', true)")
        rows = db.execute("SELECT operation, drop_all, label, config->'embedding'->>'model' FROM migrate.revision ORDER BY id").fetchall()
        assert rows == [("create", None, None, "text-embedding-3-small"), ("drop", True, "down-1", "text-embedding-3-small")]

    def test_unknown_name_is_42704(self, db):
        with pytest.raises(psycopg.errors.UndefinedObject) as e:
            db.execute("SELECT migrate.drop_vectorizer('nope')")
        assert e.value.sqlstate == "42704"
        assert e.value.diag.message_primary == 'vectorizer "nope" does not exist'

    def test_if_exists_is_a_notice(self, db):
        notices = []
        db.add_notice_handler(lambda d: notices.append(d.message_primary))
        db.execute("SELECT migrate.drop_vectorizer('nope', if_exists => true)")
        assert notices == ['vectorizer "nope" does not exist, skipping']
        assert db.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 0

    def test_drop_after_source_table_was_dropped(self, db):
        create_blog(db)
        create_vectorizer(db, BLOG_CONFIG)
        # The source takes its vectorizer along; a later drop finds nothing.
        db.execute("DROP TABLE blog CASCADE")
        assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
        db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true, if_exists => true)")

    def test_name_can_be_reused_after_drop(self, db):
        create_blog(db)
        create_vectorizer(db, BLOG_CONFIG)
        db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
        assert create_vectorizer(db, BLOG_CONFIG) == 2
        assert queued(db) == [1, 2, 3]

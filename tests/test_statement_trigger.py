"""Multi-row statements: the row triggers collect the keys and the
vectorizer's statement-level trigger writes them in one statement each.
The queue must end up exactly as if every row had written at once."""

import os

import psycopg
import pytest

from conftest import BLOG_CONFIG, ROOT, create_blog, create_vectorizer, queued

Q = "migrate._vectorizer_q_1"
STORE = "blog_embeddings_store"


@pytest.fixture
def blog(db):
    create_blog(db, rows=5)
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"DELETE FROM {Q}")
    return db


def store_row(conn, key, seq=0):
    conn.execute(
        f"INSERT INTO {STORE} (id, chunk_seq, chunk, embedding) "
        "VALUES (%s, %s, 'c', array_fill(0, ARRAY[768])::vector)",
        (key, seq),
    )


def stored(conn):
    return [r[0] for r in conn.execute(f"SELECT DISTINCT id FROM {STORE} ORDER BY 1").fetchall()]


def test_the_statement_trigger_exists(blog):
    defs = [r[0] for r in blog.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND tgname LIKE '%\\_stmt'"
    ).fetchall()]
    assert defs == [
        "CREATE TRIGGER _vectorizer_src_trg_1_stmt AFTER INSERT OR DELETE OR UPDATE OF id, title, content "
        "ON public.blog FOR EACH STATEMENT EXECUTE FUNCTION migrate._vectorizer_trigger('1')"
    ]


def test_multi_row_insert_update_delete(blog):
    blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 1009) g")
    assert queued(blog) == list(range(10, 1010))
    blog.execute(f"DELETE FROM {Q}")
    blog.execute("UPDATE blog SET views = views + 1")           # no read column
    assert queued(blog) == []
    blog.execute("UPDATE blog SET content = content WHERE id < 100")  # same values
    assert queued(blog) == []
    blog.execute("UPDATE blog SET content = content || '!' WHERE id < 100")
    assert queued(blog) == [1, 2, 3, 4, 5] + list(range(10, 100))
    for k in (1, 2, 50):
        store_row(blog, k)
    blog.execute("DELETE FROM blog WHERE id < 60")
    assert queued(blog) == list(range(60, 100))
    assert stored(blog) == []


def test_copy_queues_every_row(blog):
    with blog.cursor().copy("COPY blog (id, title, content) FROM STDIN") as cp:
        for i in range(100, 400):
            cp.write_row((i, "t", f"c{i}"))
    assert queued(blog) == list(range(100, 400))


def test_key_moves_in_one_statement(blog):
    for k in range(1, 6):
        store_row(blog, k)
    blog.execute("UPDATE blog SET id = id + 100 WHERE id <= 3")
    assert queued(blog) == [101, 102, 103]
    assert stored(blog) == [4, 5]


def test_deferrable_key_shift_keeps_every_key_that_holds_a_row(db):
    db.execute("CREATE TABLE blog (id int, title text, content text, views int NOT NULL DEFAULT 0)")
    db.execute("ALTER TABLE blog ADD PRIMARY KEY (id) DEFERRABLE INITIALLY IMMEDIATE")
    db.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(1, 5) g")
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"DELETE FROM {Q}")
    db.execute("UPDATE blog SET id = id + 1")
    assert queued(db) == [2, 3, 4, 5, 6]


def test_a_rolled_back_savepoint_drops_its_keys(blog):
    with blog.transaction():
        blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 12) g")
        try:
            with blog.transaction():
                blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(20, 22) g")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(30, 32) g")
    assert queued(blog) == [10, 11, 12, 30, 31, 32]


def test_a_failing_row_in_a_plpgsql_block_leaves_nothing_behind(blog):
    blog.execute(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = 55 THEN RAISE EXCEPTION 'boom'; END IF; RETURN NULL; END $$"
    )
    blog.execute("CREATE TRIGGER zz_boom AFTER INSERT ON blog FOR EACH ROW EXECUTE FUNCTION boom()")
    blog.execute(
        "DO $$ BEGIN "
        "  BEGIN INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(50, 56) g; "
        "  EXCEPTION WHEN others THEN NULL; END; "
        "  INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(60, 62) g; "
        "END $$"
    )
    assert queued(blog) == [60, 61, 62]


def test_nested_statements_on_the_source(blog):
    """A user's row trigger that writes the source again while our keys
    are collected: every key is queued once."""
    blog.execute(
        "CREATE FUNCTION echo() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id < 1000 THEN INSERT INTO blog VALUES (NEW.id + 1000, 't', 'c'); "
        "UPDATE blog SET content = 'again' WHERE id = NEW.id; END IF; RETURN NULL; END $$"
    )
    blog.execute("CREATE TRIGGER aa_echo AFTER INSERT ON blog FOR EACH ROW EXECUTE FUNCTION echo()")
    blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 19) g")
    assert queued(blog) == list(range(10, 20)) + list(range(1010, 1020))
    assert blog.execute("SELECT count(*) FROM blog WHERE content = 'again'").fetchone()[0] == 10


def test_multi_column_and_text_keys(db):
    db.execute("CREATE TABLE docs (tenant text, n bigint, body text, PRIMARY KEY (tenant, n))")
    create_vectorizer(db, {**BLOG_CONFIG, "source": "docs", "name": "docs",
                           "loading": {"implementation": "column", "column_name": "body"},
                           "formatting": {"implementation": "python_template", "template": "$chunk"},
                           "destination": {"implementation": "table", "destination": "docs_e"}})
    long = "x" * 5000      # a key long enough to be compressed in the row
    db.execute("INSERT INTO docs SELECT t, g, 'b' FROM unnest(ARRAY['a', 'b', %s]) t, generate_series(1, 3) g",
               (long,))
    rows = db.execute("SELECT tenant, n FROM migrate._vectorizer_q_1 ORDER BY 1, 2").fetchall()
    assert rows == sorted((t, n) for t in ("a", "b", long) for n in (1, 2, 3))
    db.execute("DELETE FROM docs WHERE n = 2")
    assert db.execute("SELECT count(*) FROM migrate._vectorizer_q_1 WHERE n = 2").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0] == 6


def test_without_the_statement_trigger_rows_write_at_once(blog):
    """An installation that has not added it yet, or has it disabled: the
    row triggers write per row, nothing is lost."""
    blog.execute("ALTER TABLE blog DISABLE TRIGGER _vectorizer_src_trg_1_stmt")
    blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 19) g")
    assert queued(blog) == list(range(10, 20))
    blog.execute("ALTER TABLE blog ENABLE TRIGGER _vectorizer_src_trg_1_stmt")
    blog.execute("DROP TRIGGER _vectorizer_src_trg_1_stmt ON blog")
    blog.execute("DELETE FROM blog WHERE id >= 15")
    assert queued(blog) == [10, 11, 12, 13, 14]


def test_the_upgrade_adds_missing_statement_triggers(blog):
    """The statements of the 0.2.0 -> 0.3.0 update that add the trigger."""
    blog.execute("DROP TRIGGER _vectorizer_src_trg_1_stmt ON blog")
    update = open(os.path.join(ROOT, "sql", "pgai_migrate--0.2.0--0.3.0.sql")).read()
    script = update[update.index("CREATE FUNCTION migrate._upgrade_add_statement_triggers()"):]
    script = script.replace("MODULE_PATHNAME", "$libdir/pgai_migrate")
    for _ in range(2):      # idempotent
        blog.execute(script)
    n = blog.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND tgname = '_vectorizer_src_trg_1_stmt'"
    ).fetchone()[0]
    assert n == 1
    assert blog.execute("SELECT count(*) FROM pg_proc WHERE proname = '_upgrade_add_statement_triggers'").fetchone()[0] == 0
    blog.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(10, 12) g")
    assert queued(blog) == [10, 11, 12]


def test_partitions_write_per_row(db):
    db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0) "
               "PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE blog_low PARTITION OF blog FOR VALUES FROM (0) TO (100)")
    db.execute("CREATE TABLE blog_high PARTITION OF blog FOR VALUES FROM (100) TO (1000)")
    create_vectorizer(db, BLOG_CONFIG)
    db.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(90, 110) g")
    db.execute("INSERT INTO blog_low SELECT g, 't', 'c' FROM generate_series(1, 5) g")
    assert queued(db) == list(range(1, 6)) + list(range(90, 111))
    db.execute(f"DELETE FROM {Q}")
    db.execute("UPDATE blog SET id = id + 100 WHERE id BETWEEN 95 AND 99")   # moves across partitions
    assert queued(db) == list(range(195, 200))


def test_a_worker_holding_a_key_makes_the_bulk_delete_wait(blog, dbname):
    """The dequeue still runs before the store delete: chunks a worker
    commits while the statement waits are removed."""
    blog.execute(f"INSERT INTO {Q} (id) VALUES (1), (2)")
    worker = psycopg.connect(dbname=dbname, **{k: v for k, v in __import__("conftest").CONNINFO.items() if k != "dbname"})
    worker.execute(f"DELETE FROM {Q} WHERE id IN (1, 2)")     # claimed, not committed
    import threading
    done = threading.Event()

    def delete():
        with psycopg.connect(dbname=dbname, autocommit=True,
                             **{k: v for k, v in __import__("conftest").CONNINFO.items() if k != "dbname"}) as c:
            c.execute("DELETE FROM blog WHERE id <= 3")
        done.set()

    t = threading.Thread(target=delete)
    t.start()
    assert not done.wait(1.0), "the delete did not wait for the worker"
    store_row(worker, 1)
    store_row(worker, 2)
    worker.commit()
    t.join(10)
    assert done.is_set()
    assert stored(blog) == []
    worker.close()

"""Defects of 0.3.0 found by using it as an attacker or a DBA would, each
fixed in 0.4.0: revision labels of no-ops, deep JSON through every jsonb
entry point, USAGE on schema migrate handed out by grant_to, names
squatted in schema migrate, colliding keys in the statement trigger, and
re-queueing that loses rows (REPEATABLE READ, FORCE ROW LEVEL SECURITY)."""

import json
import time

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued

pytestmark = pytest.mark.usefixtures("server_watch")

NAME = BLOG_CONFIG["name"]


def labels(conn):
    return conn.execute("SELECT operation, vectorizer_name, label FROM migrate.revision ORDER BY id").fetchall()


# --- revision labels: a no-op consumes the label too ---------------------------


NO_OPS = {
    "drop-if-exists": "SELECT migrate.drop_vectorizer('no_such_vectorizer', if_exists => true)",
    "create-if-not-exists": "SELECT migrate.create_vectorizer(%s::jsonb)" % psycopg.sql.quote(json.dumps({**BLOG_CONFIG, "if_not_exists": True})),
    "alter-same-config": "SELECT migrate.alter_vectorizer(%s, '{}'::jsonb)" % psycopg.sql.quote(NAME),
}


@pytest.mark.parametrize("no_op", list(NO_OPS))
def test_a_no_op_consumes_the_revision_label_so_the_next_migration_does_not_carry_it(db, no_op):
    """A runner that applies several migrations in one transaction: the
    first sets its label and turns out to be a no-op, the second sets none.
    The second's revision must not carry the first's label."""
    create_blog(db)
    create_blog(db, table="post")
    create_vectorizer(db, BLOG_CONFIG)
    with db.transaction():
        db.execute("SET LOCAL migrate.revision_label = 'm1_noop'")
        db.execute(NO_OPS[no_op])
        assert db.execute("SELECT current_setting('migrate.revision_label')").fetchone()[0] == ""
        # migration 2: no label set
        create_vectorizer(db, {**BLOG_CONFIG, "source": "post", "name": "post_embedder",
                               "destination": {"implementation": "table", "destination": "post_embeddings"}})
    assert labels(db) == [("create", NAME, None), ("create", "post_embedder", None)]


def test_a_rolled_back_no_op_gives_the_label_back(db):
    db.execute("SET migrate.revision_label = 'kept'")
    with pytest.raises(psycopg.errors.UndefinedObject):
        with db.transaction():
            db.execute("SELECT migrate.drop_vectorizer('no_such_vectorizer', if_exists => true)")
            db.execute("SELECT migrate.drop_vectorizer('no_such_vectorizer')")
    assert db.execute("SELECT current_setting('migrate.revision_label')").fetchone()[0] == "kept"

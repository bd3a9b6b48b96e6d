"""A vectorizer's relations follow its source's owner: the trigger writes
and the worker's steps run as that role, and only it may read the
embeddings. An owner change of the source moves them all; the old owner
keeps nothing."""

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_vectorizer, queued

pytestmark = pytest.mark.usefixtures("server_watch")

ZERO = "array_fill(0, ARRAY[768])::vector"


@pytest.fixture
def owned(db, dbname, roles):
    alice, bob = roles("alice"), roles("bob")
    db.execute(f'GRANT USAGE ON SCHEMA migrate TO "{alice}", "{bob}"')
    db.execute(f'CREATE SCHEMA app AUTHORIZATION "{alice}"')
    db.execute(f'GRANT USAGE, CREATE ON SCHEMA app TO "{bob}"')
    with connect(dbname, user=alice) as a:
        a.execute("CREATE TABLE app.blog (id int PRIMARY KEY, title text, content text)")
        a.execute("INSERT INTO app.blog VALUES (1, 't', 'c'), (2, 't', 'd')")
        create_vectorizer(a, {**BLOG_CONFIG, "source": "app.blog",
                              "destination": {"implementation": "table", "destination": "blog_embeddings", "target_schema": "app", "view_schema": "app"}})
    db.execute(f"INSERT INTO app.blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'c', {ZERO})")
    yield alice, bob
    db.execute("DROP SCHEMA IF EXISTS app CASCADE")
    db.execute(f'REVOKE ALL ON SCHEMA migrate FROM "{alice}", "{bob}"')


def owners(db):
    return dict(db.execute(
        "SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner) FROM migrate.vectorizer v "
        "JOIN pg_class c ON c.oid IN (v.source, v.queue_relid, v.queue_failed_relid, v.store_relid, v.view_relid)"
    ).fetchall())


def test_an_owner_change_of_the_source_moves_the_vectorizers_relations(db, dbname, owned):
    alice, bob = owned
    db.execute(f'ALTER TABLE app.blog OWNER TO "{bob}"')
    got = owners(db)
    assert len(got) == 5 and set(got.values()) == {bob}, got
    # The old owner reads nothing any more; the new one does.
    with connect(dbname, user=alice) as a:
        for rel in ["app.blog_embeddings_store", "app.blog_embeddings", "migrate._vectorizer_q_1"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                a.execute(f"SELECT * FROM {rel}")
    with connect(dbname, user=bob) as b:
        assert b.execute("SELECT count(*) FROM app.blog_embeddings").fetchone()[0] == 1
        b.execute("INSERT INTO app.blog VALUES (3, 't', 'e')")  # the trigger writes as bob
    assert queued(db) == [1, 2, 3]
    with connect(dbname, user=bob) as b:
        b.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")


def test_an_owner_change_of_one_of_its_relations_alone_is_refused(db, owned):
    alice, bob = owned
    for rel in ["app.blog_embeddings_store", "migrate._vectorizer_q_1"]:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="belong to the owner of its source table"):
            db.execute(f'ALTER TABLE {rel} OWNER TO "{bob}"')
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        db.execute(f'ALTER VIEW app.blog_embeddings OWNER TO "{bob}"')
    assert set(owners(db).values()) == {alice}

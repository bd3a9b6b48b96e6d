"""Creating (or restoring) a vectorizer takes over a store and view that a
drop kept (`drop_all => false`) only when they were kept from a vectorizer
on the same source: a store kept from `blog` is never grafted onto `news`,
whose view would serve blog's chunks."""

import psycopg
import pytest

from conftest import BLOG_CONFIG, create_blog, create_vectorizer

pytestmark = pytest.mark.usefixtures("server_watch")

ZERO = "array_fill(0, ARRAY[768])::vector"


@pytest.fixture
def kept(db):
    create_blog(db)
    create_blog(db, table="news")
    create_vectorizer(db, BLOG_CONFIG)
    db.execute(f"INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) VALUES (1, 0, 'a blog chunk', {ZERO})")
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder')")  # keeps store and view
    return db


def test_a_store_kept_from_another_source_is_not_adopted(kept):
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        create_vectorizer(kept, {**BLOG_CONFIG, "source": "news", "name": "news_v"})
    assert "kept by the drop of vectorizer \"blog_content_embedder\" on public.blog, not on public.news" in e.value.diag.message_detail
    assert kept.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
    assert kept.execute("SELECT chunk FROM blog_embeddings_store").fetchall() == [("a blog chunk",)]


def test_a_store_kept_from_the_same_source_is_adopted_with_its_embeddings(kept):
    create_vectorizer(kept, {**BLOG_CONFIG, "name": "again"})
    assert kept.execute("SELECT id, chunk FROM blog_embeddings").fetchall() == [(1, "a blog chunk")]


def test_a_table_of_the_right_shape_made_by_hand_is_not_adopted(db):
    create_blog(db)
    db.execute("CREATE TABLE blog_embeddings_store (embedding_uuid uuid, id int, chunk_seq int, chunk text, embedding vector(768))")
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        create_vectorizer(db, BLOG_CONFIG)
    assert "No drop of a vectorizer on public.blog kept it" in e.value.diag.message_detail

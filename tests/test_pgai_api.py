"""The pgai-compatible call form, the config helpers, every destination and
loading, grants, if_not_exists and custom queue/view placement."""

import json

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued

PGAI_STYLE = """
SELECT migrate.create_vectorizer(
    'blog'::regclass,
    name => 'blog_content_embedder',
    destination => migrate.destination_table('blog_embeddings'),
    loading => migrate.loading_column('content'),
    embedding => migrate.embedding_openai('text-embedding-3-small', 768),
    chunking => migrate.chunking_character_text_splitter(800, 400, '.', false),
    formatting => migrate.formatting_python_template('$title - $chunk')
)"""


def stored_config(conn, name="blog_content_embedder"):
    return conn.execute("SELECT config FROM migrate.vectorizer WHERE name = %s", (name,)).fetchone()[0]


def test_named_argument_form_stores_what_the_jsonb_form_stores(db):
    create_blog(db)
    assert db.execute(PGAI_STYLE).fetchone()[0] == 1
    from_helpers = stored_config(db)
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    create_vectorizer(db, BLOG_CONFIG)
    from_json = stored_config(db)
    # Only the default queue name differs: it carries the new id.
    assert from_json.pop("queue_table") == "_vectorizer_q_2"
    assert from_helpers.pop("queue_table") == "_vectorizer_q_1"
    assert from_json == from_helpers
    assert queued(db) == [1, 2, 3]


@pytest.mark.parametrize(
    "helper,short",
    [
        ("migrate.embedding_openai('text-embedding-3-small', 768, chat_user => 'u', base_url => 'http://x')",
         {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768, "user": "u", "base_url": "http://x"}),
        ("migrate.embedding_ollama('nomic-embed-text', 768, options => '{\"num_ctx\": 2048}', keep_alive => '5m')",
         {"implementation": "ollama", "model": "nomic-embed-text", "dimensions": 768, "options": {"num_ctx": 2048}, "keep_alive": "5m"}),
        ("migrate.embedding_voyageai('voyage-3-lite', 512)",
         {"implementation": "voyageai", "model": "voyage-3-lite", "dimensions": 512}),
        ("migrate.embedding_litellm('cohere/embed-english-v3.0', 1024, api_key_name => 'COHERE_API_KEY', extra_options => '{\"x\": 1}')",
         {"implementation": "litellm", "model": "cohere/embed-english-v3.0", "dimensions": 1024, "api_key_name": "COHERE_API_KEY", "extra_options": {"x": 1}}),
        ("migrate.embedding_sentence_transformers()",
         {"implementation": "sentence_transformers"}),
    ],
    ids=["openai", "ollama", "voyageai", "litellm", "sentence_transformers"],
)
def test_each_embedding_provider_both_ways(db, helper, short):
    create_blog(db)
    db.execute(f"SELECT migrate.create_vectorizer('blog'::regclass, name => 'a', loading => migrate.loading_column('content'), embedding => {helper}, destination => migrate.destination_table('a'))")
    create_vectorizer(db, {"source": "blog", "name": "b", "loading": {"implementation": "column", "column_name": "content"}, "embedding": short, "destination": {"implementation": "table", "destination": "b"}})
    a, b = stored_config(db, "a"), stored_config(db, "b")
    assert a["embedding"] == b["embedding"]
    for key in ("chunking", "formatting", "indexing", "scheduling", "processing", "parsing", "loading"):
        assert a[key] == b[key], key


@pytest.mark.parametrize(
    "helper,short",
    [
        ("migrate.chunking_character_text_splitter(500, 50, E'\\n', true)",
         {"implementation": "character_text_splitter", "chunk_size": 500, "chunk_overlap": 50, "separator": "\n", "is_separator_regex": True}),
        ("migrate.chunking_recursive_character_text_splitter(1000, 100, ARRAY[E'\\n', ' '])",
         {"implementation": "recursive_character_text_splitter", "chunk_size": 1000, "chunk_overlap": 100, "separators": ["\n", " "]}),
        ("migrate.chunking_recursive_character_text_splitter()", "recursive_character_text_splitter"),
        ("migrate.chunking_none()", "none"),
    ],
    ids=["character", "recursive", "recursive-defaults", "none"],
)
def test_each_chunking_mode_both_ways(db, helper, short):
    create_blog(db)
    db.execute(f"SELECT migrate.create_vectorizer('blog', name => 'a', loading => migrate.loading_column('content'), embedding => migrate.embedding_openai('m', 8), chunking => {helper}, destination => migrate.destination_table('a'))")
    create_vectorizer(db, {"source": "blog", "name": "b", "loading": {"implementation": "column", "column_name": "content"}, "embedding": {"implementation": "openai", "model": "m", "dimensions": 8}, "chunking": short, "destination": {"implementation": "table", "destination": "b"}})
    assert stored_config(db, "a")["chunking"] == stored_config(db, "b")["chunking"]


def test_every_option_through_helpers(db):
    create_blog(db)
    db.execute("""SELECT migrate.create_vectorizer('blog'::regclass,
        loading => migrate.loading_column('content', retries => 3),
        parsing => migrate.parsing_none(),
        embedding => migrate.embedding_openai('m', 8),
        chunking => migrate.chunking_none(),
        indexing => migrate.indexing_hnsw(min_rows => 10, opclass => 'vector_l2_ops', m => 16, ef_construction => 64),
        formatting => migrate.formatting_chunk_value(),
        scheduling => migrate.scheduling_none(),
        processing => migrate.processing_default(batch_size => 10, concurrency => 2),
        grant_to => migrate.grant_to(),
        enqueue_existing => false)""")
    c = stored_config(db, "public_blog_embedding_store")
    assert c["indexing"] == {"implementation": "hnsw", "config_type": "indexing", "min_rows": 10, "opclass": "vector_l2_ops", "m": 16, "ef_construction": 64, "create_when_queue_empty": True}
    assert c["processing"] == {"implementation": "default", "config_type": "processing", "batch_size": 10, "concurrency": 2}
    assert c["loading"]["retries"] == 3
    assert c["formatting"] == {"implementation": "chunk_value", "config_type": "formatting"}
    assert queued(db, "public_blog_embedding_store") == []


def test_helpers_return_pgai_json(db):
    assert db.execute("SELECT migrate.scheduling_timescaledb()").fetchone()[0] == {
        "implementation": "timescaledb", "config_type": "scheduling", "schedule_interval": "00:05:00"}
    assert db.execute("SELECT migrate.indexing_diskann(storage_layout => 'plain')").fetchone()[0] == {
        "implementation": "diskann", "config_type": "indexing", "min_rows": 100000, "storage_layout": "plain", "create_when_queue_empty": True}
    assert db.execute("SELECT migrate.loading_uri('url')").fetchone()[0] == {
        "implementation": "uri", "config_type": "loading", "column_name": "url", "retries": 6}


def test_pgai_json_pasted_as_is(db):
    create_blog(db)
    pgai = {
        "source": "blog",
        "loading": {"config_type": "loading", "implementation": "column", "column_name": "content", "retries": 6},
        "parsing": {"config_type": "parsing", "implementation": "auto"},
        "embedding": {"config_type": "embedding", "implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768, "api_key_name": "OPENAI_API_KEY"},
        "chunking": {"config_type": "chunking", "implementation": "recursive_character_text_splitter", "chunk_size": 800, "chunk_overlap": 400, "separators": ["\n\n", "\n", ".", "?", "!", " ", ""], "is_separator_regex": False},
        "formatting": {"config_type": "formatting", "implementation": "python_template", "template": "$chunk"},
        "indexing": {"config_type": "indexing", "implementation": "default"},
        "scheduling": {"config_type": "scheduling", "implementation": "default"},
        "processing": {"config_type": "processing", "implementation": "default"},
        "destination": {"config_type": "destination", "implementation": "table", "target_schema": "public", "target_table": "blog_embedding_store", "view_schema": "public", "view_name": "blog_embedding"},
    }
    create_vectorizer(db, pgai)
    short = {"source": "blog", "loading": {"implementation": "column", "column_name": "content"}, "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768}}
    db.execute("CREATE TABLE blog2 (LIKE blog INCLUDING ALL)")
    stored = stored_config(db, "public_blog_embedding_store")
    create_vectorizer(db, {**short, "source": "blog2"})
    other = stored_config(db, "public_blog2_embedding_store")
    for key in ("loading", "parsing", "embedding", "chunking", "formatting", "indexing", "scheduling", "processing"):
        assert stored[key] == other[key], key


def test_untyped_literal_reaches_the_jsonb_form(db):
    create_blog(db)
    vid = db.execute(
        "SELECT migrate.create_vectorizer('" + json.dumps(BLOG_CONFIG).replace("'", "''") + "')"
    ).fetchone()[0]
    assert vid == 1


def test_drop_by_id(db):
    create_blog(db)
    vid = create_vectorizer(db, BLOG_CONFIG)
    db.execute("SELECT migrate.drop_vectorizer(%s::int, true)", (vid,))
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT migrate.drop_vectorizer(42)")


class TestColumnDestination:
    def test_end_to_end(self, db):
        create_blog(db)
        db.execute("""SELECT migrate.create_vectorizer('blog'::regclass,
            loading => migrate.loading_column('content'),
            embedding => migrate.embedding_openai('text-embedding-3-small', 768),
            destination => migrate.destination_column('content_embedding'),
            chunking => migrate.chunking_none())""")
        name = "public_blog_content_embedding"
        assert db.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'blog'::regclass AND attname = 'content_embedding'").fetchone()[0] == "vector(768)"
        assert [r[0] for r in db.execute("SELECT kind FROM migrate.managed_tables()").fetchall()] == ["queue", "failed_queue"]
        assert queued(db, name) == [1, 2, 3]
        db.execute(f"DELETE FROM migrate._vectorizer_q_1")
        db.execute("INSERT INTO blog (id, content) VALUES (4, 'x')")
        # The worker writing the embedding column does not queue the row again.
        db.execute("UPDATE blog SET content_embedding = array_fill(0, ARRAY[768])::vector WHERE id = 1")
        assert queued(db, name) == [4]
        db.execute(f"SELECT migrate.drop_vectorizer('{name}', drop_all => true)")
        assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'blog'::regclass AND attname = 'content_embedding'").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal").fetchone()[0] == 0

    def test_needs_chunking_none(self, db):
        create_blog(db)
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            db.execute("SELECT migrate.create_vectorizer('blog'::regclass, loading => migrate.loading_column('content'), embedding => migrate.embedding_openai('m', 8), destination => migrate.destination_column('e'))")
        assert e.value.diag.message_primary.startswith('chunking: a column destination needs chunking "none"')


class TestUriLoading:
    def test_uri_loading(self, db):
        db.execute("CREATE TABLE docs (id int PRIMARY KEY, url text, pdf bytea)")
        db.execute("SELECT migrate.create_vectorizer('docs'::regclass, loading => migrate.loading_uri('url', aws_role_arn => 'arn:x'), embedding => migrate.embedding_openai('m', 8))")
        c = stored_config(db, "public_docs_embedding_store")
        assert c["loading"] == {"implementation": "uri", "config_type": "loading", "column_name": "url", "retries": 6, "aws_role_arn": "arn:x"}

    @pytest.mark.parametrize("loading,parsing,message", [
        ("migrate.loading_uri('url')", "migrate.parsing_none()", 'parsing: parsing "none" cannot be used with uri loading'),
        ("migrate.loading_column('pdf')", "migrate.parsing_none()", 'parsing: parsing "none" cannot read the bytea column "pdf"'),
        ("migrate.loading_column('url')", "migrate.parsing_docling()", 'parsing: parsing "docling" needs a bytea column'),
    ])
    def test_parsing_rules(self, db, loading, parsing, message):
        db.execute("CREATE TABLE docs (id int PRIMARY KEY, url text, pdf bytea)")
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            db.execute(f"SELECT migrate.create_vectorizer('docs'::regclass, loading => {loading}, parsing => {parsing}, embedding => migrate.embedding_openai('m', 8))")
        assert e.value.diag.message_primary.startswith(message)

    def test_bytea_with_pymupdf(self, db):
        db.execute("CREATE TABLE docs (id int PRIMARY KEY, url text, pdf bytea)")
        db.execute("SELECT migrate.create_vectorizer('docs'::regclass, loading => migrate.loading_column('pdf'), parsing => migrate.parsing_pymupdf(), embedding => migrate.embedding_openai('m', 8))")


class TestIfNotExists:
    def test_same_config_is_a_notice_and_returns_the_id(self, db):
        create_blog(db)
        vid = create_vectorizer(db, BLOG_CONFIG)
        notices = []
        db.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert create_vectorizer(db, {**BLOG_CONFIG, "if_not_exists": True}) == vid
        assert notices == ['vectorizer "blog_content_embedder" already exists, skipping']
        assert db.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 1

    def test_named_form_if_not_exists(self, db):
        create_blog(db)
        db.execute(PGAI_STYLE)
        assert db.execute(PGAI_STYLE.replace("'$title - $chunk')", "'$title - $chunk'), if_not_exists => true")).fetchone()[0] == 1

    def test_different_config_lists_differing_keys(self, db):
        create_blog(db)
        create_vectorizer(db, BLOG_CONFIG)
        changed = {**BLOG_CONFIG, "if_not_exists": True,
                   "embedding": {**BLOG_CONFIG["embedding"], "dimensions": 1536},
                   "chunking": "none"}
        with pytest.raises(psycopg.errors.DuplicateObject) as e:
            create_vectorizer(db, changed)
        assert e.value.diag.message_primary == 'if_not_exists: vectorizer "blog_content_embedder" already exists with a different config'
        assert e.value.diag.message_detail == "Differing keys: chunking, embedding."


def test_custom_queue_and_view_placement(db):
    create_blog(db)
    db.execute("CREATE SCHEMA work; CREATE SCHEMA api; CREATE SCHEMA store")
    create_vectorizer(db, {**BLOG_CONFIG, "queue_schema": "work", "queue_table": "blog_q",
                           "destination": {"implementation": "table", "target_schema": "store", "target_table": "blog_chunks", "view_schema": "api", "view_name": "blog_search"}})
    rows = db.execute("SELECT kind, schema_name, table_name, relid::text FROM migrate.managed_tables()").fetchall()
    assert rows == [
        ("store", "store", "blog_chunks", "store.blog_chunks"),
        ("view", "api", "blog_search", "api.blog_search"),
        ("queue", "work", "blog_q", "work.blog_q"),
        ("failed_queue", "work", "_vectorizer_q_failed_1", "work._vectorizer_q_failed_1"),
    ]
    assert queued(db) == [1, 2, 3]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgfoid = 'migrate._vectorizer_trigger()'::regprocedure").fetchone()[0] == 4
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    assert db.execute("SELECT count(*) FROM pg_class WHERE relnamespace IN ('work'::regnamespace, 'api'::regnamespace, 'store'::regnamespace)").fetchone()[0] == 0


def test_grant_to_gives_exactly_the_listed_privileges(dbname, roles):
    worker, outsider = roles("worker"), roles("outsider")
    with connect(dbname) as db:
        create_blog(db)
        db.execute(f"""SELECT migrate.create_vectorizer('blog'::regclass,
            name => 'v', destination => migrate.destination_table('blog_embeddings'),
            loading => migrate.loading_column('content'),
            embedding => migrate.embedding_openai('m', 8),
            grant_to => migrate.grant_to('{worker}'))""")
        expected = {
            ("public.blog", "SELECT"): True, ("public.blog", "INSERT"): False, ("public.blog", "UPDATE"): False, ("public.blog", "DELETE"): False,
            ("public.blog_embeddings_store", "SELECT"): True, ("public.blog_embeddings_store", "INSERT"): True,
            ("public.blog_embeddings_store", "UPDATE"): True, ("public.blog_embeddings_store", "DELETE"): True,
            ("public.blog_embeddings_store", "TRUNCATE"): False,
            ("public.blog_embeddings", "SELECT"): True, ("public.blog_embeddings", "INSERT"): False,
            ("migrate._vectorizer_q_1", "SELECT"): True, ("migrate._vectorizer_q_1", "INSERT"): True,
            ("migrate._vectorizer_q_1", "UPDATE"): True, ("migrate._vectorizer_q_1", "DELETE"): True,
            ("migrate._vectorizer_q_1", "TRUNCATE"): False,
            ("migrate._vectorizer_q_failed_1", "INSERT"): True, ("migrate._vectorizer_q_failed_1", "TRUNCATE"): False,
        }
        for (table, priv), want in expected.items():
            assert db.execute("SELECT has_table_privilege(%s, %s, %s)", (worker, table, priv)).fetchone()[0] is want, (table, priv)
            assert db.execute("SELECT has_table_privilege(%s, %s, %s)", (outsider, table, priv)).fetchone()[0] is False, (table, priv)
        for schema in ("public", "migrate"):
            assert db.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (worker, schema)).fetchone()[0]
        assert not db.execute("SELECT has_schema_privilege(%s, 'migrate', 'USAGE')", (outsider,)).fetchone()[0]
        assert not db.execute("SELECT has_schema_privilege(%s, 'migrate', 'CREATE')", (worker,)).fetchone()[0]
    with connect(dbname, user=worker) as c:
        assert c.execute("SELECT count(*) FROM blog_embeddings").fetchone()[0] == 0
        assert sorted(r[0] for r in c.execute("DELETE FROM migrate._vectorizer_q_1 RETURNING id").fetchall()) == [1, 2, 3]
    with connect(dbname, user=outsider) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM blog_embeddings")
    with connect(dbname) as db:
        db.execute(f'DROP OWNED BY "{worker}"')

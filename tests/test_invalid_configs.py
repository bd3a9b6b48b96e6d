"""Every invalid config is an ERROR with the right SQLSTATE whose message
names the JSON path, and leaves nothing behind."""

import copy
import json

import psycopg
import pytest

from conftest import BLOG_CONFIG, create_blog, create_vectorizer, relations


def patched(path, value):
    """BLOG_CONFIG with the value at `a.b` replaced; value None removes it."""
    config = copy.deepcopy(BLOG_CONFIG)
    *parents, key = path.split(".")
    target = config
    for p in parents:
        target = target[p]
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
    return config


CASES = [
    # (id, config, sqlstate, message prefix)
    ("not-object", [1, 2], "22023", "the vectorizer config must be a JSON object"),
    ("missing-source", patched("source", None), "22023", "source: required key is missing"),
    ("source-not-string", patched("source", 5), "22023", "source: expected a string, got 5"),
    ("unknown-top-key", patched("colour", "red"), "22023", "colour: unknown key"),
    ("missing-loading", patched("loading", None), "22023", "loading: required key is missing"),
    ("missing-column-name", patched("loading.column_name", None), "22023", "loading.column_name: required key is missing"),
    ("negative-retries", patched("loading.retries", -1), "22023", "loading.retries: expected an integer of at least 0, got -1"),
    ("unknown-loading-impl", patched("loading.implementation", "s3"), "22023", 'loading.implementation: unknown implementation "s3"'),
    ("missing-embedding", patched("embedding", None), "22023", "embedding: required key is missing"),
    ("dimensions-string", patched("embedding.dimensions", "abc"), "22023", 'embedding.dimensions: expected an integer between 1 and 16000, got "abc"'),
    ("dimensions-zero", patched("embedding.dimensions", 0), "22023", "embedding.dimensions: expected an integer between 1 and 16000, got 0"),
    ("dimensions-too-big", patched("embedding.dimensions", 16001), "22023", "embedding.dimensions: expected an integer between 1 and 16000, got 16001"),
    ("dimensions-missing", patched("embedding.dimensions", None), "22023", "embedding.dimensions: required key is missing"),
    ("unknown-embedding-impl", patched("embedding.implementation", "cohere"), "22023", 'embedding.implementation: unknown implementation "cohere"'),
    ("unknown-embedding-key", patched("embedding.dimension", 5), "22023", "embedding.dimension: unknown key"),
    ("wrong-config-type", patched("embedding.config_type", "chunking"), "22023", 'embedding.config_type: expected "embedding", got "chunking"'),
    ("chunk-size-zero", patched("chunking.chunk_size", 0), "22023", "chunking.chunk_size: expected a positive integer, got 0"),
    ("chunk-size-negative", patched("chunking.chunk_size", -5), "22023", "chunking.chunk_size: expected a positive integer, got -5"),
    ("overlap-ge-size", patched("chunking.chunk_overlap", 800), "22023", "chunking.chunk_overlap: expected an integer smaller than chunk_size (800), got 800"),
    ("separator-not-string", patched("chunking.separator", 1), "22023", "chunking.separator: expected a string, got 1"),
    ("regex-flag-string", patched("chunking.is_separator_regex", "no"), "22023", 'chunking.is_separator_regex: expected true or false, got "no"'),
    ("template-without-chunk", patched("formatting.template", "$title"), "22023", "formatting.template: template must contain $chunk"),
    ("template-bad-placeholder", patched("formatting.template", "$1 $chunk"), "22023", "formatting.template: invalid placeholder at character 1"),
    ("hnsw-bad-opclass", patched("indexing", {"implementation": "hnsw", "opclass": "x_ops"}), "22023", "indexing.opclass: expected one of"),
    ("hnsw-m-too-small", patched("indexing", {"implementation": "hnsw", "m": 1}), "22023", "indexing.m: expected an integer between 2 and 100, got 1"),
    ("processing-batch", patched("processing", {"implementation": "default", "batch_size": 0}), "22023", "processing.batch_size: expected an integer between 1 and 2048, got 0"),
    ("scheduling-unknown", patched("scheduling", "cron"), "22023", 'scheduling: unknown implementation "cron"'),
    ("destination-conflict", patched("destination.view_name", "v"), "22023", "destination.view_name: cannot be combined with destination"),
    ("grant-to-not-array", patched("grant_to", "bob"), "22023", 'grant_to: expected an array of role names, got "bob"'),
    ("enqueue-existing-string", patched("enqueue_existing", "yes"), "22023", 'enqueue_existing: expected true or false, got "yes"'),
    ("unknown-source", patched("source", "nosuchtable"), "42P01", 'source: relation "nosuchtable" does not exist'),
    ("source-malformed-name", patched("source", "a.b.c.d"), "22023", 'source: expected a table name, got "a.b.c.d"'),
    ("source-is-view", patched("source", "pg_tables"), "42809", 'source: "pg_tables" is not a table'),
    ("missing-loading-column", patched("loading.column_name", "body"), "42703", 'loading.column_name: column "body" does not exist in public.blog'),
    ("non-text-loading-column", patched("loading.column_name", "views"), "42804", 'loading.column_name: expected a text, varchar, char or bytea column, "views" is integer'),
    ("template-unknown-column", patched("formatting.template", "$author $chunk"), "42703", 'formatting.template: $author refers to column "author"'),
    ("pymupdf-on-text", patched("parsing", "pymupdf"), "22023", 'parsing: parsing "pymupdf" needs a bytea column'),
    ("diskann-without-vectorscale", patched("indexing", "diskann"), "0A000", "indexing.implementation: diskann indexing needs the vectorscale extension"),
    ("timescaledb-without-extension", patched("scheduling", "timescaledb"), "0A000", "scheduling.implementation: timescaledb scheduling needs the timescaledb extension"),
    ("missing-target-schema", patched("destination.target_schema", "nope"), "3F000", 'destination.target_schema: schema "nope" does not exist'),
    ("missing-queue-schema", patched("queue_schema", "nope"), "3F000", 'queue_schema: schema "nope" does not exist'),
    ("unknown-grant-role", patched("grant_to", ["no_such_role_x"]), "42704", 'grant_to[0]: role "no_such_role_x" does not exist'),
    ("store-exists", patched("destination.destination", "existing"), "42P07", 'destination.destination: relation "public.existing_store" already exists'),
]


@pytest.mark.parametrize("config,sqlstate,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_config_is_a_clean_error(db, config, sqlstate, message):
    create_blog(db)
    db.execute("CREATE TABLE existing_store (x int)")
    before = relations(db)
    with pytest.raises(psycopg.Error) as e:
        create_vectorizer(db, config)
    assert e.value.sqlstate == sqlstate, e.value.diag.message_primary
    assert e.value.diag.message_primary.startswith(message), e.value.diag.message_primary
    assert relations(db) == before
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal").fetchone()[0] == 0
    assert db.execute("SELECT (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'migrate'::regnamespace AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))").fetchone()[0] == 0


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


def test_source_without_primary_key(db):
    db.execute("CREATE TABLE nopk (content text)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        create_vectorizer(db, patched("source", "nopk"))
    assert e.value.diag.message_primary == "source: table public.nopk has no primary key"
    assert "ADD PRIMARY KEY" in e.value.diag.message_hint


def test_unknown_key_error_has_a_hint(db):
    create_blog(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(db, patched("embedding.dimension", 768))
    assert "dimensions" in e.value.diag.message_hint


def test_duplicate_name_is_42710(db):
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    with pytest.raises(psycopg.errors.DuplicateObject) as e:
        create_vectorizer(db, patched("destination.destination", "other"))
    assert e.value.diag.message_primary == 'name: vectorizer "blog_content_embedder" already exists'
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 1


def test_malformed_json_text_is_rejected_by_jsonb(db):
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        db.execute("SELECT migrate.create_vectorizer('{\"source\": ')")


def test_failure_after_create_in_same_transaction_leaves_nothing(db):
    create_blog(db)
    before = relations(db)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with db.transaction():
            create_vectorizer(db, BLOG_CONFIG)
            db.execute("SELECT 1/0")
    assert relations(db) == before
    assert db.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 0

"""Hostile input through SQL: a seeded sample of random and mutated configs
sent to migrate.create_vectorizer (each in its own transaction, rolled
back), identifiers and template text written to inject SQL, names at and
just over PostgreSQL's 63-byte limit. Every failure must be a clean error
with one of the SQLSTATEs the SPEC lists, the server must never restart or
log a crash, and the sentinel table `t` must survive.

PGAI_MIGRATE_SQL_FUZZ_CASES (default 300) and PGAI_MIGRATE_FUZZ_SEED
(default 20250601) size and seed the sample; -s prints the figures."""

import copy
import json
import os
import random
from collections import Counter

import psycopg
import pytest
from psycopg import sql

from conftest import (
    BLOG_CONFIG,
    assert_server_survived,
    catalog_snapshot,
    connect,
    create_blog,
    create_vectorizer,
    queued,
    server_state,
    trigger_count,
)

# The server neither restarts nor logs a crash during this module.
pytestmark = pytest.mark.usefixtures("server_watch")

# What create_vectorizer may answer (SPEC section 4 and the issue).
EXTENSION_SQLSTATES = {
    "22023", "42P01", "42703", "42804", "42701", "55000", "42704",
    "3F000", "42P07", "42710", "42501", "0A000", "42809",
}
# What PostgreSQL's own jsonb input may answer before the extension runs:
# malformed text, \u0000, nesting deeper than the stack allows, numbers
# beyond numeric's range.
JSONB_INPUT_SQLSTATES = {"22P02", "22P05", "54001", "22003"}

HOSTILE_NAMES = [
    'x"; DROP TABLE t; --',
    "x'; DROP TABLE t; --",
    "$$",
    "$body$",
    "$$; DROP TABLE t; $$",
    "a\\b",
    "\\'; DROP TABLE t; --",
    "'",
    '"',
    "it's",
    ");DROP TABLE t;--",
    "Mixed Case Name",
    "ünïcødé 表 🦀",
    "\u200b",
    " ",
    "E'\\x41'",
    'U&"\\0061"',
    "a" * 63,
    "表" * 21,  # 63 bytes
]
NAME_63 = "n" * 63
NAME_64 = "n" * 64
MULTIBYTE_64 = "é" * 32  # 64 bytes, 32 characters

SEED = int(os.environ.get("PGAI_MIGRATE_FUZZ_SEED", "20250601"))
CASES = int(os.environ.get("PGAI_MIGRATE_SQL_FUZZ_CASES", "300"))


@pytest.fixture
def hostile_db(db):
    """blog (the README example), a sentinel table t and a couple of extra
    objects random configs may run into."""
    create_blog(db)
    db.execute("CREATE TABLE t (x int)")
    db.execute("INSERT INTO t VALUES (42)")
    db.execute("CREATE TABLE existing_store (x int)")
    db.execute("CREATE TABLE nopk (content text)")
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, pdf bytea, url text)")
    db.execute("CREATE SCHEMA other")
    return db


@pytest.fixture
def fuzz_db(hostile_db):
    """hostile_db plus one committed vectorizer, so duplicate names and
    relations can be hit."""
    create_vectorizer(hostile_db, BLOG_CONFIG)
    return hostile_db


def sentinel_ok(conn):
    return conn.execute("SELECT to_regclass('public.t') IS NOT NULL AND (SELECT x FROM public.t) = 42").fetchone()[0]


# --- the random sample ------------------------------------------------------------------

WORDS = [
    "column", "uri", "auto", "none", "pymupdf", "docling", "openai", "ollama", "voyageai", "litellm",
    "sentence_transformers", "character_text_splitter", "recursive_character_text_splitter",
    "python_template", "chunk_value", "default", "hnsw", "diskann", "timescaledb", "table",
    "blog", "docs", "content", "title", "body", "pdf", "url", "id", "views", "$chunk", "$title $chunk",
    "migrate", "public", "other", "nope", "t", "existing", "nopk", "pg_class", "pg_catalog.pg_class",
    "information_schema.tables", "public.blog", '"blog"', "BLOG", "blog; DROP TABLE t", "postgres",
    "loading", "embedding", "destination", "chunking", "formatting", "indexing", "scheduling", "processing",
]
KEYS = [
    "source", "name", "destination", "loading", "parsing", "embedding", "chunking", "formatting",
    "indexing", "scheduling", "processing", "queue_schema", "queue_table", "grant_to",
    "enqueue_existing", "if_not_exists", "implementation", "config_type", "column_name", "retries",
    "model", "dimensions", "chunk_size", "chunk_overlap", "separator", "separators", "template",
    "target_schema", "target_table", "view_schema", "view_name", "embedding_column", "destination",
    "options", "m", "ef_construction", "opclass", "batch_size", "concurrency", "min_rows",
]
NUMBERS = [0, 1, -1, 2, 768, 1536, 2000, 2001, 16000, 16001, 2048, 2049, 2**31 - 1, 2**31, -2**31,
           2**63 - 1, 2**63, 2**64, -2**63, 768.0, 0.5, -0.0, 1e308, -1e308, 5e-324, 10**40]


def rand_text(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice(WORDS)
    if r < 0.6:
        return rng.choice(HOSTILE_NAMES)
    if r < 0.75:
        # Any code point but NUL (jsonb refuses \u0000) and surrogates.
        return "".join(chr(rng.choice([rng.randint(1, 0x7F), rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])) for _ in range(rng.randint(0, 20)))
    if r < 0.85:
        return rng.choice("xé表") * rng.randint(55, 70)
    if r < 0.9:
        return "y" * rng.randint(1000, 20000)
    return rng.choice(KEYS)


def rand_json(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.55:
        r2 = rng.random()
        if r2 < 0.1:
            return None
        if r2 < 0.2:
            return rng.random() < 0.5
        if r2 < 0.45:
            return rng.choice(NUMBERS) if rng.random() < 0.6 else rng.randint(-10, 20000)
        return rand_text(rng)
    if r < 0.75:
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {(rng.choice(KEYS) if rng.random() < 0.7 else rand_text(rng)): rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


# Patches that keep a config well-formed but make the database side refuse it.
SEMANTIC = [
    {"source": "nopk"},
    {"source": "pg_tables"},
    {"source": "no_such_table"},
    {"source": "t"},
    {"loading": {"implementation": "column", "column_name": "nope"}},
    {"loading": {"implementation": "column", "column_name": "id"}},
    {"destination": {"implementation": "table", "destination": "existing"}},
    {"destination": {"implementation": "table", "target_schema": "nope"}},
    {"queue_schema": "nope"},
    {"queue_schema": "pg_catalog"},
    {"grant_to": ["no_such_role_anywhere"]},
    {"indexing": "diskann"},
    {"scheduling": "timescaledb"},
    {"destination": {"implementation": "column", "embedding_column": "title"}, "chunking": "none"},
    {"formatting": {"implementation": "python_template", "template": "$nope $chunk"}},
    {"name": "blog_content_embedder", "destination": {"implementation": "table", "destination": "fresh"}},
]

BASES = [
    BLOG_CONFIG,
    {
        "source": "docs",
        "loading": {"implementation": "column", "config_type": "loading", "column_name": "pdf", "retries": 3},
        "parsing": {"implementation": "pymupdf", "config_type": "parsing"},
        "embedding": {"implementation": "ollama", "config_type": "embedding", "model": "nomic", "dimensions": 768, "options": {"num_ctx": 2048}},
        "chunking": {"implementation": "recursive_character_text_splitter", "config_type": "chunking", "separators": ["\n\n", " "]},
        "formatting": {"implementation": "python_template", "config_type": "formatting", "template": "$title: $chunk"},
        "indexing": {"implementation": "hnsw", "config_type": "indexing", "m": 16, "ef_construction": 64},
        "processing": {"implementation": "default", "config_type": "processing", "batch_size": 10},
    },
    {
        "source": "docs",
        "name": "docs_column",
        "destination": {"implementation": "column", "embedding_column": "emb"},
        "loading": {"implementation": "uri", "column_name": "url"},
        "embedding": "sentence_transformers",
        "chunking": "none",
        "indexing": "none",
        "scheduling": "none",
        "enqueue_existing": False,
    },
    {
        "source": "blog",
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "voyageai", "model": "voyage-3", "dimensions": 512, "input_type": "query"},
        "queue_schema": "other",
        "queue_table": "blog_queue",
        "destination": {"implementation": "table", "target_schema": "other", "target_table": "bs", "view_schema": "other", "view_name": "bv"},
    },
]


MAX_DEPTH = 120


def depth(v):
    if isinstance(v, dict):
        return 1 + max((depth(c) for c in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(c) for c in v), default=0)
    return 0


def pointers(v, at=()):
    yield at
    if isinstance(v, dict):
        for k, c in v.items():
            yield from pointers(c, at + (k,))
    elif isinstance(v, list):
        for i, c in enumerate(v):
            yield from pointers(c, at + (i,))


def get(v, p):
    for k in p:
        v = v[k]
    return v


def put(v, p, new):
    if not p:
        return new
    get(v, p[:-1])[p[-1]] = new
    return v


def mutate(rng, config):
    v = copy.deepcopy(config)
    for _ in range(rng.randint(1, 3)):
        ps = list(pointers(v))
        p = rng.choice(ps)
        kind = rng.random()
        if kind < 0.25:
            v = put(v, p, rand_json(rng))
        elif kind < 0.4 and p:
            parent = get(v, p[:-1])
            if isinstance(parent, dict):
                del parent[p[-1]]
            else:
                parent.pop(p[-1])
        elif kind < 0.5:
            target = get(v, p)
            if isinstance(target, dict):
                target[rng.choice(KEYS) if rng.random() < 0.5 else rand_text(rng)] = rand_json(rng)
            elif isinstance(target, list):
                target.append(rand_json(rng))
        elif kind < 0.6:
            v = put(v, p, rng.choice(NUMBERS))
        elif kind < 0.65:
            # Up to MAX_DEPTH levels in all; deeper is test_deep_nesting's business.
            room = MAX_DEPTH - depth(v)
            if room > 0:
                inner = get(v, p)
                for _ in range(rng.randint(1, room)):
                    inner = [inner] if rng.random() < 0.5 else {"implementation": inner}
                v = put(v, p, inner)
        elif kind < 0.7:
            v = put(v, p, rand_text(rng))
        elif kind < 0.8 and isinstance(v, dict):
            # Valid JSON that the database must refuse.
            v.update(copy.deepcopy(rng.choice(SEMANTIC)))
        else:
            # A mutation that keeps the config valid but hostile: names where names go.
            name = rng.choice(HOSTILE_NAMES + [rand_text(rng)])
            if not isinstance(v, dict):
                continue
            which = rng.choice(["name", "destination", "target_table", "view_name", "queue_table", "template", "separator", "model"])
            if which == "name":
                v["name"] = name
            elif which in ("destination", "target_table", "view_name"):
                d = v.get("destination")
                if isinstance(d, dict) and d.get("implementation") == "table":
                    if which == "destination":
                        d.pop("target_table", None), d.pop("view_name", None)
                    else:
                        d.pop("destination", None)
                    d[which] = name
            elif which == "queue_table":
                v["queue_table"] = name
            elif which == "template" and isinstance(v.get("formatting"), dict):
                v["formatting"]["template"] = f"{name} $chunk".replace("$", "$$").replace("$$chunk", "$chunk")
            elif which == "separator" and isinstance(v.get("chunking"), dict):
                v["chunking"]["separator"] = name
            elif which == "model" and isinstance(v.get("embedding"), dict):
                v["embedding"]["model"] = name
    return v


def corrupt(rng, text):
    """Malformed JSON text, as a hand-edited migration might hold."""
    r = rng.random()
    if r < 0.3:
        return text[: rng.randint(0, max(0, len(text) - 1))]
    if r < 0.5:
        i = rng.randint(0, len(text))
        return text[:i] + rng.choice(["{", "}", "[", "]", ",", ":", '"', "\\", "'", "\x01", "NaN", "undefined"]) + text[i:]
    if r < 0.7:
        return text.replace('"', "'", 1)
    if r < 0.85:
        return text + rng.choice(["}", ",", " x", "\n{}"])
    return text.replace(":", "=", 1)


def sample(rng, n):
    for i in range(n):
        r = rng.random()
        if r < 0.6:
            yield "mutated", json.dumps(mutate(rng, rng.choice(BASES)))
        elif r < 0.85:
            tree = rand_json(rng)
            if rng.random() < 0.7:
                tree = {"source": rng.choice(["blog", "docs", rand_text(rng)]), **(tree if isinstance(tree, dict) else {"x": tree})}
            yield "random", json.dumps(tree)
        else:
            yield "malformed", corrupt(rng, json.dumps(mutate(rng, rng.choice(BASES))))


def test_random_and_mutated_configs_fail_cleanly(fuzz_db):
    db = fuzz_db
    before_server = server_state()
    before = catalog_snapshot(db)
    rng = random.Random(SEED)
    outcomes = Counter()
    by_kind = Counter()
    unclean = []
    for kind, text in sample(rng, CASES):
        by_kind[kind] += 1
        # Does jsonb itself accept the text? (Then the extension must answer.)
        try:
            db.execute("SELECT %s::jsonb", (text,))
            valid_jsonb = True
        except psycopg.Error as e:
            valid_jsonb = False
            if e.sqlstate not in JSONB_INPUT_SQLSTATES:
                unclean.append((kind, "jsonb", e.sqlstate, str(e)[:200], text[:300]))
        try:
            with db.transaction(force_rollback=True):
                db.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (text,))
                assert sentinel_ok(db)
            outcomes["accepted (rolled back)"] += 1
        except psycopg.Error as e:
            outcomes[e.sqlstate] += 1
            allowed = EXTENSION_SQLSTATES if valid_jsonb else JSONB_INPUT_SQLSTATES
            if e.sqlstate not in allowed or not e.diag.message_primary:
                unclean.append((kind, "create", e.sqlstate, str(e)[:300], text[:300]))
            elif valid_jsonb and e.sqlstate == "22023":
                # The extension's own config errors name a JSON path (or the root).
                msg = e.diag.message_primary
                if msg == "unknown key" and '"": ' in text:
                    outcomes["unknown empty key (see test_empty_top_level_key_is_named)"] += 1
                elif not (msg.startswith("the vectorizer config must be a JSON object") or ": " in msg):
                    unclean.append((kind, "no path", e.sqlstate, msg, text[:300]))
        assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    print(f"\nSQL fuzz (seed {SEED}): {sum(by_kind.values())} configs {dict(by_kind)}; outcomes {dict(sorted(outcomes.items()))}")
    assert not unclean, "\n".join(map(str, unclean[:10]))
    assert sentinel_ok(db)
    assert catalog_snapshot(db) == before
    assert_server_survived(before_server)
    # The sample must reach past the parser: some configs create everything.
    assert outcomes["accepted (rolled back)"] >= CASES // 20, outcomes
    assert len([s for s in outcomes if s[:1].isdigit()]) >= 8, outcomes


def test_jsonb_level_rejections_are_clean(hostile_db):
    """Input jsonb refuses before the extension runs: NUL, lone surrogates,
    malformed text, numbers past numeric's range, absurd nesting."""
    db = hostile_db
    before_server = server_state()
    cases = {
        '{"source": "\\u0000"}': "22P05",
        '{"source": "\\ud800"}': "22P02",
        '{"source": ': "22P02",
        "{'source': 'blog'}": "22P02",
        '{"embedding": {"dimensions": 1e999999}}': "22003",
        "[" * 200000 + "]" * 200000: "54001",
    }
    for text, sqlstate in cases.items():
        with pytest.raises(psycopg.Error) as e:
            db.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (text,))
        assert e.value.sqlstate == sqlstate, (text[:40], e.value.sqlstate, e.value.diag.message_primary)
        # The untyped-literal call form too.
        with pytest.raises(psycopg.Error) as e:
            db.execute(sql.SQL("SELECT migrate.create_vectorizer({})").format(sql.Literal(text)))
        assert e.value.sqlstate == sqlstate
    assert sentinel_ok(db)
    assert_server_survived(before_server)


def test_empty_top_level_key_is_named(hostile_db):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(hostile_db, {**BLOG_CONFIG, "": 1})
    assert e.value.diag.message_primary == '"": unknown key'


def test_empty_nested_key_is_named(hostile_db):
    config = copy.deepcopy(BLOG_CONFIG)
    config["embedding"][""] = 1
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(hostile_db, config)
    assert e.value.diag.message_primary == 'embedding."": unknown key'


@pytest.mark.parametrize("depth", [100, 126])
def test_moderate_nesting_is_a_clean_config_error(hostile_db, depth):
    db = hostile_db
    text = json.dumps({**BLOG_CONFIG, "x": "@"}).replace('"@"', "[" * depth + "1" + "]" * depth)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (text,))
    assert e.value.diag.message_primary == "x: unknown key"


@pytest.mark.parametrize("where", ["unknown-key", "ollama-options"])
@pytest.mark.parametrize("depth", [127, 1000, 10000])
def test_deep_nesting_is_a_clean_config_error(hostile_db, where, depth):
    db = hostile_db
    before_server = server_state()
    deep = "[" * depth + "1" + "]" * depth
    if where == "unknown-key":
        config = {**BLOG_CONFIG, "x": "@"}
    else:
        config = {**BLOG_CONFIG, "embedding": {"implementation": "ollama", "model": "m", "dimensions": 3, "options": {"o": "@"}}}
    text = json.dumps(config).replace('"@"', deep)
    try:
        with pytest.raises(psycopg.Error) as e:
            db.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (text,))
        assert e.value.sqlstate == "22023", (e.value.sqlstate, e.value.diag.message_primary)
        assert e.value.diag.message_primary == "the config is nested more than 128 levels deep"
    finally:
        assert_server_survived(before_server)


@pytest.mark.parametrize("source", ["a.b.c.d", "x.public.blog", "a.b.c.d.e.f"])
def test_source_with_too_many_dots_is_a_clean_error_naming_source(hostile_db, source):
    """to_regclass() itself raises for these (42601, 0A000); the extension
    turns that into a config error on `source`."""
    db = hostile_db
    with pytest.raises(psycopg.Error) as e:
        create_vectorizer(db, {**BLOG_CONFIG, "source": source})
    assert e.value.sqlstate in ("42P01", "22023"), (e.value.sqlstate, e.value.diag.message_primary)
    assert e.value.diag.message_primary.startswith("source: ")


# --- crafted identifiers -------------------------------------------------------------------


def managed(conn):
    return conn.execute("SELECT kind, schema_name::text, table_name::text, relid IS NOT NULL FROM migrate.managed_tables() ORDER BY kind").fetchall()


def relname_exists(conn, schema, name, kind="r"):
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND c.relkind = %s)",
        (schema, name, kind),
    ).fetchone()[0]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"h{i}" for i in range(len(HOSTILE_NAMES))])
def test_hostile_names_everywhere(hostile_db, name):
    """One hostile string as schema, source table, column, store, view, queue
    schema and vectorizer name at once: everything is created under exactly that name,
    the trigger works, drop removes it all, and `t` survives."""
    db = hostile_db
    before_server = server_state()
    q = sql.Identifier
    schema, table, column = name, name, name
    db.execute(sql.SQL("CREATE SCHEMA {}").format(q(schema)))
    db.execute(sql.SQL("CREATE TABLE {}.{} (id int PRIMARY KEY, {} text, title text)").format(q(schema), q(table), q(column)))
    db.execute(sql.SQL("INSERT INTO {}.{} VALUES (1, 'a', 'x'), (2, 'b', 'y')").format(q(schema), q(table)))
    before = catalog_snapshot(db)
    source = sql.SQL("{}.{}").format(q(schema), q(table)).as_string(db)
    # A blank vectorizer name is refused (see test_blank_vectorizer_name); every
    # other string is a valid vectorizer name.
    vname = name if name.strip() else f"v{name}"
    config = {
        **BLOG_CONFIG,
        "name": vname,
        "source": source,
        "loading": {"implementation": "column", "column_name": column},
        "destination": {"implementation": "table", "target_schema": "other", "target_table": name, "view_schema": "public", "view_name": name},
        "queue_schema": schema,
        "queue_table": name + "_q" if len(name.encode()) <= 61 else "q",
        "formatting": {"implementation": "python_template", "template": "$title $$; DROP TABLE t; -- ' \" \\ $chunk"},
    }
    create_vectorizer(db, config)
    assert sentinel_ok(db)
    queue_name = config["queue_table"]
    assert managed(db) == sorted([
        ("store", "other", name, True), ("view", "public", name, True),
        ("queue", schema, queue_name, True), ("failed_queue", schema, "_vectorizer_q_failed_1", True),
    ])
    assert relname_exists(db, "other", name, "r") and relname_exists(db, "public", name, "v")
    assert relname_exists(db, schema, queue_name, "r")
    assert db.execute("SELECT name, config->'formatting'->>'template' FROM migrate.vectorizer").fetchone() == (vname, config["formatting"]["template"])
    assert queued(db, vname) == [1, 2]
    db.execute(sql.SQL("UPDATE {}.{} SET {} = 'changed' WHERE id = 1").format(q(schema), q(table), q(column)))
    db.execute(sql.SQL("DELETE FROM {}.{} WHERE id = 2").format(q(schema), q(table)))
    db.execute(sql.SQL("INSERT INTO {}.{} VALUES (3, 'c', 'z')").format(q(schema), q(table)))
    assert queued(db, vname) == [1, 3]
    db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (vname,))
    after = catalog_snapshot(db)
    assert after["pg_class"] == before["pg_class"] and after["pg_trigger"] == before["pg_trigger"] and after["pg_proc"] == before["pg_proc"]
    assert sentinel_ok(db)
    assert_server_survived(before_server)


@pytest.mark.parametrize("name", ["", " ", "\t\n"])
def test_blank_vectorizer_name(hostile_db, name):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(hostile_db, {**BLOG_CONFIG, "name": name})
    assert e.value.diag.message_primary.startswith("name: expected a non-empty string")


@pytest.mark.parametrize("name", ['x"; DROP TABLE t; --', "$body$", "ünïcødé 表 🦀", "e" * 63])
def test_hostile_column_destination_and_grant_role(hostile_db, roles, name):
    db = hostile_db
    role = roles(name[:40].replace('"', "q").replace(" ", "_") or "r")  # a real role, quoted everywhere
    db.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, content text)").format(sql.Identifier(name[:55] + "_src")))
    db.execute(sql.SQL("INSERT INTO {} VALUES (1, 'x')").format(sql.Identifier(name[:55] + "_src")))
    config = {
        **BLOG_CONFIG,
        "name": name,
        "source": sql.Identifier(name[:55] + "_src").as_string(db),
        "destination": {"implementation": "column", "embedding_column": name},
        "chunking": "none",
        "formatting": "python_template",
        "grant_to": [role],
    }
    create_vectorizer(db, config)
    cols = [r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum", (config["source"],)).fetchall()]
    assert cols == ["id", "content", name]
    assert db.execute("SELECT has_table_privilege(%s, 'migrate._vectorizer_q_1', 'SELECT')", (role,)).fetchone()[0]
    db.execute("SELECT migrate.drop_vectorizer(%s)", (name,))
    assert sentinel_ok(db)
    db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(
    "patch,path",
    [
        ({"destination": {"implementation": "table", "target_table": NAME_64}}, "destination.target_table"),
        ({"destination": {"implementation": "table", "view_name": NAME_64}}, "destination.view_name"),
        ({"destination": {"implementation": "table", "target_table": MULTIBYTE_64}}, "destination.target_table"),
        ({"destination": {"implementation": "table", "destination": NAME_64}}, "destination.destination"),
        ({"destination": {"implementation": "table", "destination": "d" * 58}}, "destination.destination"),
        ({"destination": {"implementation": "table", "target_schema": NAME_64}}, "destination.target_schema"),
        ({"destination": {"implementation": "column", "embedding_column": NAME_64}, "chunking": "none"}, "destination.embedding_column"),
        ({"queue_table": NAME_64}, "queue_table"),
        ({"queue_schema": MULTIBYTE_64}, "queue_schema"),
        ({"loading": {"implementation": "column", "column_name": NAME_64}}, "loading.column_name"),
        ({"grant_to": [NAME_64]}, "grant_to[0]"),
    ],
    ids=["target_table", "view_name", "multibyte", "destination", "derived-store-name", "target_schema", "embedding_column", "queue_table", "queue_schema", "column_name", "grant_to"],
)
def test_names_over_63_bytes_are_refused_not_truncated(hostile_db, patch, path):
    """PostgreSQL would silently truncate a 64-byte name (and two long names
    could then collide); the extension refuses it, naming the path."""
    db = hostile_db
    before = catalog_snapshot(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        create_vectorizer(db, {**BLOG_CONFIG, **patch})
    assert e.value.diag.message_primary.startswith(path + ": "), e.value.diag.message_primary
    assert "63 bytes" in e.value.diag.message_primary
    assert catalog_snapshot(db) == before


def test_names_of_exactly_63_bytes_are_kept_whole(hostile_db):
    db = hostile_db
    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(NAME_63)))
    long_name = "v" * 300  # a vectorizer name is text, not an identifier
    config = {
        **BLOG_CONFIG,
        "name": long_name,
        "destination": {"implementation": "table", "target_schema": NAME_63, "target_table": "s" * 63, "view_name": "表" * 21},
        "queue_schema": NAME_63,
        "queue_table": "q" * 63,
    }
    create_vectorizer(db, config)
    assert managed(db) == sorted([
        ("store", NAME_63, "s" * 63, True), ("view", "public", "表" * 21, True),
        ("queue", NAME_63, "q" * 63, True), ("failed_queue", NAME_63, "_vectorizer_q_failed_1", True),
    ])
    assert queued(db, long_name) == [1, 2, 3]
    db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (long_name,))
    assert db.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0] == 0


@pytest.mark.parametrize(
    "source,sqlstate",
    [
        ("blog; DROP TABLE t; --", "42P01"),
        ('blog"; DROP TABLE t; --', "42P01"),
        ("t; DROP TABLE t", "42P01"),
        ("public.t", "55000"),  # exists, no primary key
        ("(SELECT 1)", "42P01"),
        ("pg_catalog.pg_class", "42703"),  # exists; no column "content"
        ("information_schema.tables", "42809"),
        ("migrate.vectorizer_status", "42809"),
        ("' OR 1=1 --", "42P01"),
        ("", "22023"),
        ("   ", "22023"),
    ],
)
def test_crafted_sources_fail_cleanly(hostile_db, source, sqlstate):
    db = hostile_db
    before = catalog_snapshot(db)
    with pytest.raises(psycopg.Error) as e:
        create_vectorizer(db, {**BLOG_CONFIG, "source": source})
    assert e.value.sqlstate == sqlstate, (e.value.sqlstate, e.value.diag.message_primary)
    assert e.value.diag.message_primary.startswith(("source: ", "loading.column_name: "))
    assert catalog_snapshot(db) == before
    assert sentinel_ok(db)


@pytest.mark.parametrize(
    "template",
    [
        "$chunk'; DROP TABLE t; --",
        "$$ $chunk $$body$$",
        "\\ $chunk \\' \\\\",
        '${chunk} " ; -- /* */',
        "$title\n$chunk\r\n\t\u200b 表 🦀",
    ],
)
def test_template_text_is_data(hostile_db, template):
    db = hostile_db
    config = {**BLOG_CONFIG, "formatting": {"implementation": "python_template", "template": template}}
    create_vectorizer(db, config)
    assert db.execute("SELECT config->'formatting'->>'template' FROM migrate.vectorizer").fetchone()[0] == template
    assert trigger_count(db) == 4
    assert sentinel_ok(db)

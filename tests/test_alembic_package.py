"""The Python package (python/pgai_migrate) with the real `alembic` command
line: pgai's Alembic operations online and with --sql, the config classes,
autogenerate for vectorizers declared with the models (the README's
walk-through, step by step), which vectorizers it may drop (only this
project's), the include_object/include_name hooks before
and after the extension exists, and vectorizer_relationship()."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import (
    BLOG_CONFIG,
    ROOT,
    client_env,
    connect,
    create_vectorizer,
    managed,
    pg_tool,
)
from test_alembic import database_url, function_body

PYTHON_DIR = os.path.join(ROOT, "python")
sys.path.insert(0, PYTHON_DIR)

from pgai_migrate import configuration as cfg  # noqa: E402
from pgai_migrate import sql  # noqa: E402

EXAMPLE = os.path.join(ROOT, "examples", "alembic_vectorizers")
NEW_API = (
    "migrate.plan_vectorizer(jsonb)",
    "migrate.alter_vectorizer(text,jsonb,boolean,text)",
    "migrate.restore_vectorizer(text,bigint,text)",
    "migrate.create_vectorizer(jsonb,text)",
)


def require_new_api(dbname):
    """The operations pass `label =>` and autogenerate uses plan_vectorizer:
    both need the extension's alter/plan/restore API."""
    with connect(dbname) as conn:
        missing = [
            sig for sig in NEW_API if conn.execute("SELECT to_regprocedure(%s) IS NULL", (sig,)).fetchone()[0]
        ]
    if missing:
        pytest.skip(f"the installed extension lacks {', '.join(missing)}")


def alembic(project, dbname, *args, check=True, **env):
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), *args],
        cwd=project,
        env=client_env(PGAI_MIGRATE_DATABASE_URL=database_url(dbname), PYTHONPATH=PYTHON_DIR, **env),
        capture_output=True,
        text=True,
    )
    if check:
        assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stderr}"
    return result


def autogenerate(project, dbname, rev_id, message="change"):
    alembic(project, dbname, "revision", "--autogenerate", "-m", message, "--rev-id", rev_id)
    (path,) = (project / "versions").glob(f"{rev_id}_*.py")
    return path.read_text()


def psql_script(dbname, script):
    result = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname],
                            input=script, env=client_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "alembic_vectorizers"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def catalog(dbname):
    with connect(dbname) as conn:
        return conn.execute("SELECT name, config FROM migrate.vectorizer ORDER BY id").fetchall()


def revisions(dbname):
    with connect(dbname) as conn:
        return conn.execute("SELECT vectorizer_name, operation, label FROM migrate.revision ORDER BY id").fetchall()


def evaluated(config, new_database):
    """The evaluated config the extension stores for `config` on a fresh blog."""
    db = new_database()
    with connect(db) as conn:
        conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
        create_vectorizer(conn, config)
        return conn.execute("SELECT config FROM migrate.vectorizer").fetchone()[0]


# --- configuration classes ---------------------------------------------------

SPEC_CLASSES = """LoadingColumnConfig LoadingUriConfig ParsingAutoConfig ParsingNoneConfig
EmbeddingOpenaiConfig EmbeddingOllamaConfig EmbeddingVoyageaiConfig EmbeddingLitellmConfig
ChunkingCharacterTextSplitterConfig ChunkingRecursiveCharacterTextSplitterConfig ChunkingNoneConfig
FormattingPythonTemplateConfig FormattingChunkValueConfig IndexingDefaultConfig IndexingNoneConfig
IndexingHnswConfig IndexingDiskannConfig SchedulingDefaultConfig SchedulingNoneConfig
SchedulingTimescaledbConfig ProcessingDefaultConfig DestinationTableConfig DestinationColumnConfig""".split()


def test_every_config_class_of_the_spec_exists_and_renders_its_kind():
    for name in SPEC_CLASSES:
        cls = getattr(cfg, name)
        assert cfg.config_class(cls.config_type, cls.implementation) is cls
    assert cfg.EmbeddingOpenaiConfig("m", 3, chat_user="u").to_config() == {
        "implementation": "openai", "model": "m", "dimensions": 3, "user": "u",
    }
    assert cfg.vectorizer_config(source="blog", indexing="none", grant_to="r") == {
        "source": "blog", "indexing": {"implementation": "none"}, "grant_to": ["r"],
    }
    with pytest.raises(TypeError):
        cfg.vectorizer_config(source="blog", chunking=cfg.EmbeddingOpenaiConfig("m", 3))


CASES = [
    dict(loading=cfg.LoadingColumnConfig("body", retries=3),
         embedding=cfg.EmbeddingOpenaiConfig("text-embedding-3-small", 768, chat_user="me", api_key_name="K", base_url="http://x"),
         chunking=cfg.ChunkingCharacterTextSplitterConfig(500, 50, "\n", True),
         formatting=cfg.FormattingPythonTemplateConfig("$title: $chunk"),
         indexing=cfg.IndexingHnswConfig(min_rows=10, opclass="vector_l2_ops", m=8, ef_construction=32, create_when_queue_empty=False),
         scheduling=cfg.SchedulingNoneConfig(), processing=cfg.ProcessingDefaultConfig(batch_size=10, concurrency=2),
         destination=cfg.DestinationTableConfig(target_table="d1_store", view_name="d1"), parsing=cfg.ParsingNoneConfig()),
    dict(loading=cfg.LoadingUriConfig("url", retries=2, aws_role_arn="arn:aws:iam::1:role/r"),
         embedding=cfg.EmbeddingOllamaConfig("nomic", 64, base_url="http://o", options={"num_ctx": 8}, keep_alive="5m"),
         chunking=cfg.ChunkingRecursiveCharacterTextSplitterConfig(100, 10, ["\n", " "], False),
         formatting=cfg.FormattingChunkValueConfig(), indexing=cfg.IndexingNoneConfig(),
         scheduling=cfg.SchedulingDefaultConfig(), destination=cfg.DestinationTableConfig(destination="d2"),
         parsing=cfg.ParsingAutoConfig()),
    dict(loading=cfg.LoadingColumnConfig("file"), parsing=cfg.ParsingPymupdfConfig(),
         embedding=cfg.EmbeddingVoyageaiConfig("voyage-3-lite", 512, input_type="query", api_key_name="V"),
         chunking=cfg.ChunkingNoneConfig(), indexing=cfg.IndexingDefaultConfig(),
         destination=cfg.DestinationColumnConfig("file_embedding")),
    dict(loading=cfg.LoadingColumnConfig("body"),
         embedding=cfg.EmbeddingLitellmConfig("cohere/embed-english-v3.0", 1024, api_key_name="C", extra_options={"a": 1}),
         destination=cfg.DestinationTableConfig(destination="d4", target_schema="public", view_schema="public")),
    dict(loading=cfg.LoadingColumnConfig("file"), parsing=cfg.ParsingDoclingConfig(),
         embedding=cfg.EmbeddingSentenceTransformersConfig("all-MiniLM-L6-v2", 384),
         destination=cfg.DestinationTableConfig(destination="d5")),
]


def test_config_classes_give_the_extension_the_same_config_as_hand_written_json(db):
    """Every option of every class the extension can evaluate without other
    extensions (diskann and timescaledb need vectorscale / timescaledb)."""
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, file bytea, url text)")
    assert set(SPEC_CLASSES) - {"IndexingDiskannConfig", "SchedulingTimescaledbConfig"} <= {
        type(v).__name__ for case in CASES for v in case.values()
    }
    for i, kwargs in enumerate(CASES):
        config = cfg.vectorizer_config(source="docs", name=f"v{i}", **kwargs)
        # Unknown keys are errors, so the extension accepting it proves the
        # names; every value must be stored as given.
        vid = create_vectorizer(db, config)
        stored = db.execute("SELECT config FROM migrate.vectorizer WHERE id = %s", (vid,)).fetchone()[0]
        for key, value in config.items():
            if isinstance(value, dict):
                for option, v in value.items():
                    if (key, option) != ("destination", "destination"):  # expanded into target_table/view_name
                        assert stored[key][option] == v, (i, key, option)
        db.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (f"v{i}",))
    # pgai's JSON spelling (with config_type) is the same config.
    assert db.execute(
        "SELECT migrate.create_vectorizer(%s::jsonb)",
        (json.dumps({"source": "docs", "name": "pgai_form", "loading": {"config_type": "loading", **cfg.LoadingColumnConfig("body").to_config()},
                     "embedding": {"config_type": "embedding", **cfg.EmbeddingOpenaiConfig("m", 8).to_config()}}),),
    ).fetchone()[0]


def test_sql_literals_survive_quotes_backslashes_colons_and_percent_signs(db):
    template = "it's $title: 100% \\n $chunk"
    statement = sql.create_vectorizer_sql(
        {**BLOG_CONFIG, "formatting": {"implementation": "python_template", "template": template}}
    )
    assert statement.startswith("SELECT migrate.create_vectorizer(E'")
    db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
    db.execute(statement)
    assert db.execute("SELECT config->'formatting'->>'template' FROM migrate.vectorizer").fetchone()[0] == template
    assert sql.literal("a'b") == "'a''b'"
    with pytest.raises(ValueError):
        sql.literal("nul\x00")


# --- pgai's operations --------------------------------------------------------

SEED_MIGRATION = '''\
"""The example of pgai's Alembic document, unchanged but for the imports
(and the comma its text lacks after destination=...)."""
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

import sqlalchemy as sa
from alembic import op
from pgai_migrate.configuration import (
    EmbeddingOpenaiConfig,
    ChunkingCharacterTextSplitterConfig,
    FormattingPythonTemplateConfig,
    LoadingColumnConfig,
    DestinationTableConfig
)


def upgrade() -> None:
    op.create_table("blog", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("title", sa.Text), sa.Column("content", sa.Text))
    op.create_vectorizer(
        source="blog",
        name="blog_content_embedder",  # Optional custom name for easier reference
        destination=DestinationTableConfig(
            destination='blog_embeddings'
        ),
        loading=LoadingColumnConfig(column_name='content'),
        embedding=EmbeddingOpenaiConfig(
            model='text-embedding-3-small',
            dimensions=768
        ),
        chunking=ChunkingCharacterTextSplitterConfig(
            chunk_size=800,
            chunk_overlap=400,
            separator='.',
            is_separator_regex=False
        ),
        formatting=FormattingPythonTemplateConfig(template='$title - $chunk')
    )


def downgrade() -> None:
    op.drop_vectorizer(name="blog_content_embedder", drop_all=True)
    op.drop_table("blog")
'''


@pytest.fixture
def seed_project(project):
    """The example project without declared vectorizers, holding the seed's migration."""
    (project / "models.py").write_text(
        "from sqlalchemy.orm import DeclarativeBase\n\n\nclass Base(DeclarativeBase):\n    pass\n"
    )
    (project / "versions" / "0001_seed.py").write_text(SEED_MIGRATION)
    return project


def test_seed_example_upgrades_and_downgrades_online_with_labels(seed_project, dbname, new_database):
    require_new_api(dbname)
    alembic(seed_project, dbname, "upgrade", "head")
    ((name, config),) = catalog(dbname)
    assert name == "blog_content_embedder"
    assert config == evaluated(BLOG_CONFIG, new_database)
    with connect(dbname) as conn:
        assert [r[2] for r in managed(conn)] == ["store", "view", "queue", "failed_queue"]
    alembic(seed_project, dbname, "downgrade", "base")
    assert catalog(dbname) == []
    assert revisions(dbname) == [
        ("blog_content_embedder", "create", "0001"),
        ("blog_content_embedder", "drop", "0001"),
    ]
    with connect(dbname) as conn:
        assert conn.execute("SELECT to_regclass('blog_embeddings_store')").fetchone()[0] is None


def test_seed_example_offline_sql_is_the_same_migration(seed_project, dbname, new_database):
    out = alembic(seed_project, dbname, "upgrade", "head", "--sql").stdout
    (line,) = [l for l in out.splitlines() if "migrate.create_vectorizer" in l]
    assert line.startswith("SELECT migrate.create_vectorizer('{")
    assert line.endswith("}'::jsonb, label => '0001');")
    assert json.loads(line[len("SELECT migrate.create_vectorizer('"):line.index("'::jsonb")]) == BLOG_CONFIG
    down = alembic(seed_project, dbname, "downgrade", "0001:base", "--sql").stdout
    assert "SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true, label => '0001');" in down

    require_new_api(dbname)  # the text above needs no database; running it does
    offline = new_database()
    psql_script(offline, out)
    alembic(seed_project, dbname, "upgrade", "head")
    assert catalog(offline) == catalog(dbname)
    assert revisions(offline) == revisions(dbname) == [("blog_content_embedder", "create", "0001")]


# Quotes, a backslash, ":name" (a bind parameter to text()) and "%" (psycopg's
# placeholder character) in one config value.
TEMPLATE = "it's $title:title 100% \\ $chunk"


def test_alter_restore_and_explicit_labels_online_and_offline(seed_project, dbname, new_database):
    (seed_project / "versions" / "0002_alter.py").write_text(textwrap.dedent('''\
        revision = "0002"
        down_revision = "0001"
        from alembic import op
        from pgai_migrate.configuration import (
            ChunkingCharacterTextSplitterConfig, FormattingPythonTemplateConfig, ProcessingDefaultConfig)

        def upgrade():
            op.alter_vectorizer("blog_content_embedder", processing=ProcessingDefaultConfig(batch_size=10))
            op.alter_vectorizer("blog_content_embedder", reembed=True,
                                formatting=FormattingPythonTemplateConfig(template=TEMPLATE))
            op.alter_vectorizer("blog_content_embedder", chunking={"chunk_size": 500}, reembed=True, label="smaller chunks")
            op.drop_vectorizer("blog_content_embedder", drop_all=True)
            op.restore_vectorizer("blog_content_embedder")

        def downgrade():
            op.alter_vectorizer("blog_content_embedder", chunking=ChunkingCharacterTextSplitterConfig(chunk_size=800), reembed=True)
            op.alter_vectorizer("blog_content_embedder", processing={"batch_size": None})
    ''') + f"\nTEMPLATE = {TEMPLATE!r}\n")
    out = alembic(seed_project, dbname, "upgrade", "head", "--sql").stdout
    assert ("SELECT migrate.alter_vectorizer('blog_content_embedder', "
            "'{\"chunking\": {\"chunk_size\": 500}}'::jsonb, reembed => true, label => 'smaller chunks');") in out
    assert "SELECT migrate.restore_vectorizer('blog_content_embedder', label => '0002');" in out
    assert "SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true, label => '0002');" in out
    assert ("SELECT migrate.alter_vectorizer('blog_content_embedder', "
            "'{\"processing\": {\"implementation\": \"default\", \"batch_size\": 10}}'::jsonb, label => '0002');") in out
    assert "E'{\"formatting\": {\"implementation\": \"python_template\", \"template\": \"it''s $title:title 100% \\\\\\\\ $chunk\"}}'::jsonb" in out

    require_new_api(dbname)  # the text above needs no database; running it does
    offline = new_database()
    psql_script(offline, out)

    alembic(seed_project, dbname, "upgrade", "head")
    for db in (dbname, offline):
        ((_, config),) = catalog(db)
        assert config["chunking"]["chunk_size"] == 500
        assert config["processing"]["batch_size"] == 10
        assert config["formatting"]["template"] == TEMPLATE
        assert [(op, label) for _, op, label in revisions(db)] == [
            ("create", "0001"), ("alter", "0002"), ("alter", "0002"), ("alter", "smaller chunks"), ("drop", "0002"),
            ("create", "0002"),
        ]
    # A re-embedding change without reembed=True is refused by the extension.
    bad = seed_project / "versions" / "0003_bad.py"
    bad.write_text('revision = "0003"\ndown_revision = "0002"\nfrom alembic import op\n'
                   'def upgrade():\n    op.alter_vectorizer("blog_content_embedder", chunking={"chunk_size": 200})\n')
    result = alembic(seed_project, dbname, "upgrade", "head", check=False)
    assert result.returncode != 0 and "InvalidParameterValue" in result.stderr
    bad.unlink()
    alembic(seed_project, dbname, "downgrade", "0001")
    ((_, config),) = catalog(dbname)
    assert config["chunking"]["chunk_size"] == 800


# --- autogenerate: the README's walk-through ----------------------------------


def test_readme_walkthrough_declare_autogenerate_upgrade_change_chunk_size_downgrade(project, new_database, template_db):
    """A database without the extension: the first autogenerate creates the
    table, the extension and the vectorizer (not the view the models map);
    a smaller chunk size autogenerates a re-embedding alter with its cost;
    downgrades go back step by step."""
    require_new_api(template_db)
    dbname = new_database(empty=True)
    first = autogenerate(project, dbname, "0001", "blog")
    body = function_body(first, "upgrade")
    assert body[0].startswith("op.create_table('blog'")
    assert "op.execute('CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE')" in body
    assert "op.create_vectorizer(" in body
    assert "name='blog_content_embedder'," in body
    assert ("chunking=pgai_config.ChunkingCharacterTextSplitterConfig(chunk_size=800, chunk_overlap=400, "
            "separator='.', is_separator_regex=False),") in body
    assert not any("blog_embeddings" in line and "create_table" in line for line in body)
    assert function_body(first, "downgrade")[0] == "op.drop_vectorizer('blog_content_embedder', drop_all=True)"
    assert function_body(first, "downgrade")[-1] == "op.drop_table('blog')"
    alembic(project, dbname, "upgrade", "head")
    ((name, config),) = catalog(dbname)
    assert config["chunking"]["chunk_size"] == 800
    assert "No new upgrade operations detected." in alembic(project, dbname, "check").stdout
    with connect(dbname) as conn:
        conn.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(1, 3) g")
        conn.execute("DELETE FROM migrate._vectorizer_q_1")  # as if a worker had embedded them

    models = project / "models.py"
    models.write_text(models.read_text().replace("chunk_size=800", "chunk_size=500"))
    pending = alembic(project, dbname, "check", check=False)
    assert pending.returncode != 0 and "alter_vectorizer" in pending.stderr
    second = autogenerate(project, dbname, "0002", "smaller chunks")
    up, down = function_body(second, "upgrade"), function_body(second, "downgrade")
    assert up == ["op.alter_vectorizer('blog_content_embedder', chunking={'chunk_size': 500}, reembed=True)"]
    assert down == ["op.alter_vectorizer('blog_content_embedder', chunking={'chunk_size': 800}, reembed=True)"]
    assert "# re-embeds: changes chunking.chunk_size; queues all 3 rows of" in second
    alembic(project, dbname, "upgrade", "head")
    ((_, config),) = catalog(dbname)
    assert config["chunking"]["chunk_size"] == 500
    with connect(dbname) as conn:
        assert conn.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0] == 3
    assert "No new upgrade operations detected." in alembic(project, dbname, "check").stdout

    alembic(project, dbname, "downgrade", "-1")
    ((_, config),) = catalog(dbname)
    assert config["chunking"]["chunk_size"] == 800
    alembic(project, dbname, "downgrade", "base")
    assert catalog(dbname) == []
    with connect(dbname) as conn:
        assert conn.execute("SELECT to_regclass('blog'), to_regclass('blog_embeddings')").fetchone() == (None, None)
    assert [(op, label) for _, op, label in revisions(dbname)] == [
        ("create", "0001"), ("alter", "0002"), ("alter", "0002"), ("drop", "0001"),
    ]


def test_autogenerate_in_place_change_removal_and_restore(project, dbname):
    require_new_api(dbname)
    autogenerate(project, dbname, "0001", "blog")
    alembic(project, dbname, "upgrade", "head")
    models = project / "models.py"
    text = models.read_text()
    models.write_text(text.replace(
        "formatting=FormattingPythonTemplateConfig(template=\"$title - $chunk\"),",
        "formatting=FormattingPythonTemplateConfig(template=\"$title - $chunk\"),\n"
        "        processing=ProcessingDefaultConfig(batch_size=20),",
    ).replace("LoadingColumnConfig,", "LoadingColumnConfig,\n    ProcessingDefaultConfig,"))
    second = autogenerate(project, dbname, "0002")
    assert function_body(second, "upgrade") == ["op.alter_vectorizer('blog_content_embedder', processing={'batch_size': 20})"]
    assert "# in place: changes processing.batch_size; stored embeddings stay valid" in second
    alembic(project, dbname, "upgrade", "head")

    # The declaration removed (the view's model too): drop, downgrade restores.
    models.write_text(text.split("    # Declares the vectorizer")[0].replace("import uuid\n", "")
                      + "\n\nfrom pgai_migrate.vectorizer import INFO_KEY\nBase.metadata.info[INFO_KEY] = []\n")
    third = autogenerate(project, dbname, "0003")
    assert function_body(third, "upgrade") == ["op.drop_vectorizer('blog_content_embedder', drop_all=True)"]
    assert function_body(third, "downgrade") == ["op.restore_vectorizer('blog_content_embedder')"]
    alembic(project, dbname, "upgrade", "head")
    assert catalog(dbname) == []
    alembic(project, dbname, "downgrade", "0002")
    ((_, config),) = catalog(dbname)
    assert config["processing"]["batch_size"] == 20


def test_autogenerate_leaves_vectorizers_alone_when_none_are_declared(seed_project, dbname):
    """Projects that create vectorizers by hand: no key in metadata.info, no drops."""
    with connect(dbname) as conn:
        conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
        create_vectorizer(conn, BLOG_CONFIG)
    (seed_project / "versions" / "0001_seed.py").unlink()
    generated = autogenerate(seed_project, dbname, "0001")
    # Only the unmodelled blog table is proposed; nothing about the vectorizer.
    assert function_body(generated, "upgrade") == ["op.drop_table('blog')"]


# --- autogenerate drops only this project's vectorizers ---------------------------


def hand_vectorizer(dbname, source, name):
    """A table and its vectorizer made by hand with plain SQL (no label)."""
    config = {"source": source, "name": name,
              "loading": {"implementation": "column", "column_name": "body"},
              "embedding": {"implementation": "openai", "model": "m", "dimensions": 3}}
    psql_script(dbname, f"CREATE TABLE {source} (id int PRIMARY KEY, body text);\n"
                        f"SELECT migrate.create_vectorizer('{json.dumps(config)}');\n")


def proposed_drops(generated):
    return [line for line in function_body(generated, "upgrade") if "drop_vectorizer" in line]


def test_autogenerate_does_not_drop_vectorizers_made_by_hand_here_or_in_another_schema(project, dbname):
    """The models declare blog's vectorizer; vectorizers someone made with
    plain SQL, on a table of the same schema and of another one, are not
    this project's: autogenerate never proposes dropping them."""
    require_new_api(dbname)
    autogenerate(project, dbname, "0001", "blog")
    alembic(project, dbname, "upgrade", "head")
    psql_script(dbname, "CREATE SCHEMA other;")
    hand_vectorizer(dbname, "notes", "hand_notes")
    hand_vectorizer(dbname, "other.docs", "other_docs")
    second = autogenerate(project, dbname, "0002")
    assert proposed_drops(second) == []
    assert "vectorizer" not in second.split("def downgrade")[1]
    assert [name for name, _ in catalog(dbname)] == ["blog_content_embedder", "hand_notes", "other_docs"]


OTHER_SCHEMA_MIGRATION = '''\
revision = "0002"
down_revision = "0001"
from alembic import op
from pgai_migrate.configuration import EmbeddingOpenaiConfig, LoadingColumnConfig

def upgrade():
    op.execute("CREATE SCHEMA other")
    op.execute("CREATE TABLE other.docs (id int PRIMARY KEY, body text)")
    op.create_vectorizer(source="other.docs", name="other_docs", loading=LoadingColumnConfig(column_name="body"),
                         embedding=EmbeddingOpenaiConfig(model="m", dimensions=3))
'''


def test_autogenerate_drops_nothing_in_a_schema_the_models_do_not_cover(project, dbname):
    """A vectorizer this project made in a hand-written migration, on a table
    of a schema no model (and no declaration) is in, is not dropped; listing
    the schema with manage_vectorizers() lets autogenerate drop it."""
    require_new_api(dbname)
    autogenerate(project, dbname, "0001", "blog")
    (project / "versions" / "0002_other.py").write_text(OTHER_SCHEMA_MIGRATION)
    alembic(project, dbname, "upgrade", "head")
    assert [label for name, _, label in revisions(dbname) if name == "other_docs"] == ["0002"]
    third = autogenerate(project, dbname, "0003")
    assert proposed_drops(third) == []
    third_path, = (project / "versions").glob("0003_*.py")
    third_path.unlink()

    models = project / "models.py"
    models.write_text(models.read_text() + "\n\nfrom pgai_migrate.vectorizer import manage_vectorizers\n"
                      "manage_vectorizers(Base.metadata, schemas=['public', 'other'])\n")
    third = autogenerate(project, dbname, "0003")
    assert proposed_drops(third) == ["op.drop_vectorizer('other_docs', drop_all=True)"]
    assert [l for l in function_body(third, "downgrade") if "vectorizer" in l] == ["op.restore_vectorizer('other_docs')"]


def test_manage_vectorizers_can_turn_drops_off_and_adopts_named_vectorizers(project, dbname):
    """drop=False proposes no drop at all, not even of a vectorizer this
    project created and no longer declares; names= counts vectorizers made
    by hand as this project's (others made by hand stay untouched)."""
    require_new_api(dbname)
    autogenerate(project, dbname, "0001", "blog")
    alembic(project, dbname, "upgrade", "head")
    models = project / "models.py"
    original = models.read_text()
    removed = (original.split("    # Declares the vectorizer")[0].replace("import uuid\n", "")
               + "\n\nfrom pgai_migrate.vectorizer import INFO_KEY, manage_vectorizers\n"
               "Base.metadata.info[INFO_KEY] = []\n")
    models.write_text(removed + "manage_vectorizers(Base.metadata, drop=False)\n")
    assert proposed_drops(autogenerate(project, dbname, "0002")) == []
    for path in (project / "versions").glob("0002_*.py"):
        path.unlink()
    models.write_text(removed)  # the default again: the project's own vectorizer is proposed
    assert proposed_drops(autogenerate(project, dbname, "0002")) == [
        "op.drop_vectorizer('blog_content_embedder', drop_all=True)"]
    for path in (project / "versions").glob("0002_*.py"):
        path.unlink()

    hand_vectorizer(dbname, "notes", "hand_notes")
    hand_vectorizer(dbname, "memos", "hand_memos")
    models.write_text(original + "\n\nfrom pgai_migrate.vectorizer import manage_vectorizers\n"
                      "manage_vectorizers(Base.metadata, names=['hand_notes'])\n")
    second = autogenerate(project, dbname, "0002")
    assert proposed_drops(second) == ["op.drop_vectorizer('hand_notes', drop_all=True)"]
    assert [l for l in function_body(second, "downgrade") if "vectorizer" in l] == ["op.restore_vectorizer('hand_notes')"]


# --- include_object / include_name ----------------------------------------------


def test_hooks_work_before_the_extension_exists_and_exclude_managed_relations(project, new_database):
    dbname = new_database(empty=True)
    models = project / "models.py"
    # Without declared vectorizers, the view's model is excluded only once it exists.
    models.write_text(models.read_text().split("    # Declares the vectorizer")[0] + "\n")
    first = autogenerate(project, dbname, "0001")
    assert [l for l in function_body(first, "upgrade") if "create_table" in l] == ["op.create_table('blog',"]
    assert "vectorizer" not in first
    with connect(dbname) as conn:
        conn.execute("CREATE EXTENSION pgai_migrate CASCADE")
        conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
        conn.execute("CREATE TABLE blog_embeddings_stray (id int)")  # not managed: must show up
        create_vectorizer(conn, BLOG_CONFIG)
    (project / "versions" / "0001_change.py").unlink()
    second = autogenerate(project, dbname, "0001")
    assert function_body(second, "upgrade") == ["op.drop_table('blog_embeddings_stray')"]


HOOKS_EXPECTED = {
    # migrate, app, app.store, app.view, app.blog, public.blog_embeddings, model of app.view, migrate.vectorizer, app.blog
    "installed": ["False", "True", "False", "False", "True", "True", "False", "False", "True"],
    "missing": ["False", "True", "True", "True", "True", "True", "True", "False", "True"],
}


@pytest.mark.parametrize("extension", ["installed", "missing"])
def test_include_name_and_include_object_decide_by_schema_and_managed_tables(extension, new_database):
    """Called directly, as Alembic would, inside a migration context, in a
    transaction that must stay usable (no error when schema migrate is missing)."""
    dbname = new_database(empty=extension == "missing")
    with connect(dbname) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.blog (id int PRIMARY KEY, title text, content text)")
        if extension == "installed":
            create_vectorizer(conn, {**BLOG_CONFIG, "source": "app.blog"})
    script = textwrap.dedent(f'''
        import sqlalchemy as sa
        from alembic.migration import MigrationContext
        from alembic import context
        from pgai_migrate.alembic import include_name, include_object
        engine = sa.create_engine({database_url(dbname)!r})
        with engine.connect() as c, c.begin():
            ctx = MigrationContext.configure(c)
            context._proxy = type("P", (), {{"get_context": staticmethod(lambda: ctx)}})()
            md = sa.MetaData()
            t = lambda name, schema=None: sa.Table(name, md, sa.Column("x", sa.Integer), schema=schema)
            print(include_name("migrate", "schema", {{}}), include_name("app", "schema", {{}}),
                  include_name("blog_embeddings_store", "table", {{"schema_name": "app"}}),
                  include_name("blog_embeddings", "table", {{"schema_name": "app"}}),
                  include_name("blog", "table", {{"schema_name": "app"}}),
                  include_name("blog_embeddings", "table", {{"schema_name": None}}),
                  include_object(t("blog_embeddings", "app"), "blog_embeddings", "table", False, None),
                  include_object(t("vectorizer", "migrate"), "vectorizer", "table", True, None),
                  include_object(t("blog", "app"), "blog", "table", False, None))
            assert c.execute(sa.text("SELECT 1")).scalar() == 1   # the transaction is usable
    ''')
    out = subprocess.run([sys.executable, "-c", script], env=client_env(PYTHONPATH=PYTHON_DIR),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == HOOKS_EXPECTED[extension]


# --- vectorizer_relationship -----------------------------------------------------


def test_vectorizer_relationship_reads_the_embeddings_of_a_row(dbname):
    with connect(dbname) as conn:
        conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
        create_vectorizer(conn, {**BLOG_CONFIG, "embedding": {"implementation": "openai", "model": "m", "dimensions": 3}})
        conn.execute("INSERT INTO blog VALUES (1, 'a', 'x'), (2, 'b', 'y')")
        conn.execute("INSERT INTO blog_embeddings_store (id, chunk_seq, chunk, embedding) "
                     "VALUES (1, 1, 'second', '[0,1,0]'), (1, 0, 'first', '[1,0,0]'), (2, 0, 'other', '[0,0,1]')")
    script = textwrap.dedent(f'''
        import sqlalchemy as sa
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, Session
        from pgai_migrate.configuration import DestinationTableConfig, EmbeddingOpenaiConfig, LoadingColumnConfig
        from pgai_migrate.sqlalchemy import vectorizer_relationship
        from pgai_migrate.vectorizer import INFO_KEY

        class Base(DeclarativeBase):
            pass

        class Blog(Base):
            __tablename__ = "blog"
            id: Mapped[int] = mapped_column(primary_key=True)
            title: Mapped[str]
            content: Mapped[str]
            content_embeddings = vectorizer_relationship(
                name="blog_content_embedder",
                destination=DestinationTableConfig(destination="blog_embeddings"),
                loading=LoadingColumnConfig(column_name="content"),
                embedding=EmbeddingOpenaiConfig(model="m", dimensions=3))

        class Plain(Base):  # pgai's form: just the store
            __tablename__ = "plain"
            id: Mapped[int] = mapped_column(primary_key=True)
            emb = vectorizer_relationship(dimensions=3)

        engine = sa.create_engine({database_url(dbname)!r})
        with Session(engine) as s:
            blog = s.get(Blog, 1)
            print([(e.chunk_seq, e.chunk, e.embedding) for e in blog.content_embeddings])
            Store = Blog.content_embeddings
            print(Store.__table__.name, Store.__table__.info, s.scalar(sa.select(sa.func.count()).select_from(Store)))
            print(s.scalars(sa.select(Store.chunk).where(Store.id == 2)).all())
        print(sorted(Base.metadata.info["pgai_managed_tables"]), [v.name for v in Base.metadata.info[INFO_KEY]])
        print(Plain.emb.__table__.name)
        from pgai_migrate.alembic import include_object   # the store's model is never migrated
        print(include_object(Store.__table__, Store.__table__.name, "table", False, None),
              include_object(Blog.__table__, "blog", "table", False, None))
    ''')
    out = subprocess.run([sys.executable, "-c", script], env=client_env(PYTHONPATH=PYTHON_DIR),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[(0, 'first', [1.0, 0.0, 0.0]), (1, 'second', [0.0, 1.0, 0.0])]",
        "blog_embeddings_store {'pgai_migrate_managed': True} 3",
        "['other']",
        "['blog_embeddings_store', 'plain_embedding_store'] ['blog_content_embedder']",
        "plain_embedding_store",
        "False True",
    ]


# --- packaging ---------------------------------------------------------------------


def test_pip_installs_the_package_from_the_repository(tmp_path):
    target = tmp_path / "site"
    source = tmp_path / "python"  # a copy: the build leaves build/ and *.egg-info beside the sources
    shutil.copytree(PYTHON_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", "import pgai_migrate.alembic, pgai_migrate.configuration as c, pgai_migrate.sqlalchemy;"
         "print(pgai_migrate.alembic.__file__.startswith(%r), c.LoadingColumnConfig('x').to_config())" % str(target)],
        env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True {'implementation': 'column', 'column_name': 'x'}"


# --- pieces --------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, destination",
    [
        ("blog", None),
        ("blog", {"implementation": "table", "destination": "posts"}),
        ("app.blog", {"implementation": "table", "target_table": "s", "view_name": "v"}),
        ("app.blog", {"implementation": "table", "destination": "d", "target_schema": "public"}),
        ('"Blog"', None),
        ("blog", {"implementation": "column", "embedding_column": "emb"}),
    ],
)
def test_declared_names_are_the_extensions_default_names(db, source, destination):
    """The hooks and the comparator name a declared vectorizer's store, view
    and the vectorizer itself before it exists: as the extension will."""
    from pgai_migrate.vectorizer import Vectorizer

    db.execute("CREATE SCHEMA app")
    for table in ("blog", "app.blog", '"Blog"'):
        db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, content text)")
    kwargs = dict(loading=cfg.LoadingColumnConfig("content"), embedding=cfg.EmbeddingOpenaiConfig("m", 3))
    if destination:
        kwargs["destination"] = destination
        if destination["implementation"] == "column":
            kwargs["chunking"] = "none"
    declared = Vectorizer(source, **kwargs)
    create_vectorizer(db, declared.config())
    name, store, view = db.execute(
        "SELECT name, (SELECT array[schema_name::text, table_name::text] FROM migrate.managed_tables() WHERE kind = 'store'),"
        " (SELECT array[schema_name::text, table_name::text] FROM migrate.managed_tables() WHERE kind = 'view')"
        " FROM migrate.vectorizer"
    ).fetchone()
    assert declared.resolved_name("public") == name
    relations = [list(r) for r in declared.relations("public")]
    assert relations == ([store, view] if store else [])


def test_alter_changes_from_a_plan_name_leaves_or_whole_objects():
    from pgai_migrate.alembic.autogenerate import _changes

    rows = [
        {"path": "chunking.chunk_size", "old_value": 800, "new_value": 500},
        {"path": "grant_to", "old_value": [], "new_value": ["r"]},
        {"path": "embedding.implementation", "old_value": "openai", "new_value": "ollama"},
        {"path": "embedding.model", "old_value": "m", "new_value": "x"},
    ]
    declared = {"embedding": {"implementation": "ollama", "model": "x", "dimensions": 3}}
    old = {"embedding": {"implementation": "openai", "model": "m", "dimensions": 3, "api_key_name": "K"}}
    assert _changes(rows, declared, old) == (
        {"embedding": declared["embedding"], "chunking": {"chunk_size": 500}, "grant_to": ["r"]},
        {"embedding": old["embedding"], "chunking": {"chunk_size": 800}, "grant_to": []},
    )

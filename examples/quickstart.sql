-- pgai_migrate quick start:  psql -X -v ON_ERROR_STOP=1 -d mydb -f examples/quickstart.sql
CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE;

CREATE TABLE blog (id int PRIMARY KEY, title text, content text);
INSERT INTO blog VALUES
    (1, 'Hello', 'Our first post.'),
    (2, 'Vectors', 'Embeddings in PostgreSQL.'),
    (3, 'Migrations', 'Schema as code.');

-- One JSON document describes the pipeline; the id is returned.
SELECT migrate.create_vectorizer('{
    "source": "blog",
    "name": "blog_content_embedder",
    "destination": {"implementation": "table", "destination": "blog_embeddings"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
}'::jsonb);

-- What it made (exclude these from schema-diff tools):
SELECT kind, schema_name, table_name FROM migrate.managed_tables();

-- Existing rows were queued for embedding; new and edited ones are too.
INSERT INTO blog VALUES (4, 'Triggers', 'New rows are queued.');
SELECT queue_schema, queue_table FROM migrate.vectorizer WHERE name = 'blog_content_embedder' \gset
SELECT id AS queued_id FROM :"queue_schema".:"queue_table" ORDER BY id;

-- Remove it again: drop_all => true also drops the store table and view.
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);
SELECT id, vectorizer_name, operation FROM migrate.revision ORDER BY id;
DROP TABLE blog;

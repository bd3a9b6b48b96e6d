-- Evolving a vectorizer with plain SQL: each statement is what an up or
-- down migration runs. Run with: psql -X -v ON_ERROR_STOP=1 -f examples/evolve.sql
CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE;

CREATE TABLE post (id int PRIMARY KEY, title text, body text);
INSERT INTO post VALUES (1, 'One', 'First post.'), (2, 'Two', 'Second post.'), (3, 'Three', 'Third post.');

-- 0001 up: create
SELECT migrate.create_vectorizer('{
    "source": "post",
    "name": "post_embedder",
    "destination": {"implementation": "table", "destination": "post_embeddings"},
    "loading": {"implementation": "column", "column_name": "body"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "chunking": {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400}
}'::jsonb, label => '0001');
DELETE FROM migrate._vectorizer_q_1;   -- as if the worker had caught up

-- What would a smaller chunk size cost?
SELECT path, old_value, new_value, action, queued_rows FROM migrate.plan_vectorizer('{
    "source": "post",
    "name": "post_embedder",
    "destination": {"implementation": "table", "destination": "post_embeddings"},
    "loading": {"implementation": "column", "column_name": "body"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "chunking": {"implementation": "character_text_splitter", "chunk_size": 500, "chunk_overlap": 400},
    "processing": {"implementation": "default", "batch_size": 100}
}'::jsonb);

-- 0002 up: tune the worker (in place: nothing is queued)
SELECT migrate.alter_vectorizer('post_embedder', '{"processing": {"batch_size": 100}}', label => '0002');
SELECT count(*) AS queued_after_0002 FROM migrate._vectorizer_q_1;

-- 0003 up: smaller chunks (every row is embedded again)
SELECT migrate.alter_vectorizer('post_embedder', '{"chunking": {"chunk_size": 500}}', reembed => true, label => '0003');
SELECT count(*) AS queued_after_0003 FROM migrate._vectorizer_q_1;

-- 0004 up: drop; its down migration restores from history
SELECT migrate.drop_vectorizer('post_embedder', drop_all => true, label => '0004');
SELECT migrate.restore_vectorizer('post_embedder', label => '0004 down');

SELECT operation, label, config->'chunking'->>'chunk_size' AS chunk_size, restored_from IS NOT NULL AS restored
FROM migrate.revision WHERE vectorizer_name = 'post_embedder' ORDER BY id;

SELECT migrate.drop_vectorizer('post_embedder', drop_all => true);
DROP TABLE post;

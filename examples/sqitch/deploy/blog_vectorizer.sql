-- Deploy blog:blog_vectorizer to pg; requires blog.
-- The revision is labelled with the change's name (set_config(…, true)
-- lasts until this script's COMMIT).
BEGIN;
SELECT set_config('migrate.revision_label', 'blog_vectorizer', true);
SELECT migrate.create_vectorizer('{
  "source": "blog",
  "name": "blog_content_embedder",
  "destination": {"implementation": "table", "destination": "blog_embeddings"},
  "loading": {"implementation": "column", "column_name": "content"},
  "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
  "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
}');
COMMIT;

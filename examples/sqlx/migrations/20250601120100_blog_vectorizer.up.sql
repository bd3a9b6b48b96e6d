-- sqlx runs each migration in its own transaction, so SET LOCAL labels
-- only the history rows (migrate.revision) this migration writes.
SET LOCAL migrate.revision_label = '20250601120100_blog_vectorizer';
SELECT migrate.create_vectorizer('{
    "source": "blog",
    "name": "blog_content_embedder",
    "destination": {"implementation": "table", "destination": "blog_embeddings"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "chunking": {"implementation": "character_text_splitter", "chunk_size": 800,
                 "chunk_overlap": 400, "separator": ".", "is_separator_regex": false},
    "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
}'::jsonb);

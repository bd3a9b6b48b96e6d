-- Hand-written (`prisma migrate dev --create-only`), labelled with the
-- migration's name.
SELECT migrate.create_vectorizer('{
    "source": "blog",
    "name": "blog_content_embedder",
    "destination": {"implementation": "table", "destination": "blog_embeddings"},
    "loading": {"implementation": "column", "column_name": "content"},
    "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
    "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
}'::jsonb, label => '20250601120100_blog_vectorizer');

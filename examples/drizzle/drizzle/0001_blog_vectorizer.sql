-- Custom SQL migration file (drizzle-kit generate --custom). drizzle-kit
-- migrate runs every pending migration in one transaction, so the label is
-- set right before the call it belongs to.
CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE;--> statement-breakpoint
SET LOCAL migrate.revision_label = '0001_blog_vectorizer';--> statement-breakpoint
SELECT migrate.create_vectorizer('{
  "source": "blog",
  "name": "blog_content_embedder",
  "destination": {"implementation": "table", "destination": "blog_embeddings"},
  "loading": {"implementation": "column", "column_name": "content"},
  "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
  "formatting": {"implementation": "python_template", "template": "$title - $chunk"}
}'::jsonb);

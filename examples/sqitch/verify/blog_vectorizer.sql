-- Verify blog:blog_vectorizer on pg: the vectorizer exists with its store
-- and view (a division by zero fails the verify).
SELECT 1 / (count(*) = 1)::int FROM migrate.vectorizer WHERE name = 'blog_content_embedder';
SELECT 1 / (count(*) = 2)::int FROM migrate.managed_tables()
 WHERE vectorizer_name = 'blog_content_embedder' AND kind IN ('store', 'view');

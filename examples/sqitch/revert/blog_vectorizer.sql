-- Revert blog:blog_vectorizer from pg.
BEGIN;
SELECT set_config('migrate.revision_label', 'blog_vectorizer', true);
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);
COMMIT;

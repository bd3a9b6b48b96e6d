BEGIN;
SET LOCAL migrate.revision_label = '002_blog_vectorizer (down)';
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);
COMMIT;

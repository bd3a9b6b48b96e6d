-- A revision is labelled with the migration that made it, in both
-- directions (migrate.revision.operation says which): here 002.
BEGIN;
SET LOCAL migrate.revision_label = '002_blog_vectorizer';
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);
COMMIT;

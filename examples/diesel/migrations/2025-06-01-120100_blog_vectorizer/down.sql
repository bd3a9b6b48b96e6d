SET LOCAL migrate.revision_label = '2025-06-01-120100_blog_vectorizer';
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);

SET LOCAL migrate.revision_label = '20250601120100_blog_vectorizer';
SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true);

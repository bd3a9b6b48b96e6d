SELECT migrate.alter_vectorizer('blog_content_embedder', '{"chunking": {"chunk_size": 800}}',
                                reembed => true, label => '003_smaller_chunks');

-- Change the chunk size: every row is embedded again (the old chunks
-- serve searches until the worker replaces them).
SELECT migrate.alter_vectorizer('blog_content_embedder', '{"chunking": {"chunk_size": 500}}',
                                reembed => true, label => '003_smaller_chunks');

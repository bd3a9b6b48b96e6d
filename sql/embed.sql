-- migrate.vectorizer_embed: a query's embedding computed in the backend
-- with the vectorizer's own provider and model (the worker's code, so the
-- same vectors), for a search in one statement:
--   SELECT … ORDER BY embedding <=> migrate.vectorizer_embed('blog_embedder', 'which animal purrs?') LIMIT 5
-- By the vectorizer's name or id, or by an embedding config (either
-- spelling); input_type is Voyage AI's (pgai's 'query' for a query; other
-- providers ignore it). NULL input, NULL result.
--
-- Which URL may be called and which key sent there is decided by the
-- superuser's migrate.embedding_endpoints and the caller's own session
-- keys (src/embed_api.rs, docs/security.md "Embedding in SQL"), the same
-- for all three forms.
--
-- The Rust functions take and return text (pgvector's text form, for a
-- client without the vector type too); the vector forms cast in SQL, and
-- the jsonb form reads its document as text there, so a too-deep one is
-- never an internal error.
--
-- IMMUTABLE, as pgai's embedding functions are: a query's constant text is
-- embedded once, at planning, not once per row.

CREATE FUNCTION migrate.vectorizer_embed_text(name text, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_by_name_wrapper';

CREATE FUNCTION migrate.vectorizer_embed_text(vectorizer_id int4, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_by_id_wrapper';

CREATE FUNCTION migrate.vectorizer_embed_config_text(embedding_config text, input_text text, input_type text) RETURNS text
IMMUTABLE PARALLEL RESTRICTED
LANGUAGE c AS 'MODULE_PATHNAME', 'vectorizer_embed_with_config_wrapper';

CREATE FUNCTION migrate.vectorizer_embed(name text, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_text(name, input_text, input_type)::@extschema:vector@.vector
$$;

CREATE FUNCTION migrate.vectorizer_embed(vectorizer_id int4, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_text(vectorizer_id, input_text, input_type)::@extschema:vector@.vector
$$;

CREATE FUNCTION migrate.vectorizer_embed(embedding_config jsonb, input_text text, input_type text DEFAULT NULL) RETURNS @extschema:vector@.vector
IMMUTABLE PARALLEL RESTRICTED LANGUAGE sql
AS $$
SELECT migrate.vectorizer_embed_config_text(embedding_config::pg_catalog.text, input_text, input_type)::@extschema:vector@.vector
$$;

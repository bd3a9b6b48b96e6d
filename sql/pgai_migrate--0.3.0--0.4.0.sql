-- pgai_migrate 0.3.0 -> 0.4.0: the worker is a privilege boundary.
--
-- Each section below belongs to one change; see docs/security.md for the
-- rules they enforce.

-- The worker's entry points (src/worker_api.rs): the worker claims, reads,
-- stores and re-queues through these, which run its statements as the
-- source's owner, security-restricted, with row_security off. The C
-- functions take and return the documents as text (read in SQL, so a
-- too-deep one is never an internal error); the jsonb forms wrap them.
CREATE FUNCTION migrate.worker_claim(vectorizer_id int4, max_keys int4, after text) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_claim_wrapper';
CREATE FUNCTION migrate.worker_claim(vectorizer_id int4, max_keys int4, after jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_claim(vectorizer_id, max_keys, after::pg_catalog.text)::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.worker_read(vectorizer_id int4, keys text) RETURNS text
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_read_wrapper';
CREATE FUNCTION migrate.worker_read(vectorizer_id int4, keys jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_read(vectorizer_id, keys::pg_catalog.text)::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.worker_store(vectorizer_id int4, keys text, rows text) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_store_wrapper';
CREATE FUNCTION migrate.worker_store(vectorizer_id int4, keys jsonb, rows jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_store(vectorizer_id, keys::pg_catalog.text, rows::pg_catalog.text) $$;
CREATE FUNCTION migrate.worker_retry(vectorizer_id int4, requeue text, failed text) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_retry_wrapper';
CREATE FUNCTION migrate.worker_retry(vectorizer_id int4, requeue jsonb, failed jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.worker_retry(vectorizer_id, requeue::pg_catalog.text, failed::pg_catalog.text) $$;

-- Deep JSON: alter_vectorizer and plan_vectorizer read their document's
-- text in Rust (new C symbols, so 0.3.0's SQL bound to this library finds
-- none), behind jsonb forms in SQL, as create_vectorizer does: a document
-- nested too deeply is a config error (22023), never an internal one.
-- The jsonb forms are replaced in place, keeping their grants and anything
-- built on them.
CREATE FUNCTION migrate."alter_vectorizer"(
	"name" TEXT,
	"changes" TEXT,
	"reembed" bool DEFAULT false,
	"label" TEXT DEFAULT NULL
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'alter_vectorizer_text_wrapper';

CREATE FUNCTION migrate."plan_vectorizer"(
	"config" TEXT
) RETURNS TABLE (
	"path" TEXT,
	"old_value" jsonb,
	"new_value" jsonb,
	"action" TEXT,
	"queued_rows" bigint
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'plan_vectorizer_text_wrapper';

CREATE OR REPLACE FUNCTION migrate.alter_vectorizer(name text, changes jsonb, reembed bool DEFAULT false, label text DEFAULT NULL) RETURNS int4
LANGUAGE sql VOLATILE
AS $$ SELECT migrate.alter_vectorizer(name, changes::pg_catalog.text, reembed, label) $$;

CREATE OR REPLACE FUNCTION migrate.plan_vectorizer(config jsonb)
RETURNS TABLE (path text, old_value jsonb, new_value jsonb, action text, queued_rows int8)
LANGUAGE sql VOLATILE
AS $$ SELECT * FROM migrate.plan_vectorizer(config::pg_catalog.text) $$;

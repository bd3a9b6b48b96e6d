-- pgai_migrate 0.3.0 -> 0.4.0: the worker is a privilege boundary.
--
-- Each section below belongs to one change; see docs/security.md for the
-- rules they enforce.

-- The worker's entry points (src/worker_api.rs): the worker claims, reads,
-- stores and re-queues through these, which run its statements as the
-- source's owner, security-restricted, with row_security off.
CREATE FUNCTION migrate.worker_claim(vectorizer_id int4, max_keys int4, after jsonb DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_claim_wrapper';
CREATE FUNCTION migrate.worker_read(vectorizer_id int4, keys jsonb) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_read_wrapper';
CREATE FUNCTION migrate.worker_store(vectorizer_id int4, keys jsonb, rows jsonb) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_store_wrapper';
CREATE FUNCTION migrate.worker_retry(vectorizer_id int4, requeue jsonb, failed jsonb) RETURNS void
VOLATILE PARALLEL UNSAFE
SET row_security = off SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_retry_wrapper';

-- Config helpers with pgai's names, parameter names, order and defaults.
-- Each returns the JSON that pgai's helper of the same name returns, so a
-- pgai SQL migration runs after replacing "ai." with "migrate.". The JSON
-- is validated when it reaches create_vectorizer, not here.

CREATE FUNCTION migrate.loading_column(column_name name, retries int4 DEFAULT 6)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_build_object('implementation', 'column', 'config_type', 'loading',
        'column_name', column_name, 'retries', retries)::jsonb $$;

CREATE FUNCTION migrate.loading_uri(column_name name, retries int4 DEFAULT 6, aws_role_arn text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'uri', 'config_type', 'loading',
        'column_name', column_name, 'retries', retries, 'aws_role_arn', aws_role_arn))::jsonb $$;

CREATE FUNCTION migrate.parsing_auto() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "auto", "config_type": "parsing"}'::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.parsing_none() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "none", "config_type": "parsing"}'::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.parsing_pymupdf() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "pymupdf", "config_type": "parsing"}'::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.parsing_docling() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "docling", "config_type": "parsing"}'::pg_catalog.jsonb $$;

CREATE FUNCTION migrate.embedding_openai(model text, dimensions int4, chat_user text DEFAULT NULL,
        api_key_name text DEFAULT 'OPENAI_API_KEY', base_url text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'openai', 'config_type', 'embedding',
        'model', model, 'dimensions', dimensions, 'user', chat_user,
        'api_key_name', api_key_name, 'base_url', base_url))::jsonb $$;

CREATE FUNCTION migrate.embedding_ollama(model text, dimensions int4, base_url text DEFAULT NULL,
        options jsonb DEFAULT NULL, keep_alive text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'ollama', 'config_type', 'embedding',
        'model', model, 'dimensions', dimensions, 'base_url', base_url,
        'keep_alive', keep_alive)) || CASE WHEN options IS NULL THEN '{}'::jsonb
                                            ELSE jsonb_build_object('options', options) END $$;

CREATE FUNCTION migrate.embedding_voyageai(model text, dimensions int4, input_type text DEFAULT 'document',
        api_key_name text DEFAULT 'VOYAGE_API_KEY')
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'voyageai', 'config_type', 'embedding',
        'model', model, 'dimensions', dimensions, 'input_type', input_type,
        'api_key_name', api_key_name))::jsonb $$;

CREATE FUNCTION migrate.embedding_litellm(model text, dimensions int4, api_key_name text DEFAULT NULL,
        extra_options jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'litellm', 'config_type', 'embedding',
        'model', model, 'dimensions', dimensions, 'api_key_name', api_key_name))
        || CASE WHEN extra_options IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('extra_options', extra_options) END $$;

CREATE FUNCTION migrate.embedding_sentence_transformers(model text DEFAULT 'nomic-ai/nomic-embed-text-v1.5',
        dimensions int4 DEFAULT 768)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_build_object('implementation', 'sentence_transformers', 'config_type', 'embedding',
        'model', model, 'dimensions', dimensions)::jsonb $$;

CREATE FUNCTION migrate.chunking_character_text_splitter(chunk_size int4 DEFAULT 800,
        chunk_overlap int4 DEFAULT 400, separator text DEFAULT E'\n\n', is_separator_regex bool DEFAULT false)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'character_text_splitter',
        'config_type', 'chunking', 'chunk_size', chunk_size, 'chunk_overlap', chunk_overlap,
        'separator', separator, 'is_separator_regex', is_separator_regex))::jsonb $$;

CREATE FUNCTION migrate.chunking_recursive_character_text_splitter(chunk_size int4 DEFAULT 800,
        chunk_overlap int4 DEFAULT 400,
        separators text[] DEFAULT ARRAY[E'\n\n', E'\n', '.', '?', '!', ' ', ''],
        is_separator_regex bool DEFAULT false)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'recursive_character_text_splitter',
        'config_type', 'chunking', 'chunk_size', chunk_size, 'chunk_overlap', chunk_overlap,
        'separators', separators, 'is_separator_regex', is_separator_regex))::jsonb $$;

CREATE FUNCTION migrate.chunking_none() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "none", "config_type": "chunking"}'::pg_catalog.jsonb $$;

CREATE FUNCTION migrate.formatting_python_template(template text DEFAULT '$chunk')
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'python_template',
        'config_type', 'formatting', 'template', template))::jsonb $$;

CREATE FUNCTION migrate.formatting_chunk_value() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "chunk_value", "config_type": "formatting"}'::pg_catalog.jsonb $$;

CREATE FUNCTION migrate.indexing_none() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "none", "config_type": "indexing"}'::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.indexing_default() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "default", "config_type": "indexing"}'::pg_catalog.jsonb $$;

CREATE FUNCTION migrate.indexing_hnsw(min_rows int4 DEFAULT 100000, opclass text DEFAULT 'vector_cosine_ops',
        m int4 DEFAULT NULL, ef_construction int4 DEFAULT NULL, create_when_queue_empty bool DEFAULT true)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'hnsw', 'config_type', 'indexing',
        'min_rows', min_rows, 'opclass', opclass, 'm', m, 'ef_construction', ef_construction,
        'create_when_queue_empty', create_when_queue_empty))::jsonb $$;

CREATE FUNCTION migrate.indexing_diskann(min_rows int4 DEFAULT 100000, storage_layout text DEFAULT NULL,
        num_neighbors int4 DEFAULT NULL, search_list_size int4 DEFAULT NULL, max_alpha float8 DEFAULT NULL,
        num_dimensions int4 DEFAULT NULL, num_bits_per_dimension int4 DEFAULT NULL,
        create_when_queue_empty bool DEFAULT true)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'diskann', 'config_type', 'indexing',
        'min_rows', min_rows, 'storage_layout', storage_layout, 'num_neighbors', num_neighbors,
        'search_list_size', search_list_size, 'max_alpha', max_alpha, 'num_dimensions', num_dimensions,
        'num_bits_per_dimension', num_bits_per_dimension,
        'create_when_queue_empty', create_when_queue_empty))::jsonb $$;

CREATE FUNCTION migrate.scheduling_none() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "none", "config_type": "scheduling"}'::pg_catalog.jsonb $$;
CREATE FUNCTION migrate.scheduling_default() RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{"implementation": "default", "config_type": "scheduling"}'::pg_catalog.jsonb $$;

CREATE FUNCTION migrate.scheduling_timescaledb(schedule_interval interval DEFAULT interval '5m',
        initial_start timestamptz DEFAULT NULL, fixed_schedule bool DEFAULT NULL, timezone text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'timescaledb', 'config_type', 'scheduling',
        'schedule_interval', schedule_interval::text, 'initial_start', initial_start::text,
        'fixed_schedule', fixed_schedule, 'timezone', timezone))::jsonb $$;

CREATE FUNCTION migrate.processing_default(batch_size int4 DEFAULT NULL, concurrency int4 DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'default', 'config_type', 'processing',
        'batch_size', batch_size, 'concurrency', concurrency))::jsonb $$;

CREATE FUNCTION migrate.destination_table(destination name DEFAULT NULL, target_schema name DEFAULT NULL,
        target_table name DEFAULT NULL, view_schema name DEFAULT NULL, view_name name DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_strip_nulls(json_build_object('implementation', 'table', 'config_type', 'destination',
        'destination', destination, 'target_schema', target_schema, 'target_table', target_table,
        'view_schema', view_schema, 'view_name', view_name))::jsonb $$;

CREATE FUNCTION migrate.destination_column(embedding_column name)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_build_object('implementation', 'column', 'config_type', 'destination',
        'embedding_column', embedding_column)::jsonb $$;

CREATE FUNCTION migrate.grant_to(VARIADIC grantees name[])
RETURNS name[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT grantees $$;
CREATE FUNCTION migrate.grant_to()
RETURNS name[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{}'::pg_catalog.name[] $$;

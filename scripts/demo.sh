#!/usr/bin/env bash
# Set everything up (idempotent), then show a vectorizer's life cycle as
# plain SQL migrations on a local PostgreSQL 18 + pgvector. The server is
# left running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
export PATH="$(pg_install)/bin:$PATH"
DB=pgai_migrate_demo
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
step() { printf '\n\033[1;34m-- %s\033[0m\n' "$*"; }

export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql_db -c "CREATE EXTENSION pgai_migrate CASCADE"

step "migration 001: a blog table with 3 rows"
psql_db -f examples/demo/001_blog.sql
step "migration 002 (up): create the vectorizer"
cat examples/demo/002_blog_vectorizer.up.sql
psql_db -f examples/demo/002_blog_vectorizer.up.sql

step "objects created"
psql_db -c '\d blog_embeddings_store' -c '\dv blog_embeddings' -c '\d blog'
step "migrate.managed_tables(): what schema-diff tools should leave alone"
psql_db -c "SELECT * FROM migrate.managed_tables()"
step "the work queue: existing rows were queued; an unrelated update queues nothing, new rows do"
psql_db -c "UPDATE blog SET views = views + 1" \
        -c "INSERT INTO blog VALUES (4, 'New post', 'Written after the migration.')" \
        -c "UPDATE blog SET content = content || ' Edited.' WHERE id = 2" \
        -c "SELECT * FROM migrate._vectorizer_q_1 ORDER BY id" \
        -c "SELECT name, source, target_table, view, pending_items FROM migrate.vectorizer_status"
step "revision history"
psql_db -c "SELECT id, vectorizer_name, operation, label, applied_by, config->'embedding'->>'model' AS model FROM migrate.revision ORDER BY id"

step "before migration 003: what would a smaller chunk size cost? (plan_vectorizer changes nothing)"
psql_db -c "SELECT p.* FROM migrate.vectorizer v, migrate.plan_vectorizer(jsonb_set(v.config, '{chunking,chunk_size}', '500')) p"
step "migration 003 (up): alter the vectorizer; every row is queued again"
cat examples/demo/003_smaller_chunks.up.sql
psql_db -f examples/demo/003_smaller_chunks.up.sql
psql_db -c "SELECT id FROM migrate._vectorizer_q_1 ORDER BY id" \
        -c "SELECT id, operation, label, config->'chunking'->>'chunk_size' AS chunk_size FROM migrate.revision ORDER BY id"
step "migration 003 (down)"
psql_db -f examples/demo/003_smaller_chunks.down.sql

step "migration 002 (down): drop the vectorizer and everything it made"
psql_db -f examples/demo/002_blog_vectorizer.down.sql
psql_db -c "SELECT count(*) AS managed_relations FROM migrate.managed_tables()" \
        -c "SELECT id, vectorizer_name, operation, label, drop_all FROM migrate.revision ORDER BY id"

step "the worker: embeddings with the local model (DEMO_EMBEDDING=openai uses OpenAI), then semantic searches"
examples/worker/search.sh "$DB"

cat <<MSG

The server is still running. Connect with:
    $(pg_install)/bin/psql -h $PGHOST -p $PGPORT -U $PGUSER $DB
Stop it with:
    scripts/pg.sh stop
MSG

#!/usr/bin/env bash
# The worker in the demo: a vectorizer on the demo's blog table, drained by
# pgai-migrate-worker, then semantic searches in one statement each: the
# query is embedded in SQL by migrate.vectorizer_embed, with the vectorizer's
# own provider and model.
#   examples/worker/search.sh DATABASE
# The local model (all-MiniLM-L6-v2, no API key) by default; with
# DEMO_EMBEDDING=openai and OPENAI_API_KEY set, OpenAI's text-embedding-3-small
# (the key is sent as this session's migrate.openai_api_key). The local model
# runs in the server too: its files must be readable by the server's OS user.
# Expects the libpq variables (PGHOST, PGPORT, PGUSER) of scripts/env.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=${1:?usage: examples/worker/search.sh DATABASE}
WORKER=${PGAI_MIGRATE_WORKER:-target/release/pgai-migrate-worker}
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

case "${DEMO_EMBEDDING:-local}" in
    openai) EMBEDDING='{"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768}' ;;
    local) EMBEDDING='{"implementation": "sentence_transformers", "model": "all-MiniLM-L6-v2", "dimensions": 384}' ;;
    *) echo "DEMO_EMBEDDING is local or openai" >&2; exit 2 ;;
esac

psql_db <<SQL
INSERT INTO blog (id, title, content) VALUES
    (10, 'Our cat', 'The cat sleeps on the sofa all afternoon and purrs when stroked.'),
    (11, 'Weekend hike', 'We climbed the mountain trail at dawn; the view over the valley was worth the blisters.'),
    (12, 'Sourdough', 'Feed the starter, fold the dough every hour, and bake it in a very hot oven.')
ON CONFLICT (id) DO NOTHING;
SELECT migrate.create_vectorizer('{
  "source": "blog", "name": "blog_search",
  "destination": {"implementation": "table", "destination": "blog_search"},
  "loading": {"implementation": "column", "column_name": "content"},
  "embedding": $EMBEDDING,
  "formatting": {"implementation": "python_template", "template": "\$title - \$chunk"}
}') AS vectorizer_id;
SQL

echo "running: $WORKER run --once"
"$WORKER" run --db "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB" --once --verbose
psql_db -c "SELECT id, chunk_seq, left(chunk, 60) AS chunk, vector_dims(embedding) AS dims FROM blog_search_store ORDER BY id"

for query in "a pet that purrs" "baking bread at home" "how are changes to rows processed?"; do
    echo "search: $query"
    psql_db -v q="$query" -v key="${OPENAI_API_KEY:-}" <<'SQL'
SELECT pg_catalog.set_config('migrate.openai_api_key', :'key', false) \g /dev/null
SELECT title, round((embedding <=> migrate.vectorizer_embed('blog_search', :'q', 'query'))::numeric, 3) AS distance
FROM blog_search ORDER BY embedding <=> migrate.vectorizer_embed('blog_search', :'q', 'query') LIMIT 2;
SQL
done

# From a shell, the worker prints the same vector.
vector=$("$WORKER" embed --config "{\"embedding\": $EMBEDDING}" "a pet that purrs")
psql_db -v v="$vector" <<'SQL'
SELECT round((:'v'::vector <=> migrate.vectorizer_embed('blog_search', 'a pet that purrs'))::numeric, 6) AS cli_vs_sql_distance;
SQL

psql_db -c "SELECT migrate.drop_vectorizer('blog_search', drop_all => true)" >/dev/null

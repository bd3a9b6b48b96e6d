#!/usr/bin/env bash
# Benchmarks: what a vectorizer costs the writes and the migrations, for a
# plain table, pgai's vectorizer and ours, on the local PostgreSQL 18.
#   bench/run.sh            full run (~20 minutes)
#   bench/run.sh --smoke    small sizes, a few seconds per measurement (CI)
# Extra arguments go to bench/bench.py (e.g. --only writes,big,ddl, --keep).
# Needs the server from scripts/pg.sh start with the extension installed
# (scripts/setup.sh). Results: bench/results/latest.md and latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

BENCH_VENV=${BENCH_VENV:-$PGAI_MIGRATE_HOME/bench-venv}
PGAI_VERSION=${PGAI_VERSION:-0.12.1}
PGBIN="$(pg_install)/bin"

# pgai lives in its own virtual environment so it never touches the
# project's. Installed once; a failure only disables the pgai arm.
if [ ! -x "$BENCH_VENV/bin/pgai" ]; then
    log "installing pgai $PGAI_VERSION into $BENCH_VENV"
    PY=$(command -v python3 || echo "$VENV/bin/python")
    if ! { [ -x "$BENCH_VENV/bin/python" ] || "$PY" -m venv "$BENCH_VENV"; } ||
       ! "$BENCH_VENV/bin/python" -m pip install -q "pgai==$PGAI_VERSION"; then
        log "could not install pgai: its column will read n/a"
    fi
fi

if ! "$PGBIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT"; then
    echo "PostgreSQL is not running on $PGHOST:$PGPORT; run scripts/pg.sh start" >&2
    exit 1
fi

exec "$VENV/bin/python" -W ignore "$(pwd)/bench/bench.py" \
    --pgbench "$PGBIN/pgbench" --pgai "$BENCH_VENV/bin/pgai" "$@"

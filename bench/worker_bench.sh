#!/usr/bin/env bash
# The worker's benchmarks (bench/worker_bench.py): chunking vs LangChain,
# local embedding, end-to-end rows/s with 1/2/4 workers, and pgai's own
# worker on the same rows. Figures are printed, never asserted.
#   bench/worker_bench.sh            full run (100,000 rows; ~15 minutes)
#   bench/worker_bench.sh --smoke    small sizes (~1 minute)
# Extra arguments go to worker_bench.py (--only chunking,embedding,e2e,pgai,
# --rows N). Needs scripts/setup.sh (server, extension, worker binary).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

BENCH_VENV=${BENCH_VENV:-$PGAI_MIGRATE_HOME/bench-venv}
PGAI_VERSION=${PGAI_VERSION:-0.12.1}
if ! "$BENCH_VENV/bin/python" -c 'import pgai, tiktoken, openai' 2>/dev/null; then
    log "installing pgai $PGAI_VERSION and its worker's HTTP dependencies into $BENCH_VENV"
    { [ -x "$BENCH_VENV/bin/python" ] || python3 -m venv "$BENCH_VENV"; } &&
    "$BENCH_VENV/bin/pip" install -q "pgai==$PGAI_VERSION" -r bench/requirements-pgai-worker.txt ||
        log "could not install pgai: its comparison is skipped"
fi
exec "$VENV/bin/python" -W ignore bench/worker_bench.py --pgai "$BENCH_VENV/bin/pgai" "$@"

#!/usr/bin/env bash
# The local model against sentence-transformers on this CPU
# (bench/local_model.py). Installs PyTorch and sentence-transformers into the
# bench venv once (about 3 GB: the torch wheel pulls its nvidia-* wheels,
# which `import torch` needs even on a CPU); never part of the test command.
#   bench/local_model.sh                 f32 and bf16, 5 alternating reps, 10,000-row backfills (~25 minutes)
#   bench/local_model.sh --smoke         small sizes, f32 only (~2 minutes)
# Needs scripts/setup.sh (server, extension, worker binary).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

BENCH_VENV=${BENCH_VENV:-$PGAI_MIGRATE_HOME/bench-venv}
TORCH_VERSION=${TORCH_VERSION:-2.15.0}
ST_VERSION=${ST_VERSION:-6.3.0}
if ! "$BENCH_VENV/bin/python" -c 'import torch, sentence_transformers, psycopg' 2>/dev/null; then
    log "installing torch $TORCH_VERSION and sentence-transformers $ST_VERSION into $BENCH_VENV (once, ~3 GB)"
    [ -x "$BENCH_VENV/bin/python" ] || python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q "torch==$TORCH_VERSION" "sentence-transformers==$ST_VERSION" "psycopg[binary]"
fi
mkdir -p bench/results
run() { "$BENCH_VENV/bin/python" -W ignore bench/local_model.py "$@"; }
if [ "${1:-}" = "--smoke" ]; then
    run --reps 1 --short 64 --chunks 32 --backfill 200
else
    run --reps 5 --precision f32 --backfill 10000 --json bench/results/local_model_f32.json
    run --reps 5 --precision bf16 --backfill 10000 --json bench/results/local_model_bf16.json
fi

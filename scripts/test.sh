#!/usr/bin/env bash
# Set everything up (idempotent) and run every test: the pure-Rust unit
# tests, a smoke run of the benchmark (so it never rots), then the SQL-level
# and client tests against the installed extension on the local PostgreSQL 18.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh

log "unit tests (pure Rust: config model and parsing, SQL building, model.json up to date)"
cargo test -p pgai_migrate_core --quiet

log "worker and embedding-crate unit tests (chunking, pipeline, connection settings, providers and their key rules)"
cargo test --release -p pgai_migrate_worker -p pgai_migrate_embed --quiet

log "benchmark smoke run (small sizes; figures are printed, never asserted)"
bench/run.sh --smoke

log "integration tests against PostgreSQL 18 (pytest)"
export PATH="$(pg_install)/bin:$PATH"
"$VENV/bin/python" -W ignore -m pytest "$@"

#!/usr/bin/env bash
# Set everything up (idempotent) and run every test: the pure-Rust unit
# tests, a smoke run of the benchmark (so it never rots), then the SQL-level
# and client tests against the installed extension on the local PostgreSQL
# 18, then again on PostgreSQL 16.
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
PG16_INSTALL=$(pg16_install)
PATH="$(pg_install)/bin:$PATH" PGAI_MIGRATE_PG16_INSTALL="$PG16_INSTALL" \
    "$VENV/bin/python" -W ignore -m pytest "$@"

# The same suite on PostgreSQL 16, with its own client programs (pg_dump,
# psql), except what does not depend on the server's major: the released
# libraries of the update tests are built for 18; the pg_upgrade test drives
# both majors itself; the TLS tests start servers of their own; the local
# model and chunking tests never use the server's version.
log "integration tests against PostgreSQL 16 (pytest)"
with_pg16 env PATH="$PG16_INSTALL/bin:$PATH" "$VENV/bin/python" -W ignore -m pytest \
    --ignore=tests/test_upgrade.py --ignore=tests/test_pg_upgrade_major.py \
    --ignore=tests/test_worker_tls.py --ignore=tests/test_worker_tls_hosts.py \
    --ignore=tests/test_local_models.py --ignore=tests/test_worker_chunking.py "$@"

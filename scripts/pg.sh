#!/usr/bin/env bash
# Start, stop or inspect the local PostgreSQL 18 used by the demo and tests
# (PGAI_MIGRATE_PGINSTALL, PGPORT and PGHOST select another one: env.sh's
# with_pg16).
#   scripts/pg.sh start|stop|status|psql [args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
PGINSTALL=$(pg_install)
BIN="$PGINSTALL/bin"

case "${1:-status}" in
start)
    if [ ! -d "$PGHOST" ]; then
        mkdir -p "$PGHOST"
    fi
    [ "$(id -u)" = 0 ] && chown postgres: "$PGHOST"
    if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
        log "initialising $PGDATA_DIR"
        as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        log "PostgreSQL already running on port $PGPORT"
    else
        log "starting PostgreSQL $("$BIN/pg_config" --version | sed 's/[^0-9.]//g') on port $PGPORT"
        as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGHOST/server.log" -w \
            -o "-p $PGPORT -k $PGHOST -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    ;;
stop)
    as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop
    ;;
status)
    as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" status
    ;;
psql)
    shift
    exec "$BIN/psql" "$@"
    ;;
*)
    echo "usage: $0 start|stop|status|psql [args]" >&2
    exit 2
    ;;
esac

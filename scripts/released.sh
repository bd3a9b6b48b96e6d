#!/usr/bin/env bash
# Install released versions of the extension beside the current one, for
# the update tests: each release's install script (kept in sql/released/)
# and its library, built once from the release's commit as
# pgai_migrate-<version>.so. Idempotent; sourced settings from env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

# version=commit of each release whose update path is tested.
RELEASES=("0.1.0=e73ce02" "0.2.0=a2f9ec2")

PGINSTALL=$(pg_install)
EXTDIR="$("$PGINSTALL/bin/pg_config" --sharedir)/extension"
LIBDIR="$("$PGINSTALL/bin/pg_config" --pkglibdir)"
for release in "${RELEASES[@]}"; do
    version=${release%%=*}
    commit=${release#*=}
    lib="$PGAI_MIGRATE_HOME/released/$version/pgai_migrate-$version.so"
    if [ ! -s "$lib" ]; then
        if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
            git fetch -q --unshallow 2>/dev/null || true
        fi
        if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
            echo "error: commit $commit (release $version) is not in this clone; the update test needs the history" >&2
            exit 1
        fi
        log "building the $version library from $commit (once)"
        src="$PGAI_MIGRATE_HOME/released/$version/src"
        rm -rf "$src" && mkdir -p "$src"
        git archive "$commit" | tar -x -C "$src"
        (cd "$src" && CARGO_TARGET_DIR="$PGAI_MIGRATE_HOME/released/target" \
            cargo build -q --release --lib --features "pg18" >"$PGAI_MIGRATE_HOME/released/$version/build.log" 2>&1) || {
            cat "$PGAI_MIGRATE_HOME/released/$version/build.log" >&2
            exit 1
        }
        cp "$PGAI_MIGRATE_HOME/released/target/release/libpgai_migrate.so" "$lib"
    fi
    install -m 0755 "$lib" "$LIBDIR/pgai_migrate-$version.so"
    install -m 0644 "sql/released/pgai_migrate--$version.sql" "$EXTDIR/pgai_migrate--$version.sql"
    if [ -f "sql/released/pgai_migrate--$version.control" ]; then
        install -m 0644 "sql/released/pgai_migrate--$version.control" "$EXTDIR/pgai_migrate--$version.control"
    fi
done

#!/bin/sh
# Installs pgai_migrate @VERSION@ for PostgreSQL @MAJOR@ into the install
# that the given pg_config describes:
#   ./install.sh /usr/lib/postgresql/@MAJOR@/bin/pg_config
# (default: pg_config on PATH). Run it as a user who can write there.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pg_config=${1:-pg_config}

if ! version=$("$pg_config" --version 2>/dev/null); then
    echo "error: cannot run $pg_config" >&2
    exit 1
fi
major=$(echo "$version" | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
if [ "$major" != "@MAJOR@" ]; then
    echo "error: this package is for PostgreSQL @MAJOR@, but $pg_config is $version" >&2
    exit 1
fi

pkglibdir=$("$pg_config" --pkglibdir)
extdir="$("$pg_config" --sharedir)/extension"
mkdir -p "$pkglibdir" "$extdir"
cp "$here"/lib/pgai_migrate.so "$pkglibdir/"
chmod 755 "$pkglibdir/pgai_migrate.so"
for f in "$here"/share/extension/*; do
    cp "$f" "$extdir/"
    chmod 644 "$extdir/$(basename "$f")"
done
echo "installed pgai_migrate @VERSION@ into $pkglibdir and $extdir"
echo "then, in each database: CREATE EXTENSION pgai_migrate CASCADE;  (or ALTER EXTENSION pgai_migrate UPDATE;)"

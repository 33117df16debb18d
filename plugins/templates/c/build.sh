#!/usr/bin/env bash
# Builds this plugin: src/*.c + the C SDK in sdk/ (arkflow.h, arkflow.c) -> dist/{{name_snake}}.wasm,
# a component of world `timed-plugin` of arkflow:plugin@{{sdk_version}} (wit/; a plugin that never
# calls ak_timer_* is a plain `plugin`).
#
#   bash build.sh          # from any directory, as often as you like
#   bash build.sh --lib    # link the SDK as a library: .build/libarkflow.a, built from sdk/ first
#
# By default sdk/arkflow.c is compiled with src/*.c under -flto, as one unit: the SDK's buffer and
# cache calls inline into the plugin's loop, which is faster than linking libarkflow.a (plain
# objects). Installs what is missing (toolchain/c.sh; a quick no-op when present): clang, wasm-ld,
# wasi-libc and compiler-rt for wasm32 (apt; llvm-ar too with --lib), wasm-tools (PyPI),
# wit-bindgen 0.63.0 (cargo install, ~3 min cold), the WASI reactor adapter (cargo). Writes the
# bindings generated from wit/ (plugin.h, plugin.c, plugin_component_type.o) to .build/gen/.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=toolchain/c.sh
source "$PROJECT/toolchain/c.sh"
WIT_DIR="$PROJECT/wit"
DIST_DIR="$PROJECT/dist"
BUILD="$PROJECT/.build"
GEN="$BUILD/gen"

need_clang_wasi
need_component_tools

mkdir -p "$BUILD"
wit_bindgen_c "$GEN"
sdk="$PROJECT/sdk/arkflow.c"
if [ "${1:-}" = --lib ]; then
    c_sdk_lib "$PROJECT/sdk" "$GEN" "$BUILD/libarkflow.a"
    sdk="$BUILD/libarkflow.a"
fi
core="$BUILD/{{name_snake}}.core.wasm"
c_compile "$core" -I"$GEN" -I"$PROJECT/sdk" \
    "$PROJECT"/src/*.c "$GEN/plugin.c" "$GEN/plugin_component_type.o" "$sdk"
core_to_dist "$core" {{name_snake}}

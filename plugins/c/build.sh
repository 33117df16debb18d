#!/usr/bin/env bash
# Builds the C plugins: plugins/c/<name>/*.c + the SDK (plugins/c/sdk) -> plugins/dist/<name>_c.wasm.
#
#   plugins/c/build.sh            # every plugin directory under plugins/c (today: counter)
#   plugins/c/build.sh counter    # just these
#
# Installs what is missing (quick no-op when present; plugins/toolchain/c.sh and common.sh): clang +
# wasm-ld + wasi-libc + compiler-rt for wasm32 and llvm-ar (apt), wasm-tools (PyPI), wit-bindgen
# 0.63.0 (cargo), the WASI preview1 reactor adapter (crate, via cargo). Bindings are generated from
# wit/ on every run into plugins/c/.build/ (gitignored). Also builds the SDK as a library,
# .build/libarkflow.a, and links the counter against it (a check; not copied to dist/). Safe to
# run repeatedly and from any directory. The SDK's unit tests: plugins/c/tests/run.sh (native).
set -euo pipefail

C_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/c.sh
source "$C_DIR/../toolchain/c.sh"   # need_clang_wasi, c_compile, c_sdk_lib (+ common.sh)

# The C SDK is on the batch ABI, arkflow:plugin@0.2.0 (wit/), not common.sh's default wit/v0.1.
WIT_DIR="$ARKFLOW_ROOT/wit"
BUILD="$C_DIR/.build"
GEN="$BUILD/gen"

need_clang_wasi
need_component_tools

mkdir -p "$BUILD"

# Bindings: plugin.h, plugin.c, plugin_component_type.o (world `plugin`).
wit_bindgen_c "$GEN"

# The SDK as a library: sdk/arkflow.h + .build/libarkflow.a (what a project may link instead of
# compiling sdk/arkflow.c); checked by linking the counter against it (not shipped: the plugins
# below compile arkflow.c with them under -flto, which is faster).
c_sdk_lib "$C_DIR/sdk" "$GEN" "$BUILD/libarkflow.a"
c_compile "$BUILD/lib_check.core.wasm" -I"$GEN" -I"$C_DIR/sdk" \
    "$C_DIR/counter/counter.c" "$GEN/plugin.c" "$GEN/plugin_component_type.o" "$BUILD/libarkflow.a"
wasm-tools validate "$BUILD/lib_check.core.wasm"
grep -q '#define ARKFLOW_SDK_VERSION "0.2.0"' "$C_DIR/sdk/arkflow.h" ||
    { echo "build.sh: sdk/arkflow.h does not say ARKFLOW_SDK_VERSION \"0.2.0\"" >&2; exit 1; }
echo "built $BUILD/libarkflow.a (C SDK 0.2.0; linked the counter against it)"

# tests/ holds the SDK's unit tests (tests/run.sh), not a plugin.
mapfile -t plugins < <(plugin_names "$C_DIR" '*.c' "$@" | grep -vx tests)

for name in "${plugins[@]}"; do
    src="$C_DIR/$name"
    [ -d "$src" ] || { echo "build.sh: no plugin directory $src" >&2; exit 1; }
    out_name="${name//-/_}_c"
    core="$BUILD/$out_name.core.wasm"
    c_compile "$core" -I"$GEN" -I"$C_DIR/sdk" \
        "$src"/*.c "$C_DIR/sdk/arkflow.c" "$GEN/plugin.c" "$GEN/plugin_component_type.o"
    core_to_dist "$core" "$out_name"
done

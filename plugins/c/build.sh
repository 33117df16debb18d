#!/usr/bin/env bash
# Builds the C plugins: plugins/c/<name>/*.c + the SDK (plugins/c/sdk) -> plugins/dist/<name>_c.wasm.
#
#   plugins/c/build.sh            # every plugin directory under plugins/c (today: counter)
#   plugins/c/build.sh counter    # just these
#
# Installs what is missing (quick no-op when present): clang + wasm-ld + wasi-libc + compiler-rt for
# wasm32 (apt), wasm-tools (PyPI), wit-bindgen 0.63.0 (cargo), the WASI preview1 reactor adapter
# (crate, via cargo). Bindings are generated from wit/ on every run into plugins/c/.build/
# (gitignored). Safe to run repeatedly and from any directory.
set -euo pipefail

C_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/common.sh
source "$C_DIR/../toolchain/common.sh"

# The C SDK is on the batch ABI, arkflow:plugin@0.2.0 (wit/), not common.sh's default wit/v0.1.
WIT_DIR="$ARKFLOW_ROOT/wit"
BUILD="$C_DIR/.build"
GEN="$BUILD/gen"
CC="${CC_WASM:-clang}"
# -O3 -flto: the plugin, the SDK and the glue are optimised as one unit (ak_buf_* and the cache
# inline into the plugin's loop); -mbulk-memory: memcpy/memset become memory.copy/memory.fill
# instead of wasi-libc's byte loops. Together they cut the counter's guest time by about a fifth.
CFLAGS=(--target=wasm32-wasi --sysroot=/usr -O3 -flto -mbulk-memory -mexec-model=reactor -std=c11
        -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Can we compile and link a wasm32-wasi reactor that uses libc and compiler-rt?
clang_wasi_works() {
    command -v "$CC" >/dev/null 2>&1 || return 1
    local t
    t="$(mktemp -d)"
    printf '#include <stdlib.h>\nlong double f(long double x){return x*3;}\nvoid *g(size_t n){return malloc(n);}\n' >"$t/t.c"
    "$CC" "${CFLAGS[@]}" -o "$t/t.wasm" "$t/t.c" >/dev/null 2>&1
    local rc=$?
    rm -rf "$t"
    return $rc
}

need_clang_wasi() {
    if ! clang_wasi_works; then
        echo "installing clang, lld, wasi-libc, libclang-rt-dev-wasm32 (apt) ..." >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc libclang-rt-dev-wasm32 >/dev/null
        clang_wasi_works || { echo "build.sh: $CC still cannot build wasm32-wasi reactors" >&2; exit 1; }
    fi
}

need_clang_wasi
need_wasm_tools >/dev/null
need_wit_bindgen >/dev/null
reactor_adapter >/dev/null   # fetch the adapter before building anything

mkdir -p "$BUILD"

# Bindings: plugin.h, plugin.c, plugin_component_type.o (world `plugin`).
wit_bindgen_c "$GEN"
mapfile -t plugins < <(plugin_names "$C_DIR" '*.c' "$@")

for name in "${plugins[@]}"; do
    src="$C_DIR/$name"
    [ -d "$src" ] || { echo "build.sh: no plugin directory $src" >&2; exit 1; }
    out_name="${name//-/_}_c"
    core="$BUILD/$out_name.core.wasm"
    "$CC" "${CFLAGS[@]}" -I"$GEN" -I"$C_DIR/sdk" -o "$core" \
        "$src"/*.c "$C_DIR/sdk/arkflow.c" "$GEN/plugin.c" "$GEN/plugin_component_type.o" \
        -Wl,--strip-all
    core_to_dist "$core" "$out_name"
done

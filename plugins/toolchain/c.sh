#!/usr/bin/env bash
# The C guest toolchain, sourced by plugins/c/build.sh and by the build.sh of a C plugin project
# (`arkflow plugin new --lang c`, which copies this file and common.sh into its toolchain/).
# Sources common.sh from its own directory. Every need_* installs what is missing (quick no-op
# when present).
#   need_clang_wasi   -> clang + wasm-ld + wasi-libc + compiler-rt for wasm32 (apt: clang lld
#                        wasi-libc libclang-rt-dev-wasm32; sudo when not root)
#   need_llvm_ar      -> prints an llvm-ar (apt: llvm when none), for c_sdk_lib
#   c_compile CORE SRC.. [clang args..] -> links a wasm32-wasi reactor core module CORE from the
#                        given sources/objects/archives with C_WASM_FLAGS (callers add -I and the
#                        bindings: GEN/plugin.c GEN/plugin_component_type.o)
#   c_sdk_lib SDK GEN OUT -> OUT (libarkflow.a): SDK/arkflow.c compiled against the bindings in
#                        GEN (plugin.h from wit_bindgen_c), plain wasm objects (no LTO)
# CC: the compiler (CC_WASM, default clang). C_WASM_FLAGS: -O3 -flto -mbulk-memory: the plugin,
# the SDK and the glue are optimised as one unit (ak_buf_* and the cache inline into the plugin's
# loop) and memcpy/memset become memory.copy/memory.fill instead of wasi-libc's byte loops;
# together they cut the counter's guest time by about a fifth.
set -euo pipefail

# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

CC="${CC_WASM:-clang}"
C_WASM_FLAGS=(--target=wasm32-wasi --sysroot=/usr -O3 -flto -mbulk-memory -mexec-model=reactor -std=c11
              -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    echo "installing $* (apt) ..." >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Can we compile and link a wasm32-wasi reactor that uses libc and compiler-rt?
clang_wasi_works() {
    command -v "$CC" >/dev/null 2>&1 || return 1
    local t rc=0
    t="$(mktemp -d)"
    printf '#include <stdlib.h>\nlong double f(long double x){return x*3;}\nvoid *g(size_t n){return malloc(n);}\n' >"$t/t.c"
    "$CC" "${C_WASM_FLAGS[@]}" -o "$t/t.wasm" "$t/t.c" >/dev/null 2>&1 || rc=$?
    rm -rf "$t"
    return $rc
}

need_clang_wasi() {
    if ! clang_wasi_works; then
        apt_install clang lld wasi-libc libclang-rt-dev-wasm32
        clang_wasi_works || { echo "c.sh: $CC still cannot build wasm32-wasi reactors" >&2; exit 1; }
    fi
}

# llvm-ar: on PATH, else the one next to clang (Debian's llvm-NN), else apt's `llvm`. GNU ar
# cannot index wasm objects, and wasm-ld refuses an archive without an index.
need_llvm_ar() {
    local ar
    ar="$(command -v llvm-ar || "$CC" --print-prog-name=llvm-ar)"
    if [ ! -x "$ar" ]; then
        apt_install llvm
        ar="$(command -v llvm-ar)" || { echo "c.sh: no llvm-ar after installing llvm" >&2; exit 1; }
    fi
    echo "$ar"
}

c_compile() {
    local core="$1"
    shift
    "$CC" "${C_WASM_FLAGS[@]}" -o "$core" "$@" -Wl,--strip-all
}

c_sdk_lib() {
    local sdk="$1" gen="$2" out="$3" ar obj flags=()
    ar="$(need_llvm_ar)"
    obj="${out%.a}.arkflow.o"
    local f
    for f in "${C_WASM_FLAGS[@]}"; do case "$f" in -flto | -mexec-model=*) ;; *) flags+=("$f") ;; esac; done
    "$CC" "${flags[@]}" -I"$gen" -I"$sdk" -c "$sdk/arkflow.c" -o "$obj"
    rm -f "$out"
    "$ar" rcs "$out" "$obj"
    rm -f "$obj"
}

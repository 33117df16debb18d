#!/usr/bin/env bash
# Runs the C SDK's unit tests (plugins/c/tests/*_test.c) natively, under AddressSanitizer and
# UBSan: each test is compiled for the build machine with sdk/arkflow.c and the bindings
# generated from wit/ (into plugins/c/.build/gen, as build.sh does), and fakes the WIT imports it
# uses; the other imports stay unresolved (a test must not call them). Needs a native clang and
# libc headers (the clang that build.sh installs for wasm32 compiles natively too).
#
#   bash plugins/c/tests/run.sh
set -euo pipefail

TESTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
C_DIR="$(dirname "$TESTS")"
# shellcheck source=../../toolchain/c.sh
source "$C_DIR/../toolchain/c.sh"
WIT_DIR="$ARKFLOW_ROOT/wit"
BUILD="$C_DIR/.build"
GEN="$BUILD/gen"

need_clang_wasi
need_component_tools
# The sanitizers' native runtime (Debian: libclang-rt-dev), when clang cannot link one yet.
if ! echo 'int main(void){return 0;}' | "$CC" -x c -fsanitize=address,undefined -o /dev/null - 2>/dev/null; then
    apt_install libclang-rt-dev
fi
mkdir -p "$BUILD/tests"
wit_bindgen_c "$GEN"

for t in "$TESTS"/*_test.c; do
    name="$(basename "$t" .c)"
    "$CC" -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-unknown-attributes \
        -I"$GEN" -I"$C_DIR/sdk" "$t" "$C_DIR/sdk/arkflow.c" "$GEN/plugin.c" \
        -no-pie -Wl,--unresolved-symbols=ignore-all -o "$BUILD/tests/$name"
    "$BUILD/tests/$name"
done

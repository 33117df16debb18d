#!/usr/bin/env bash
# Builds the Zig plugins: plugins/zig/<name>/<name>.zig + the SDK (plugins/zig/sdk/arkflow.zig)
# -> plugins/dist/<name>_zig.wasm.
#
#   plugins/zig/build.sh            # every plugin directory under plugins/zig (today: counter)
#   plugins/zig/build.sh counter    # just these
#
# Installs what is missing (quick no-op when present): Zig 0.17 (PyPI `ziglang`, run as
# `python3 -m ziglang`), wasm-tools (PyPI), wit-bindgen 0.63.0 (cargo), the WASI preview1 reactor
# adapter (crate, via cargo). On every run the C bindings are generated from wit/
# (`wit-bindgen c`) and translated for Zig (`zig translate-c`) into plugins/zig/.build/
# (gitignored); the generated C glue (plugin.c) is compiled in. Safe to run repeatedly and from
# any directory. Zig's caches: plugins/zig/.build/zig-cache and ~/.cache/zig.
set -euo pipefail

ZIG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/common.sh
source "$ZIG_DIR/../toolchain/common.sh"

# The Zig SDK is on the batch ABI, arkflow:plugin@0.2.0 (wit/), not common.sh's default wit/v0.1.
WIT_DIR="$ARKFLOW_ROOT/wit"
BUILD="$ZIG_DIR/.build"
GEN="$BUILD/gen"
ZIG_SERIES=0.17

zig() { python3 -m ziglang "$@"; }

need_zig() {
    local v
    v="$(zig version 2>/dev/null || true)"
    if [[ "$v" != "$ZIG_SERIES".* ]]; then
        echo "installing Zig $ZIG_SERIES (PyPI ziglang) ..." >&2
        pip_install "ziglang>=$ZIG_SERIES,<0.18"
        v="$(zig version)"
        [[ "$v" == "$ZIG_SERIES".* ]] || { echo "build.sh: need Zig $ZIG_SERIES.x, python3 -m ziglang is $v" >&2; exit 1; }
    fi
}

need_zig
need_wasm_tools >/dev/null
need_wit_bindgen >/dev/null
reactor_adapter >/dev/null   # fetch the adapter before building anything

mkdir -p "$BUILD"

# Bindings: plugin.h / plugin.c / plugin_component_type.o, and bindings.zig = translate-c(plugin.h).
wit_bindgen_c "$GEN"
zig translate-c "$GEN/plugin.h" -target wasm32-wasi -lc >"$GEN/bindings.zig.tmp"
mv "$GEN/bindings.zig.tmp" "$GEN/bindings.zig"
mapfile -t plugins < <(plugin_names "$ZIG_DIR" '{}.zig' "$@")

cd "$BUILD"
for name in "${plugins[@]}"; do
    root="$ZIG_DIR/$name/$name.zig"
    [ -f "$root" ] || { echo "build.sh: no $root" >&2; exit 1; }
    out_name="${name//-/_}_zig"
    # ReleaseFast (not ReleaseSmall): about half the guest time per record for ~10 KB more;
    # -fstrip drops the debug info ReleaseFast keeps. The modules inherit the root's mode.
    zig build-exe -target wasm32-wasi -O ReleaseFast -fstrip -fno-entry -mexec-model=reactor -lc --stack 262144 \
        --cache-dir "$BUILD/zig-cache" --name "$out_name" -femit-bin="$BUILD/$out_name.core.wasm" \
        -I "$GEN" "$GEN/plugin.c" "$GEN/plugin_component_type.o" \
        --dep arkflow -Mroot="$root" \
        --dep bindings -Markflow="$ZIG_DIR/sdk/arkflow.zig" \
        -Mbindings="$GEN/bindings.zig"
    core_to_dist "$BUILD/$out_name.core.wasm" "$out_name"
done

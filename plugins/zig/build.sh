#!/usr/bin/env bash
# Builds the Zig plugins: plugins/zig/<name>/<name>.zig + the SDK (plugins/zig/sdk/arkflow.zig)
# -> plugins/dist/<name>_zig.wasm.
#
#   plugins/zig/build.sh            # every plugin directory under plugins/zig (today: counter)
#   plugins/zig/build.sh counter    # just these
#
# Installs what is missing (quick no-op when present; plugins/toolchain/zig.sh and common.sh): Zig
# 0.17 (PyPI `ziglang`, run as `python3 -m ziglang`), wasm-tools (PyPI), wit-bindgen 0.63.0
# (cargo), the WASI preview1 reactor adapter (crate, via cargo). On every run the C bindings are
# generated from wit/ (`wit-bindgen c`) and translated for Zig (`zig translate-c`) into
# plugins/zig/.build/ (gitignored); the generated C glue (plugin.c) is compiled in. Runs the SDK's
# unit tests (`zig test`, natively). Also checks the SDK as a Zig package (sdk/build.zig.zon):
# builds the counter through sdk/build.zig into .build/pkg-check/ (not copied to dist/). Safe to
# run repeatedly and from any directory. Zig's caches: plugins/zig/.build/zig-cache and
# ~/.cache/zig.
set -euo pipefail

ZIG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../toolchain/zig.sh
source "$ZIG_DIR/../toolchain/zig.sh"   # zig, need_zig, zig_bindings (+ common.sh)

# The Zig SDK is on the batch ABI, arkflow:plugin@0.2.0 (wit/), not common.sh's default wit/v0.1.
WIT_DIR="$ARKFLOW_ROOT/wit"
BUILD="$ZIG_DIR/.build"
GEN="$BUILD/gen"

need_zig
need_component_tools

mkdir -p "$BUILD"

# Bindings: plugin.h / plugin.c / plugin_component_type.o, and bindings.zig = translate-c(plugin.h).
zig_bindings "$GEN"
mapfile -t plugins < <(plugin_names "$ZIG_DIR" '{}.zig' "$@")

# The SDK's unit tests (the `test` blocks of sdk/arkflow.zig: code that calls no host import), run
# natively against the same bindings.
if ! log="$(zig test -lc --cache-dir "$BUILD/zig-cache" --dep bindings -Mroot="$ZIG_DIR/sdk/arkflow.zig" \
    -Mbindings="$GEN/bindings.zig" 2>&1)"; then
    echo "$log" >&2
    echo "build.sh: the Zig SDK's unit tests failed" >&2
    exit 1
fi
echo "Zig SDK unit tests: $(tail -n 1 <<<"$log")"

# The SDK as a Zig package (sdk/build.zig.zon, module `arkflow`): `zig fetch` packs it (checks the
# manifest and its paths; prints its hash), then the counter is built through sdk/build.zig, as a
# project consumes it, and made a component (a check; not copied to dist/).
grep -q '\.version = "0\.2\.0"' "$ZIG_DIR/sdk/build.zig.zon" ||
    { echo "build.sh: sdk/build.zig.zon is not version 0.2.0" >&2; exit 1; }
sdk_hash="$(zig fetch "$ZIG_DIR/sdk")"
(cd "$ZIG_DIR/sdk" && zig build -Dgen="$GEN" -Dplugin="$ZIG_DIR/counter/counter.zig" -Doptimize=fast \
    --cache-dir "$BUILD/zig-cache" --prefix "$BUILD/pkg-check")
wasm-tools component new "$BUILD/pkg-check/bin/plugin.wasm" --adapt wasi_snapshot_preview1="$(reactor_adapter)" \
    -o "$BUILD/pkg-check/plugin.component.wasm"
wasm-tools validate --features component-model "$BUILD/pkg-check/plugin.component.wasm"
echo "packed the Zig SDK package $sdk_hash; built the counter with it into $BUILD/pkg-check"

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

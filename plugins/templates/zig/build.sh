#!/usr/bin/env bash
# Builds this plugin: src/plugin.zig + the Zig SDK (the package in sdk/, a path dependency in
# build.zig.zon) -> dist/{{name_snake}}.wasm, a component of world `timed-plugin` of
# arkflow:plugin@{{sdk_version}} (wit/; a plugin that never calls the timer functions is a plain
# `plugin`).
#
#   bash build.sh          # from any directory, as often as you like
#
# 1. installs what is missing (toolchain/zig.sh; a quick no-op when present): Zig 0.17 (PyPI
#    ziglang, run as `python3 -m ziglang`), wasm-tools (PyPI), wit-bindgen 0.63.0 (cargo install,
#    ~3 min cold), the WASI reactor adapter (cargo);
# 2. generates the C bindings of wit/ into .build/gen/ (plugin.h, plugin.c,
#    plugin_component_type.o), which build.zig hands to the SDK package;
# 3. `zig build` (build.zig) -> the core module zig-out/bin/{{name_snake}}.wasm;
# 4. wasm-tools makes it a component with the reactor adapter -> dist/{{name_snake}}.wasm.
# Zig's caches: .zig-cache/ and ~/.cache/zig (the first build fills it: ~2.5 min).
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=toolchain/zig.sh
source "$PROJECT/toolchain/zig.sh"
WIT_DIR="$PROJECT/wit"
DIST_DIR="$PROJECT/dist"
BUILD="$PROJECT/.build"

need_zig
need_component_tools

mkdir -p "$BUILD"
wit_bindgen_c "$BUILD/gen"
(cd "$PROJECT" && zig build)
cp "$PROJECT/zig-out/bin/{{name_snake}}.wasm" "$BUILD/{{name_snake}}.core.wasm"
core_to_dist "$BUILD/{{name_snake}}.core.wasm" {{name_snake}}

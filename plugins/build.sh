#!/usr/bin/env bash
# Builds every ArkFlow plugin component (wasm32-wasip2, release) and copies them to
# plugins/dist/<name>.wasm. Needs only rustup + cargo; installs the wasm32-wasip2 target if missing.
# Target dir: $ARKFLOW_PLUGIN_TARGET_DIR (default ~/.cache/arkflow-plugins-target), kept apart from
# the host's so the two builds never contend for a cargo lock.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
target_dir="${ARKFLOW_PLUGIN_TARGET_DIR:-$HOME/.cache/arkflow-plugins-target}"
triple=wasm32-wasip2
plugins=(counter counter_v2 counter_init_trap counter_by_user dedupe filter evil wrong_world window_count sensor_stats abi_0_1_0)

sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/$triple" ]; then
    echo "build.sh: installing rust target $triple" >&2
    rustup target add "$triple"
fi

cargo build --release --target "$triple" --target-dir "$target_dir" --workspace

mkdir -p dist
for name in "${plugins[@]}"; do
    src="$target_dir/$triple/release/$name.wasm"
    if [ ! -f "$src" ]; then
        echo "build.sh: expected $src was not built" >&2
        exit 1
    fi
    cp "$src" "dist/$name.wasm"
    printf 'built %-40s %8d bytes\n' "plugins/dist/$name.wasm" "$(wc -c <"dist/$name.wasm")"
done

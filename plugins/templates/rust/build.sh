#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm (a wasm32-wasip2 component) from src/ and the SDK copy in sdk/.
# Needs rustup and cargo; installs the wasm32-wasip2 target when missing. Runs from any directory.
# CARGO_TARGET_DIR is honoured (default: target/ here).
set -euo pipefail
PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
triple=wasm32-wasip2
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$triple" ]; then
    echo "build.sh: installing rust target $triple" >&2
    rustup target add "$triple"
fi
cd "$PROJECT"
cargo build --release --target "$triple" --quiet
target_dir="${CARGO_TARGET_DIR:-$PROJECT/target}"
mkdir -p dist
cp "$target_dir/$triple/release/{{name_snake}}.wasm" dist/{{name_snake}}.wasm
printf 'built %s (%d bytes)\n' "dist/{{name_snake}}.wasm" "$(wc -c <dist/{{name_snake}}.wasm)"

#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm from app.js, from any directory: `bash build.sh`.
# 1. node and npm (apt, when missing) and the packages pinned in package.json + package-lock.json
#    (componentize-js, rolldown, and the SDK @arkflow/plugin-sdk as file:sdk), installed with
#    `npm ci` into node_modules/ when it is missing or the lock changed (toolchain/js.sh);
# 2. rolldown bundles app.js and its imports into build/app.js (rolldown.config.mjs);
# 3. componentize-js compiles the bundle against wit/ (world `plugin`, or `timed-plugin` when
#    app.js exports `timerHandler`) into dist/{{name_snake}}.wasm.
set -euo pipefail
PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$PROJECT/toolchain/js.sh"
WIT_DIR="$PROJECT/wit"
DIST_DIR="$PROJECT/dist"

bin="$(need_npm_packages "$PROJECT")"
cd "$PROJECT"
"$bin/rolldown" -c rolldown.config.mjs >/dev/null
world=plugin
if grep -q "export const timerHandler" app.js; then world=timed-plugin; fi
mkdir -p "$DIST_DIR"
out="$DIST_DIR/{{name_snake}}.wasm"
# -d http fetch-event: without them the component would import (and need) wasi:http.
"$bin/componentize-js" --wit "$WIT_DIR" --world-name "$world" -d http fetch-event -o "$out" build/app.js >/dev/null
printf 'built %s (%d bytes)\n' "$out" "$(wc -c <"$out")"

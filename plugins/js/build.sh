#!/usr/bin/env bash
# Builds the JavaScript plugins with componentize-js into plugins/dist/<name>_js.wasm. Each plugin
# is a directory plugins/js/<name>/ whose ES module app.js exports `processor` for world
# arkflow:plugin/plugin@0.2.0 (../../wit, the batch ABI), and `timerHandler` for world
# timed-plugin (see sdk/timers.js). componentize-js is pinned exactly in package.json / package-lock.json and
# installed with `npm ci` into plugins/js/node_modules (gitignored; ~400 MB, ~15 s) when missing or
# when the lock file changed; node >= 18 and npm come from apt when missing (../toolchain/js.sh).
#   plugins/js/build.sh            # every plugin
#   plugins/js/build.sh counter    # only these
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../toolchain/js.sh"
WIT_DIR="$ARKFLOW_ROOT/wit"   # 0.2.0 (common.sh defaults to wit/v0.1)

here="$ARKFLOW_ROOT/plugins/js"
dist="$ARKFLOW_ROOT/plugins/dist"
need_npm_packages "$here" >/dev/null

mkdir -p "$dist"
if [ $# -eq 0 ]; then
    set -- $(cd "$here" && for d in */app.js; do echo "${d%/app.js}"; done)
fi
for name in "$@"; do
    [ -f "$here/$name/app.js" ] || { echo "js/build.sh: no plugin $name (expected $here/$name/app.js)" >&2; exit 1; }
    out="$dist/${name}_js.wasm"
    # -d http fetch-event: without them the component would import (and need) wasi:http.
    # An app that exports `timerHandler` targets the world with timers.
    world=plugin
    if grep -q "export const timerHandler" "$here/$name/app.js"; then world=timed-plugin; fi
    "$here/node_modules/.bin/componentize-js" --wit "$WIT_DIR" --world-name "$world" \
        -d http fetch-event -o "$out" "$here/$name/app.js" >/dev/null
    printf 'built %-40s %8d bytes\n' "plugins/dist/${name}_js.wasm" "$(wc -c <"$out")"
done
